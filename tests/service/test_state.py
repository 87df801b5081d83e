"""The service's shared state: opening the index for a server process."""

from threadpoolctl import threadpool_info, threadpool_limits

from shoplens.service.settings import ServiceSettings
from shoplens.service.state import BLAS_THREADS, ServiceState


def test_a_server_process_runs_one_blas_thread_per_caller(served_index):
    """A query's small matrix products run on the request's own thread: every BLAS library the process loaded
    (numpy's and FAISS's) is limited once the index is open."""
    original = threadpool_limits(limits=None, user_api="blas")  # records the limits, to restore them after
    state = ServiceState(ServiceSettings(index=served_index, follow_seconds=0, device="cpu"))
    try:
        state.open()
        assert state.engine is not None and state.problem is None
        blas = [library for library in threadpool_info() if library["user_api"] == "blas"]
        assert blas and all(library["num_threads"] == BLAS_THREADS for library in blas)
    finally:
        if state.engine is not None:
            state.engine.close()
        original.restore_original_limits()


def test_a_server_answers_the_index_frequent_queries_before_it_is_ready(served_index):
    """With --warm-up N the opened engine answers the N queries shown most in the index's behaviour; /ready
    stays 503 until then (never 200 in between) and /info says what the warm-up did."""
    import time

    from shoplens.engine.search import SearchEngine
    from shoplens.engine.warmup import frequent_queries
    from tests.service.conftest import make_client

    expected = frequent_queries(SearchEngine(served_index, device="cpu", preload=False).snapshot, 5)
    assert len(expected) == 5
    statuses = []
    with make_client(served_index, warm_up=5, follow_seconds=0) as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reply = client.get("/ready")
            statuses.append(reply.json()["status"])
            if reply.status_code == 200:
                break
            assert reply.status_code == 503 and reply.json()["status"] in ("opening", "warming")
            time.sleep(0.05)
        warmed = client.get("/info").json()["serving"]["warm_up"]
        engine = client.app.state.shoplens.engine
        answered = len(engine.query_cache)
    assert statuses[-1] == "ready"
    assert warmed["queries"] == 5 and warmed["failed"] == 0 and warmed["source"] == "the index's frequent queries"
    assert 1 <= answered <= 5  # each query was encoded (two may encode the same text once its price is read)


def test_a_warm_up_file_gives_the_queries_and_zero_turns_it_off(served_index, tmp_path):
    queries = tmp_path / "warm.jsonl"
    queries.write_text('{"text": "red dress"}\nblue jeans\nwhite sneakers\n', encoding="utf-8")
    for settings, expected in (({"warm_up": 2, "warm_up_file": queries}, 2), ({"warm_up": 0}, None)):
        state = ServiceState(ServiceSettings(index=served_index, follow_seconds=0, device="cpu", **settings))
        try:
            state.open()
            assert state.problem is None and state.warming is None
            assert (state.warmed or {}).get("queries") == expected
            if expected:
                assert state.warmed["source"] == str(queries)
        finally:
            if state.engine is not None:
                state.engine.close()
