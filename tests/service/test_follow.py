"""Following new versions: commits land while requests run; the engine's background follower opens
them off the query path, and each response comes from exactly one version."""

from __future__ import annotations

import json
import threading
import time

from shoplens.engine.search import SearchEngine
from shoplens.indexers.updates import apply_delta
from tests.helpers import copy_index, sample_products
from tests.service.conftest import make_client

IDS = [p["id"] for p in sample_products(80)[:6]]


def commit_prices(index, round_number: int, directory) -> tuple[int, dict[str, float]]:
    """One update that gives each watched product a price that names the round."""
    prices = {pid: float(1000 * round_number + i) for i, pid in enumerate(IDS)}
    delta = directory / f"delta-{round_number}.jsonl"
    delta.write_text("".join(json.dumps({"id": pid, "price": price}) + "\n" for pid, price in prices.items()))
    return apply_delta(index, delta, device="cpu").version, prices


def test_each_response_comes_from_exactly_one_version(served_index, encoder, tmp_path):
    index = copy_index(served_index, tmp_path / "index")
    engine = SearchEngine(index, device="cpu", encoder=encoder, follow_in_background=0.05)
    assert engine.follow_updates is False  # queries never check CURRENT nor open a version themselves
    first = engine.snapshot.version
    records = engine.snapshot.products.records([engine.snapshot.products.docno_by_id[pid] for pid in IDS])
    expected = {first: {r["id"]: r.get("price") for r in records}}
    body = {"q": "shirt", "filters": ["id=" + "|".join(IDS)], "k": len(IDS), "rerank": False}
    seen: list[list[dict]] = [[], []]
    stop = threading.Event()
    errors: list[str] = []

    with make_client(index, engine) as client:
        def load(log: list[dict]) -> None:
            while not stop.is_set():
                reply = client.post("/search", json=body)
                if reply.status_code != 200:
                    errors.append(reply.text)
                    return
                log.append({**reply.json(), "header": reply.headers["x-shoplens-version"]})

        loaders = [threading.Thread(target=load, args=(log,)) for log in seen]
        for loader in loaders:
            loader.start()
        try:
            for round_number in (1, 2, 3):
                while sum(map(len, seen)) < 2 * round_number and not errors:  # requests are running across each commit
                    time.sleep(0.05)
                version, prices = commit_prices(index, round_number, tmp_path)
                expected[version] = prices
        finally:
            stop.set()
            for loader in loaders:
                loader.join(timeout=120)
    assert not errors, errors[0]
    last = max(expected)
    deadline = time.time() + 120
    while engine.snapshot.version != last and time.time() < deadline:  # no query needed to move on
        time.sleep(0.05)
    assert engine.snapshot.version == last and engine.follow_error is None
    engine.close()

    versions_seen = set()
    for log in seen:
        assert log
        versions = [response["version"] for response in log]
        assert versions == sorted(versions)  # a client never goes back to an older version
        for response in log:
            assert str(response["version"]) == response["header"]
            prices = {r["id"]: r["price"] for r in response["results"]}
            assert prices == expected[response["version"]], f"a response mixes versions: {response['version']}"
            versions_seen.add(response["version"])
    assert len(versions_seen) >= 2


def test_a_new_version_is_warmed_and_rehearsed_before_the_swap(served_index, encoder, tmp_path, monkeypatch):
    from shoplens.engine.query import SearchRequest

    index = copy_index(served_index, tmp_path / "index")
    engine = SearchEngine(index, device="cpu", encoder=encoder, follow_in_background=0.05, rehearsals=2)
    old = engine.snapshot.version
    engine.search(SearchRequest(text="blue shirt under 1000", k=5))
    seen = []
    real_search = SearchEngine.search

    def spy(self, request):  # the real search, noting which version answered and which one was being served
        seen.append((self.snapshot.version, engine.snapshot.version, request.text,
                     self.snapshot.version in engine._facets, self.snapshot.version in engine._spellers))
        return real_search(self, request)

    monkeypatch.setattr(SearchEngine, "search", spy)
    new, _ = commit_prices(index, 1, tmp_path)
    deadline = time.time() + 120
    while engine.snapshot.version != new and time.time() < deadline:
        time.sleep(0.05)
    engine.close()
    assert engine.snapshot.version == new and engine.follow_error is None
    # the follower asked the new version the latest query while the old one was still served, with the
    # new version's facets and spelling corrector already built
    assert (new, old, "blue shirt under 1000", True, True) in seen


def test_a_new_version_takes_what_it_shares_with_the_old_one_and_analyzes_the_rest_before_the_swap(
        served_index, encoder, tmp_path):
    import numpy as np

    from shoplens.rerank.features import FeatureContext

    index = copy_index(served_index, tmp_path / "index")
    engine = SearchEngine(index, device="cpu", encoder=encoder, follow_in_background=0.05)
    old = engine.snapshot
    assert engine.warm_rows() == old.products.num_rows  # as `serve` does after opening
    old_context = engine.ranker(old).context(old)
    new_version, _ = commit_prices(index, 1, tmp_path)
    deadline = time.time() + 120
    while engine.snapshot.version != new_version and time.time() < deadline:
        time.sleep(0.05)
    engine.close()
    new = engine.snapshot
    assert new.version == new_version and engine.follow_error is None
    assert new.products.shared_rows == old.products.num_rows < new.products.num_rows  # the update appended rows
    context = engine.ranker(new).context(new)
    rows = np.arange(new.products.num_rows)
    assert sorted(context._title_terms) == rows.tolist()  # every row analyzed before any query asked
    assert context._title_terms[0] is old_context._title_terms[0]  # a shared row was taken, not analyzed again
    fresh = FeatureContext(new, None, new.lexical.text_analyzer())
    assert context.title_sets(rows) == fresh.title_sets(rows) and context.doc_terms(rows) == fresh.doc_terms(rows)
    # a price update changes no words: the new version's spelling corrector shares the old one's deletes
    assert engine.speller(new)._symspell._deletes is engine.speller(old)._symspell._deletes
    assert engine.speller(new).vocabulary != engine.speller(old).vocabulary  # with the new version's counts
