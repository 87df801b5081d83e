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
