"""A seconds-long run of `shoplens bench serve`, so that it keeps working. Nothing here asserts a timing."""

import json
import sys

from typer.testing import CliRunner

from shoplens.cli import app


def test_bench_serve(served_index, tmp_path):
    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--work-dir", str(tmp_path),
                                      "--requests", "4", "--seconds", "30", "--clients", "1,2", "--count", "10",
                                      "--interval", "1", "--queries", "10", "--device", "cpu", "--json",
                                      "--before", sys.executable])  # the same code twice: a run per label
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    names = [table["name"] for table in report["tables"]]
    assert names[0].startswith("in-process engine against HTTP") and len(report["tables"]) == 4
    levels = report["tables"][1]["rows"]
    assert [row[:3] for row in levels] == [[n, condition, label] for label in ("before, warm 0", "now, warm 0")
                                           for n in (1, 2) for condition in ("idle", "updating")]
    assert all(row[4] == 0 for row in levels)  # no errors
    parts = report["tables"][2]
    assert parts["columns"][4:] == ["outside", "queue", "engine", "encode", "lexical", "vector", "rerank"]
    assert all(row[6] is not None and row[6] > 0 for row in parts["rows"])  # the engine's share of the slowest
    writer = report["tables"][3]["rows"]
    assert [row[0] for row in writer] == ["before, warm 0", "now, warm 0"] and all(row[1] >= 0 for row in writer)
    assert (tmp_path / "index").is_dir()  # it served a copy; the source index is untouched


def test_bench_serve_refuses_bad_levels(served_index, tmp_path):
    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--clients", "one"])
    assert result.exit_code != 0 and "--clients" in result.output


def test_bench_serve_refuses_a_before_that_is_not_a_python(served_index, tmp_path):
    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--before", str(tmp_path)])
    assert result.exit_code != 0 and "--before" in result.output


def test_bench_serve_runs_the_writer_at_each_niceness(served_index, tmp_path):
    import os

    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--work-dir", str(tmp_path),
                                      "--requests", "3", "--seconds", "20", "--clients", "1", "--count", "10",
                                      "--interval", "1", "--queries", "6", "--device", "cpu", "--json",
                                      "--writer-nice", "0,7"])
    assert result.exit_code == 0, result.output
    writer = json.loads(result.stdout)["tables"][3]["rows"]
    mine = os.nice(0)
    assert [(row[0], row[5]) for row in writer] == [("warm 0, writer nice 0", mine),
                                                    ("warm 0, writer nice 7", min(mine + 7, 19))]


def test_bench_serve_refuses_a_writer_niceness_out_of_range(served_index):
    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--writer-nice", "0,25"])
    assert result.exit_code != 0 and "--writer-nice takes numbers from 0 to 19" in result.output
