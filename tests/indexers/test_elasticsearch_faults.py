"""Node loss on the 3-node cluster of `make es-up`: one node stops in the middle of an update and of a
stream of searches. No search may return another version's rows, no product may be lost, and
`check` must pass afterwards.

Needs the cluster started by deploy/elasticsearch/es.sh (it stops and restarts a node through the
cluster's control folder); skipped, saying why, otherwise.
"""

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from shoplens.common.errors import ShopLensError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.lexical import elasticsearch_store
from shoplens.indexers.maintenance import check_index
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import REPO, sample_products, write_catalog

STATE = Path(os.environ.get("SHOPLENS_ES_HOME", REPO / ".es"))
ES_SH = REPO / "deploy" / "elasticsearch" / "es.sh"
URL = os.environ.get("SHOPLENS_ES_URL", "")
pytestmark = pytest.mark.skipif(
    not URL or not (STATE / "url").is_file() or (STATE / "url").read_text().strip() != URL,
    reason="needs SHOPLENS_ES_URL from `make es-up` (this test stops and restarts one of its nodes)")

ROWS = sample_products(60)
TEXT = "shirt"


def es(*args):
    env = dict(os.environ, SHOPLENS_ES_HOME=str(STATE))
    subprocess.run(["bash", str(ES_SH), *args], check=True, env=env, timeout=120)


def wait_for_nodes(count, timeout=120):
    client = elasticsearch_store._client(URL)
    health = client.cluster.health(wait_for_nodes=str(count), wait_for_status="yellow", timeout=f"{timeout}s")
    assert health["number_of_nodes"] == count


def expected_ids(path, version):
    snapshot = Snapshot.open(IndexDirectory(path), version, device="cpu")
    docnos, _ = snapshot.lexical.search(TEXT, 200)
    return {record["id"] for record in snapshot.products.records(docnos.tolist())}


def test_a_node_lost_mid_update_and_mid_searches(tmp_path, encoder, monkeypatch):
    catalog = write_catalog(tmp_path / "c.jsonl", ROWS)
    path = tmp_path / "index"
    options = WriteOptions(device="cpu", lexical_backend="elasticsearch",
                           lexical_config={"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}",
                                           "shards": 3, "replicas": 1})
    build_index(catalog, path, options, encoder=encoder)
    wait_for_nodes(3)
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    seen, errors, stop = [], [], threading.Event()

    def searches():
        deadline = time.monotonic() + 240  # bounded: the stream ends by itself
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                response = engine.search(SearchRequest(text=TEXT, k=200, mode="lexical"))
                seen.append((response.version, {r.id for r in response.results}))
            except ShopLensError as exc:  # allowed while the cluster re-routes; never a wrong answer
                errors.append(str(exc))
            time.sleep(0.05)

    stopped = []
    original = elasticsearch_store._send

    def send_then_lose_a_node(client, chunk):
        if not stopped:  # the update has started writing: take node 3 away now
            es("stop-node", "3")
            stopped.append(time.monotonic())
        return original(client, chunk)

    monkeypatch.setattr(elasticsearch_store, "_send", send_then_lose_a_node)
    monkeypatch.setattr(elasticsearch_store, "BULK_CHUNK", 5)
    reader = threading.Thread(target=searches)
    reader.start()
    try:
        time.sleep(1)
        changes = [{"id": r["id"], "title": r["title"] + " shirt"} for r in ROWS[:20]]
        changes += [{"id": f"new-{i}", "title": f"Linen shirt {i}", "price": 999} for i in range(20)]
        delta = tmp_path / "delta.jsonl"
        delta.write_text("".join(json.dumps(r) + "\n" for r in changes))
        report = apply_delta(path, delta)
        time.sleep(2)  # searches on the new version, still with a node down
    finally:
        stop.set()
        reader.join()
        monkeypatch.undo()
        if stopped:
            es("start-node", "3")
    assert stopped and report.version == 2
    wait_for_nodes(3)
    expected = {version: expected_ids(path, version) for version in (1, 2)}
    assert expected[1] != expected[2]
    wrong = [(version, ids ^ expected[version]) for version, ids in seen if ids != expected[version]]
    assert not wrong, wrong[:3]
    assert {version for version, _ in seen} == {1, 2}, (len(seen), errors[:3])
    live = set(Snapshot.open(IndexDirectory(path), device="cpu").products.docno_by_id)
    assert live == {r["id"] for r in ROWS} | {f"new-{i}" for i in range(20)}  # no product lost
    assert check_index(path).ok
    elasticsearch_store._client(URL).indices.delete(index=options.lexical_config["index_prefix"] + "-*")
