"""`shoplens bench warmup`: a cold engine against one warmed with the warm-up queries, two passes over the
same queries, on the embedded sample and on twins on the real clusters (skipped without their URLs)."""

import json
import os

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from tests.indexers.clusters import CLUSTERS, require_cluster


def bench_warmup(*args):
    result = CliRunner().invoke(app, ["bench", "warmup", *[str(a) for a in args], "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def files(tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"text": "blue shirt"}\n{"text": "watch for men"}\n{"text": "kurta"}\n')
    warm = tmp_path / "warm.txt"
    warm.write_text("black running shoes\nwomen handbag\nKurta\n")
    return queries, warm


def check_report(report, queries=3, warmed=3):
    rows = report["tables"][0]["rows"]
    assert {(row[1], row[2]) for row in rows} == {(1, "cold"), (1, "warmed"), (2, "cold"), (2, "warmed")}
    assert all(row[0] == "text" and row[3] == queries and 0 < row[4] <= row[7] for row in rows)  # p50 <= max
    assert report["warm_up"]["queries"] == warmed and report["warm_up"]["failed"] == 0
    assert report["overlap"] == 1  # "kurta" was among the warm-up's queries, in another case


def test_warmup_bench_on_the_embedded_index(sample_index, files):
    queries, warm = files
    check_report(bench_warmup("--index", sample_index, "--queries", queries, "--warm-up-file", warm))


def test_a_bad_warm_up_file_is_one_line_before_anything_runs(sample_index, files, tmp_path):
    queries, _ = files
    (tmp_path / "bad.txt").write_text('{"text": 3}\n')
    result = CliRunner().invoke(app, ["bench", "warmup", "--index", str(sample_index), "--queries", str(queries),
                                      "--warm-up-file", str(tmp_path / "bad.txt")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "must be a string" in result.output


@pytest.mark.parametrize("backend", list(CLUSTERS))
def test_warmup_bench_on_two_fresh_twins_on_the_cluster(backend, sample_index, files):
    cluster = require_cluster(backend)
    client = cluster.client(os.environ[cluster.env])
    before = set(client.indices.get(index="shoplens-*"))
    queries, warm = files
    report = bench_warmup("--index", sample_index, "--queries", queries, "--warm-up-file", warm,
                          "--lexical", backend, "--vectors", backend)
    check_report(report)
    assert cluster.label in report["data"]
    assert set(client.indices.get(index="shoplens-*")) == before  # both twins' indexes were deleted


def test_an_index_without_behaviour_needs_a_warm_up_file(sample_index, files):
    queries, _ = files
    result = CliRunner().invoke(app, ["bench", "warmup", "--index", str(sample_index), "--queries", str(queries)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "give --warm-up-file" in result.output
