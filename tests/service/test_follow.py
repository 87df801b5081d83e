"""Following new versions: commits land while requests run; the engine's background follower opens
them off the query path, and each response comes from exactly one version."""

from __future__ import annotations

import json
import threading
import time

import pytest

from shoplens.engine.query import SearchRequest
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


def commit_and_follow(engine, index, directory) -> int:
    """Commit one price update and wait (at most 120 s) until the engine's follower serves it; closes the engine."""
    new, _ = commit_prices(index, 1, directory)
    deadline = time.time() + 120
    while engine.snapshot.version != new and time.time() < deadline:
        time.sleep(0.05)
    engine.close()
    return new


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
    new = commit_and_follow(engine, index, tmp_path)
    assert engine.snapshot.version == new and engine.follow_error is None
    # the follower asked the new version the latest query while the old one was still served, with the
    # new version's facets and spelling corrector already built
    assert (new, old, "blue shirt under 1000", True, True) in seen


def test_while_the_follower_opens_a_version_threads_switch_often(served_index, encoder, tmp_path, monkeypatch):
    """Opening and warming a version is Python holding the GIL; during it the switch interval is short, so a
    request thread that released the GIL (ONNX Runtime, FAISS) gets it back soon; restored after."""
    import sys

    from shoplens.engine.search import FOLLOWER_SWITCH_INTERVAL

    index = copy_index(served_index, tmp_path / "index")
    engine = SearchEngine(index, device="cpu", encoder=encoder, follow_in_background=0.05)
    usual = sys.getswitchinterval()
    during = []
    real_warm = SearchEngine._warm

    def spy(self, snapshot, *args, **kwargs):
        during.append(sys.getswitchinterval())
        return real_warm(self, snapshot, *args, **kwargs)

    monkeypatch.setattr(SearchEngine, "_warm", spy)
    new = commit_and_follow(engine, index, tmp_path)
    assert engine.snapshot.version == new and during == [FOLLOWER_SWITCH_INTERVAL] < [usual]
    assert sys.getswitchinterval() == usual


