"""Elasticsearch index settings from the CLI, and what pruning, compaction and aborted writes leave on
the cluster (against a real cluster, `make es-up`; the option checks run without one)."""

import json
import os
import uuid

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.lexical.elasticsearch_store import _client
from shoplens.indexers.maintenance import check_index, compact
from shoplens.indexers.updates import apply_delta, delete_products
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import sample_products

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py

needs_cluster = pytest.mark.skipif(not os.environ.get("SHOPLENS_ES_URL"),
                                   reason="SHOPLENS_ES_URL is not set: no Elasticsearch cluster (run `make es-up`)")
ROWS = sample_products(60)


def es_index(path, version=None):
    index = IndexDirectory(path)
    state = json.loads((index.version_path(version or index.current_version()) / "lexical" / "state.json").read_text())
    return state["index"]


def documents(client, name, query=None):
    return client.count(index=name, body={"query": query or {"match_all": {}}})["count"]


@pytest.mark.parametrize("args, message", [
    (["--es-shards", "2"], "need --lexical elasticsearch"),
    (["--lexical", "elasticsearch", "--es-shards", "0"], "--es-shards must be a whole number from 1 to 1024"),
    (["--lexical", "elasticsearch", "--es-replicas", "-1"], "--es-replicas must be a whole number from 0 to 64"),
])
def test_bad_shard_options_fail_before_any_work(tmp_path, small_catalog, args, message):
    result = CliRunner().invoke(app, ["index", str(small_catalog), "--index", str(tmp_path / "ix"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ix").exists()


@needs_cluster
def test_shards_and_replicas_chosen_on_the_command_line(tmp_path, small_catalog):
    path = tmp_path / "index"
    result = CliRunner().invoke(app, ["index", str(small_catalog), "--index", str(path), "--device", "cpu",
                                      "--lexical", "elasticsearch", "--es-shards", "3", "--es-replicas", "0", "--json"])
    assert result.exit_code == 0, result.output
    client = _client(os.environ["SHOPLENS_ES_URL"])
    name = es_index(path)
    try:
        settings = client.indices.get_settings(index=name)[name]["settings"]["index"]
        assert (settings["number_of_shards"], settings["number_of_replicas"]) == ("3", "0")
        lexical = IndexDirectory(path).manifest()["backends"]["lexical"]
        assert (lexical["backend"], lexical["shards"], lexical["replicas"]) == ("elasticsearch", 3, 0)
        info = json.loads(CliRunner().invoke(app, ["info", "--index", str(path), "--json"]).output)
        assert (info["lexical"]["shards"], info["lexical"]["replicas"]) == (3, 0)
        assert check_index(path).ok
    finally:
        client.indices.delete(index=name, ignore_unavailable=True)


def es_options(keep):
    return WriteOptions(device="cpu", lexical_backend="elasticsearch", keep_versions=keep,
                        lexical_config={"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}", "replicas": 1})


def delta(tmp_path, rows, name):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@needs_cluster
def test_pruning_and_compaction_free_what_old_versions_held(tmp_path, small_catalog, encoder):
    path = tmp_path / "index"
    build_index(small_catalog, path, es_options(keep=2), encoder=encoder)
    client = _client(os.environ["SHOPLENS_ES_URL"])
    first = es_index(path)
    apply_delta(path, delta(tmp_path, [{"id": r["id"], "price": 9.0} for r in ROWS[:5]], "d1.jsonl"))
    # versions 1 and 2: the five old copies are still live in version 1
    assert documents(client, first) == 65
    delete_products(path, [ROWS[10]["id"]])  # version 3; version 1 is pruned, and with it its five old copies
    assert IndexDirectory(path).committed_versions() == [2, 3]
    assert documents(client, first) == 60  # the deleted product is still live in the kept version 2
    views = [{"term": {"live": generation}} for generation in (2, 3)]
    assert documents(client, first, {"bool": {"should": views}}) == 60

    compact(path)  # version 4 lives in a new Elasticsearch index; version 3 still reads the old one
    second = es_index(path)
    assert second != first and client.indices.exists(index=first)
    apply_delta(path, delta(tmp_path, [{"id": "new-1", "title": "Quokka plush toy"}], "d2.jsonl"))
    assert IndexDirectory(path).committed_versions() == [4, 5]
    assert not client.indices.exists(index=first)  # no kept version uses it any more
    assert documents(client, second) == 60  # 59 products compacted + the new one
    assert check_index(path).ok


@needs_cluster
def test_a_benchmark_twin_leaves_no_index_on_the_cluster(small_index):
    from shoplens.benchmarks.lexical_twin import lexical_twin, remove_twin

    twin, figures = lexical_twin(small_index, "elasticsearch", {"index_prefix": "shoplens-test-twin"})
    client = _client(os.environ["SHOPLENS_ES_URL"])
    name = es_index(twin)
    assert figures["documents"] == 60 and client.indices.exists(index=name)
    remove_twin(twin)
    assert not client.indices.exists(index=name) and not twin.exists()
