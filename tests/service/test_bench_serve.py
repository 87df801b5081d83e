"""A seconds-long run of `shoplens bench serve`, so that it keeps working. Nothing here asserts a timing."""

import json

from typer.testing import CliRunner

from shoplens.cli import app


def test_bench_serve(served_index, tmp_path):
    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--work-dir", str(tmp_path),
                                      "--requests", "4", "--seconds", "30", "--clients", "1,2", "--count", "10",
                                      "--interval", "1", "--queries", "10", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    names = [table["name"] for table in report["tables"]]
    assert names[0].startswith("in-process engine against HTTP") and len(report["tables"]) == 2
    levels = report["tables"][1]["rows"]
    assert [row[:2] for row in levels] == [[1, "idle"], [1, "updating"], [2, "idle"], [2, "updating"]]
    assert all(row[3] == 0 for row in levels)  # no errors
    assert (tmp_path / "index").is_dir()  # it served a copy; the source index is untouched


def test_bench_serve_refuses_bad_levels(served_index, tmp_path):
    result = CliRunner().invoke(app, ["bench", "serve", "--index", str(served_index), "--clients", "one"])
    assert result.exit_code != 0 and "--clients" in result.output
