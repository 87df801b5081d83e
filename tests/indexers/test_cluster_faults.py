"""Node loss on the 3-node clusters of `make es-up` and `make os-up`: one node stops in the middle of an update
and of a stream of searches, on an index whose text and vectors both live on the cluster (`--lexical
elasticsearch --vectors elasticsearch`, and `--lexical opensearch --vectors opensearch` with HNSW). No search
(BM25 or dense) may return another version's rows, no product may be lost, and `check` must pass afterwards.

Each backend needs the cluster its own deploy script started from this checkout (the test stops node 3
through the cluster's control folder and always starts it again, then waits for three nodes, so the other
tests sharing the cluster find it whole); skipped, saying why, otherwise.
"""

import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from shoplens.common.errors import ShopLensError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.lexical import elasticsearch_store
from shoplens.indexers.lexical.cluster import ELASTICSEARCH, OPENSEARCH, Cluster
from shoplens.indexers.maintenance import check_index
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import REPO, sample_products, write_catalog

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py: even when a test fails

ROWS = sample_products(60)
TEXT = "shirt"
MODES = ("lexical", "dense")
K = 200  # more than any version's live rows: a dense search returns exactly the version's rows (the
# HNSW query searches exactly when its filter leaves fewer documents than k), so every answer is checkable


@dataclass(frozen=True)
class LocalCluster:
    """A cluster started by this checkout's deploy script, and how to take one of its nodes away."""

    cluster: Cluster
    script: Path  # deploy/<name>/<es|os>.sh
    home_env: str  # the variable naming its state folder (the control folder and the url file live there)
    default_home: str

    @property
    def state(self) -> Path:
        return Path(os.environ.get(self.home_env, REPO / self.default_home))

    @property
    def url(self) -> str:
        return os.environ.get(self.cluster.env, "")

    def started_here(self) -> bool:
        url_file = self.state / "url"
        return bool(self.url) and url_file.is_file() and url_file.read_text().strip() == self.url

    def node(self, action: str, number: int) -> None:
        env = dict(os.environ, **{self.home_env: str(self.state)})
        subprocess.run(["bash", str(self.script), f"{action}-node", str(number)], check=True, env=env, timeout=120)

    def wait_for_nodes(self, count: int, timeout: int = 120) -> None:
        client = elasticsearch_store._client(self.url, cluster=self.cluster)
        health = client.cluster.health(params={"wait_for_nodes": str(count), "wait_for_status": "yellow",
                                               "timeout": f"{timeout}s"}, request_timeout=timeout + 10)
        assert health["number_of_nodes"] == count


CLUSTERS = {
    "elasticsearch": LocalCluster(ELASTICSEARCH, REPO / "deploy" / "elasticsearch" / "es.sh", "SHOPLENS_ES_HOME", ".es"),
    "opensearch": LocalCluster(OPENSEARCH, REPO / "deploy" / "opensearch" / "os.sh", "SHOPLENS_OS_HOME", ".os"),
    # `make test-es8`: SHOPLENS_ES_URL names the Elasticsearch 8 cluster of `make es8-up`
    "elasticsearch8": LocalCluster(ELASTICSEARCH, REPO / "deploy" / "elasticsearch8" / "es8.sh", "SHOPLENS_ES8_HOME",
                                   ".es8"),
}


@pytest.fixture(params=list(CLUSTERS))
def local(request) -> LocalCluster:
    local = CLUSTERS[request.param]
    if not local.started_here():
        pytest.skip(f"needs {local.cluster.env} from `make {local.script.stem}-up` in this checkout "
                    "(this test stops and restarts one of its nodes)")
    return local


def expected_ids(path, version, query_vector):
    """What each mode must return at `version`: the version's own BM25 and dense results."""
    snapshot = Snapshot.open(IndexDirectory(path), version, device="cpu")
    found = {"lexical": snapshot.lexical.search(TEXT, K)[0], "dense": snapshot.vectors.search(query_vector, K)[0]}
    return {mode: {r["id"] for r in snapshot.products.records(docnos.tolist())} for mode, docnos in found.items()}


