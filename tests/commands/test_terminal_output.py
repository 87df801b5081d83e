"""What the commands print: plain lines without a terminal, the --json shape, batch search, and
commands that say what they did (info, versions, rollback, compact, update, delete, watch)."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from tests.helpers import SAMPLE, copy_index, sample_products, write_catalog

runner = CliRunner()
BOX = set("┏┃━┡│└┓┩┗┛╇╈")


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def base_index(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    catalog = write_catalog(directory / "catalog.jsonl", sample_products(40))
    result = invoke("index", catalog, "--index", directory / "ix", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return directory / "ix"


@pytest.fixture
def index(base_index, tmp_path):
    return copy_index(base_index, tmp_path / "ix")


def test_search_without_a_terminal_prints_plain_lines(base_index):
    result = invoke("search", "black shoe", "--index", base_index, "-k", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not BOX & set(result.stdout)
    assert lines[0].split("\t") == ["#", "id", "title", "brand", "price", "bm25", "dense", "text_native", "fused"]
    rows = [line.split("\t") for line in lines[1:5]]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert all(row[1] in {p["id"] for p in sample_products(40)} for row in rows)
    captions = [line for line in lines[5:] if line.startswith("# ")]
    assert captions == lines[5:] and "ordered by fused" in captions[0]  # each caption line its own comment


def test_json_shape_and_types(base_index):
    result = invoke("search", "black shoe", "--index", base_index, "-k", "5", "--json", "--explain")
    data = json.loads(result.stdout)
    assert {"query", "took_ms", "stages_ms", "version", "reranked", "total_candidates", "results"} <= set(data)
    assert isinstance(data["version"], int) and isinstance(data["total_candidates"], int)
    for result_ in data["results"]:
        assert set(result_) >= {"rank", "id", "title", "brand", "price", "score", "signals", "explain"}
        assert {"bm25", "dense", "text_native", "fused", "rerank"} <= set(result_["signals"]) \
            <= {"bm25", "dense", "text_native", "fused", "rerank", "intent_boost"}
        assert isinstance(result_["rank"], int) and isinstance(result_["explain"]["fused_rank"], int)
        for key in ("bm25_rank", "dense_rank", "text_native_rank"):
            assert result_["explain"][key] is None or isinstance(result_["explain"][key], int)
        assert result_["signals"]["bm25"] is not None  # hybrid with text: every result has its BM25 score


def test_bm25_is_the_same_with_and_without_a_filter(base_index):
    plain = json.loads(invoke("search", "black shoe", "--index", base_index, "-k", "40", "--json").stdout)
    filtered = json.loads(invoke("search", "black shoe", "--index", base_index, "-k", "5", "--json",
                                 "--filter", "price<=2000").stdout)
    before = {r["id"]: r["signals"]["bm25"] for r in plain["results"]}
    assert filtered["results"]
    for result in filtered["results"]:
        if result["id"] in before:
            assert result["signals"]["bm25"] == pytest.approx(before[result["id"]], abs=1e-5)


def test_batch_search_answers_many_queries_in_one_process(base_index, tmp_path):
    image = SAMPLE.parent / sample_products(3)[2]["image"]
    queries = tmp_path / "queries.jsonl"
    queries.write_text("black shoe\n\n"
                       + json.dumps({"id": "q2", "text": "t-shirt", "filters": ["price<=500"], "k": 3}) + "\n"
                       + json.dumps({"image": str(image)}) + "\n"
                       + json.dumps({"text": "shoe", "filters": "colour=red"}) + "\n")
    out = tmp_path / "results.jsonl"
    result = invoke("search", "--queries", queries, "--index", base_index, "-k", "2", "--out", out)
    assert result.exit_code == 1  # one query failed; the others were answered
    assert "3 of 4 queries answered" in result.stderr and "line 5:" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["line"] for line in lines] == [1, 3, 4, 5]
    assert len(lines[0]["results"]) == 2 and lines[1]["id"] == "q2" and len(lines[1]["results"]) == 3
    assert all(r["price"] <= 500 for r in lines[1]["results"])
    assert lines[2]["query"]["image"] and lines[2]["results"]
    assert "unknown filter field" in lines[3]["error"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('black shoe\n{"text": "x", "colour": "red"}\n')
    result = invoke("search", "--queries", bad, "--index", base_index)
    assert result.exit_code == 2 and "bad.jsonl line 2: unknown key(s) colour" in result.stderr


def test_photo_errors_come_before_mode_complaints(base_index, tmp_path):
    result = invoke("search", "--image", tmp_path / "none.jpg", "--mode", "lexical", "--index", base_index)
    assert result.exit_code == 2 and "not found" in result.stderr
    (tmp_path / "x.jpg").write_text("not a photo")
    result = invoke("search", "--image", tmp_path / "x.jpg", "--mode", "lexical", "--index", base_index)
    assert result.exit_code == 2 and "is not an image" in result.stderr


def test_info_spells_out_sizes_dates_and_the_reranker(base_index):
    result = invoke("info", "--index", base_index)
    assert result.exit_code == 0, result.output
    facts = dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
    assert facts["products"].startswith("40 ")
    assert facts["size"].split()[1] in ("KB", "MB")
    assert "older versions 0 B" in facts["size"] and "cache " in facts["size"]  # every part of the total
    assert facts["query encoder"].split()[0] in ("onnx", "torch")
    assert facts["version"].startswith("1 (build, 20")  # a date, not an ISO timestamp
    assert facts["reranker"].startswith("none") and facts["behaviour"].startswith("none")


def test_versions_rollback_update_delete_compact_say_what_they_did(index, tmp_path):
    products = sample_products(40)
    delta = write_catalog(tmp_path / "delta.jsonl", [{**products[0], "price": 1}, products[1]])
    result = invoke("update", delta, "--index", index)
    assert result.exit_code == 0 and "version 2" in result.stdout
    result = invoke("update", write_catalog(tmp_path / "same.jsonl", products[2:4]), "--index", index)
    assert "nothing changed" in result.stdout and "no new version" in result.stdout
    result = invoke("delete", "--ids", products[5]["id"], "--index", index)
    assert "deleted 1 products, 39 remain" in result.stdout and "encoded" not in result.stdout
    lines = invoke("versions", "--index", index).stdout.splitlines()
    described = {line.split("\t")[0]: line.split("\t")[3] for line in lines if "\t" in line and line[0].isdigit()}
    assert described["3 *"] == "delete 1 (1 deleted)"
    assert described["2"] == "update 1 products from delta.jsonl (1 changed)"
    assert described["1"] == "index catalog.jsonl: 40 products"
    result = invoke("rollback", "1", "--index", index, "--yes")
    assert result.exit_code == 0 and "version 4" in result.stdout
    assert "undoes 2 later version(s)" in result.stderr and "3: delete 1" in result.stderr
    assert "rollback to 1 (undoes versions 2-3)" in invoke("versions", "--index", index).stdout
    result = invoke("compact", "--index", index)
    assert "nothing to reclaim" in result.stdout
    assert "4 *" in invoke("versions", "--index", index).stdout  # no new version


def test_a_catalog_with_other_column_names_gets_a_mapping_hint(tmp_path):
    rows = [{"productId": p["id"], "productDisplayName": p["title"]} for p in sample_products(3)]
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    result = invoke("index", catalog, "--index", tmp_path / "ix")
    assert result.exit_code == 2
    assert "columns are: productId, productDisplayName" in result.stderr and "--map id=productId" in result.stderr
    assert not (tmp_path / "ix").exists()


def test_watch_names_the_file_in_every_line(index, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_catalog(inbox / "prices.jsonl", [{**sample_products(1)[0], "price": 5}])
    (inbox / "gone.delete.txt").write_text(sample_products(3)[2]["id"] + "\n")
    (inbox / "broken.jsonl").write_text("{not json\n")
    result = invoke("watch", inbox, "--index", index, "--once")
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert any("prices.jsonl" in line and "version" in line for line in lines)
    assert any("gone.delete.txt" in line for line in lines)
    assert any("broken.jsonl" in line for line in lines)
    assert all(any(name in line for name in ("prices.jsonl", "gone.delete.txt", "broken.jsonl")) for line in lines)
    shutil.rmtree(inbox)