def test_a_new_version_shares_the_analyzed_rows_of_the_one_it_extends_and_analyzes_the_rest_before_the_swap(
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
    # the old version's analyzed rows are shared, not copied nor analyzed again; the update's rows are analyzed
    # (and packed) before the swap
    assert context._title_terms is old_context._title_terms and context._doc_terms is old_context._doc_terms
    assert sorted(context._title_terms) == rows.tolist() and context._packed is not None
    fresh = FeatureContext(new, None, new.lexical.text_analyzer())
    assert context.title_sets(rows) == fresh.title_sets(rows) and context.doc_terms(rows) == fresh.doc_terms(rows)
    assert old_context.title_terms(rows[:5]) == fresh.title_terms(rows[:5])  # the old version reads its rows still
    # a price update changes no words: the new version's spelling corrector shares the old one's deletes
    assert engine.speller(new)._symspell._deletes is engine.speller(old)._symspell._deletes
    assert engine.speller(new).vocabulary != engine.speller(old).vocabulary  # with the new version's counts


def test_rows_are_shared_only_along_one_line_of_versions(served_index, encoder, tmp_path):
    """Two versions that both extend one (a rollback, then another commit) never see each other's new rows:
    the second one copies the rows they have in common instead of sharing the lookups."""
    import numpy as np

    from shoplens.indexers.maintenance import rollback
    from shoplens.indexers.snapshot import Snapshot
    from shoplens.rerank.features import FeatureContext

    index = copy_index(served_index, tmp_path / "index")
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    base = engine.snapshot
    base_context = engine.ranker(base).context(base)
    base_context.fill_all()
    first, _ = commit_prices(index, 1, tmp_path)
    assert engine.refresh()
    one = engine.snapshot
    one_context = engine.ranker(one).context(one)
    new_rows = np.arange(base.products.num_rows, one.products.num_rows)
    one_context.title_terms(new_rows)  # the first line's new rows, in the shared lookups
    rollback(index, base.version)
    second = _commit_titles(index, tmp_path)
    other = Snapshot.open(engine.index, second, device="cpu", previous=base)
    assert other.products.shared_rows == base.products.num_rows
    context = FeatureContext(other, None, other.lexical.text_analyzer())
    assert context.adopt_rows(base_context, other.products.shared_rows) == base.products.num_rows
    assert context._title_terms is not base_context._title_terms
    rows = np.arange(other.products.num_rows)
    fresh = FeatureContext(other, None, other.lexical.text_analyzer())
    assert context.title_terms(rows) == fresh.title_terms(rows) and context.doc_terms(rows) == fresh.doc_terms(rows)
    assert context.title_terms(new_rows) != one_context.title_terms(new_rows)
    engine.close()


def _commit_titles(index, directory) -> int:
    """An update that renames the watched products (new words in their new rows)."""
    delta = directory / "delta-titles.jsonl"
    delta.write_text("".join(json.dumps({"id": pid, "title": f"Renamed Velvet Lantern {i}"}) + "\n"
                             for i, pid in enumerate(IDS)))
    return apply_delta(index, delta, device="cpu").version


QUERIES = ["blue shirt", "black leather wallet", "women watches under 2000", "red dress", "sports shoes for men"]


def _answers(engine, texts) -> list[dict]:
    from shoplens.engine.query import SearchRequest

    out = []
    for text in texts:
        reply = engine.search(SearchRequest(text=text, k=10, explain=True)).to_json()
        out.append({key: value for key, value in reply.items() if key not in ("took_ms", "stages_ms")})
    return out


def _old_layout(index) -> None:
    """Remove what newer writes add (Arrow twins of product segments, saved analyzed rows, fused vectors):
    an index written before them."""
    for pattern in ("versions/*/products/*.arrow", "versions/*/lexical/rowterms-*.npz", "versions/*/vectors/fused-*.npy",
                    "versions/*/textvec/fused-*.npy"):
        for path in index.glob(pattern):
            path.unlink()


@pytest.mark.parametrize("old_layout", [False, True], ids=["current", "old-layout"])
def test_a_followed_version_answers_as_a_freshly_opened_one(served_index, encoder, tmp_path, old_layout,
                                                            monkeypatch):
    """After following updates (prices, a new title, deletes) with queries between them, the followed version's
    products, vectors, BM25, reranker features and results equal those of the same version opened afresh,
    on the current layout and on an index written before the files a write now adds."""
    import types

    import numpy as np

    from shoplens.indexers.updates import delete_products
    from shoplens.rerank import features

    # one clock for both engines: a product's age is read at query time, and the engines answer seconds apart
    monkeypatch.setattr(features, "time", types.SimpleNamespace(time=lambda: 1.8e9, sleep=time.sleep))

    index = copy_index(served_index, tmp_path / "index")
    if old_layout:
        _old_layout(index)
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    engine.warm_rows()
    _answers(engine, QUERIES[:2])
    for round_number in (1, 2):
        commit_prices(index, round_number, tmp_path)
        assert engine.refresh()
        _answers(engine, QUERIES[round_number:round_number + 2])
    _commit_titles(index, tmp_path)
    delete_products(index, IDS[4:])
    assert engine.refresh()
    followed = engine.snapshot
    fresh = SearchEngine(index, device="cpu", encoder=encoder)
    fresh.warm_rows()  # BM25 from the rows in memory on both sides (searching agrees to float32 rounding only)
    opened = fresh.snapshot
    assert followed.version == opened.version and followed.products.shared_rows > 0
    assert followed.products.table.column("record").num_chunks > 1  # rows were appended, not concatenated
    assert followed.products.table.equals(opened.products.table)
    np.testing.assert_array_equal(followed.products.live, opened.products.live)
    rows = np.random.default_rng(5).permutation(followed.products.num_rows)
    assert followed.products.records(rows) == opened.products.records(rows)
    assert followed.products.column_values("title", rows) == opened.products.column_values("title", rows)
    for name in ("text", "image", "fused", "has_image"):
        np.testing.assert_array_equal(np.asarray(getattr(followed.vectors, name)), np.asarray(getattr(opened.vectors, name)))
    live = followed.products.live_docnos()
    for text in QUERIES:
        np.testing.assert_array_equal(followed.lexical.scores_of(text, live), opened.lexical.scores_of(text, live))
        _, candidates, _ = engine.retrieve(SearchRequest(text=text, k=10), for_rerank=True)
        _, expected, _ = fresh.retrieve(SearchRequest(text=text, k=10), for_rerank=True)
        np.testing.assert_array_equal(candidates.docnos, expected.docnos)
        np.testing.assert_array_equal(engine.ranker(followed).features(followed, text, candidates),
                                      fresh.ranker(opened).features(opened, text, expected))
    assert _answers(engine, QUERIES) == _answers(fresh, QUERIES)
    engine.close()
    fresh.close()