def search_stream(engine, seen, errors, stop):
    """BM25 and dense searches one after the other until `stop` (or 240 s): (mode, version, ids) of each."""
    deadline = time.monotonic() + 240
    while not stop.is_set() and time.monotonic() < deadline:
        for mode in MODES:
            try:
                response = engine.search(SearchRequest(text=TEXT, k=K, mode=mode, rerank=False))
                seen.append((mode, response.version, {r.id for r in response.results}))
            except ShopLensError as exc:  # allowed while the cluster re-routes; never a wrong answer
                errors.append(str(exc))
        time.sleep(0.05)


def write_changes(tmp_path):
    changes = [{"id": r["id"], "title": r["title"] + " shirt"} for r in ROWS[:20]]
    changes += [{"id": f"new-{i}", "title": f"Linen shirt {i}", "price": 999} for i in range(20)]
    delta = tmp_path / "delta.jsonl"
    delta.write_text("".join(json.dumps(r) + "\n" for r in changes))
    return delta


def test_a_node_lost_mid_update_and_mid_searches(tmp_path, encoder, monkeypatch, local):
    backend = local.cluster.backend
    catalog = write_catalog(tmp_path / "c.jsonl", ROWS)
    path = tmp_path / "index"
    options = WriteOptions(device="cpu", lexical_backend=backend, vector_backend=backend,
                           lexical_config={"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}",
                                           "shards": 3, "replicas": 1})
    build_index(catalog, path, options, encoder=encoder)
    local.wait_for_nodes(3)
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    seen, errors, stop, stopped = [], [], threading.Event(), []
    original = elasticsearch_store._send  # the bulk writes of both cluster stores go through it

    def send_then_lose_a_node(client, chunk):
        if not stopped:  # the update has started writing: take node 3 away now
            local.node("stop", 3)
            stopped.append(time.monotonic())
        return original(client, chunk)

    monkeypatch.setattr(elasticsearch_store, "_send", send_then_lose_a_node)
    monkeypatch.setattr(elasticsearch_store, "BULK_CHUNK", 5)
    reader = threading.Thread(target=search_stream, args=(engine, seen, errors, stop))
    reader.start()
    try:
        time.sleep(1)
        report = apply_delta(path, write_changes(tmp_path))
        time.sleep(2)  # searches on the new version, still with a node down
    finally:
        stop.set()
        reader.join()
        monkeypatch.undo()
        if stopped:
            local.node("start", 3)
        local.wait_for_nodes(3)
    assert stopped and report.version == 2
    query_vector = encoder.encode_texts_native([TEXT])[0][0]
    expected = {version: expected_ids(path, version, query_vector) for version in (1, 2)}
    assert all(expected[1][mode] != expected[2][mode] for mode in MODES)
    wrong = [(mode, version, ids ^ expected[version][mode]) for mode, version, ids in seen
             if ids != expected[version][mode]]
    assert not wrong, wrong[:3]
    assert {(mode, version) for mode, version, _ in seen} == {(m, v) for m in MODES for v in (1, 2)}, \
        (len(seen), errors[:3])
    live = set(Snapshot.open(IndexDirectory(path), device="cpu").products.docno_by_id)
    assert live == {r["id"] for r in ROWS} | {f"new-{i}" for i in range(20)}  # no product lost
    assert check_index(path).ok
    elasticsearch_store._client(local.url, cluster=local.cluster).indices.delete(
        index=options.lexical_config["index_prefix"] + "-*")


def test_an_answer_some_shards_did_not_give_is_an_error_never_partial_hits():
    """What a node lost mid-search looks like (the cluster answers from the other shards, HTTP 200): an error."""
    failure = {"total": 3, "successful": 2, "failed": 1, "failures": [{"reason": {"type": "node_closed_exception"}}]}
    with pytest.raises(elasticsearch_store.ShardFailure, match="1 of 3 shards failed .*node_closed"):
        elasticsearch_store._whole({"_shards": failure, "hits": {"hits": []}})
    with pytest.raises(elasticsearch_store.ShardFailure):  # any one of an _msearch's answers
        elasticsearch_store._whole({"responses": [{"_shards": {"total": 3, "failed": 0}}, {"_shards": failure}]})
    whole = {"_shards": {"total": 3, "successful": 3, "failed": 0}, "hits": {"hits": []}}
    assert elasticsearch_store._whole(whole) is whole
