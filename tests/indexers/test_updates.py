"""Incremental updates: only changed content is encoded, every write is one commit, deletes vanish everywhere."""

import json
import shutil

import numpy as np
import pytest

from shoplens.common.errors import CatalogError, ConfigError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.maintenance import check_index, compact, list_versions, rollback
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, apply_rows, delete_products
from tests.helpers import SAMPLE, sample_products

ROWS = sample_products(60)


def delta(tmp_path, rows, name="delta.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def live_ids(index_path):
    snapshot = Snapshot.open(IndexDirectory(index_path), device="cpu")
    return set(snapshot.products.docno_by_id)


def test_price_change_touches_no_encoder(small_index, tmp_path):
    target = ROWS[3]["id"]
    report = apply_delta(small_index, delta(tmp_path, [{"id": target, "price": 1.0}]))
    assert (report.version, report.updated, report.added) == (2, 1, 0)
    assert (report.texts_encoded, report.images_encoded) == (0, 0)
    from shoplens.indexers.encoders import _LOADED

    assert report.embeddings_reused == 2
    engine = SearchEngine(small_index, device="cpu", encoder=next(iter(_LOADED.values())))
    hits = engine.search(SearchRequest(text=ROWS[3]["title"], k=60, filters=["price<=1"]))
    assert [r.id for r in hits.results] == [target]
    record = engine.snapshot.products.records([engine.snapshot.products.docno_by_id[target]])[0]
    assert record["title"] == ROWS[3]["title"] and record["brand"] == ROWS[3]["brand"]  # a patch keeps other fields


def test_only_changed_text_or_image_is_encoded(small_index, tmp_path):
    other_image = str(SAMPLE.parent / ROWS[10]["image"])
    report = apply_delta(small_index, delta(tmp_path, [
        {"id": ROWS[0]["id"], "title": "Completely New Title For This Product"},
        {"id": ROWS[1]["id"], "image": other_image},
        dict(ROWS[2], image=str(SAMPLE.parent / ROWS[2]["image"])),  # identical: unchanged
        {"id": "brand-new", "title": "Brand New Thing", "price": 10},
    ]))
    assert (report.updated, report.added, report.unchanged) == (2, 1, 1)
    assert report.texts_encoded == 2  # the new title and the new product
    assert report.images_encoded == 0  # the "new" image is another product's, already in the cache
    assert live_ids(small_index) == {r["id"] for r in ROWS} | {"brand-new"}
    assert check_index(small_index).ok


def test_deleted_products_vanish_from_every_result_path(small_index, tmp_path, encoder):
    victims = [ROWS[5]["id"], ROWS[6]["id"]]
    engine = SearchEngine(small_index, device="cpu", encoder=encoder)
    before = engine.search(SearchRequest(text=ROWS[5]["title"], k=5))
    assert before.results[0].id == victims[0]
    report = delete_products(small_index, victims + ["no-such-id"])
    assert report.deleted == 2 and [r.id for r in report.rejects] == ["no-such-id"]
    for mode in ("hybrid", "lexical", "dense"):
        response = engine.search(SearchRequest(text=ROWS[5]["title"], k=60, mode=mode))
        assert not set(victims) & {r.id for r in response.results}, mode
    image = engine.search(SearchRequest(image=str(SAMPLE.parent / ROWS[5]["image"]), k=60))
    assert not set(victims) & {r.id for r in image.results}
    brand = engine.search(SearchRequest(text="x", k=60, filters=[f"brand={ROWS[5]['brand']}"]))
    assert victims[0] not in {r.id for r in brand.results}
    assert engine.snapshot.manifest["counts"] == {"products": 58, "rows": 60, "with_image": 58}
    assert check_index(small_index).ok


def test_strict_mode_changes_nothing(small_index, tmp_path):
    bad = delta(tmp_path, [{"id": ROWS[0]["id"], "price": 3}, {"id": "new", "price": 4}])  # "new" has no title
    with pytest.raises(CatalogError, match="1 bad row.*line 2.*missing title.*index left unchanged"):
        apply_delta(small_index, bad, strict=True)
    with pytest.raises(CatalogError, match="unknown product id"):
        delete_products(small_index, ["ghost"], strict=True)
    assert IndexDirectory(small_index).current_version() == 1
    report = apply_delta(small_index, bad)  # default: the good row goes in, the bad one is reported
    assert report.updated == 1 and len(report.rejects) == 1 and report.rejects[0].line == 2


def test_apply_rows_takes_parsed_rows_and_names_their_files(small_index, tmp_path):
    rows = [(3, {"id": ROWS[0]["id"], "price": 7.5}, "", "prices.jsonl"),
            (9, {"id": "brand-new"}, '{"id": "brand-new"}', "copy.csv")]
    report = apply_rows(small_index, rows, "prices.jsonl, copy.csv", tmp_path, summary={"files": ["prices.jsonl", "copy.csv"]})
    assert report.version == 2 and report.updated == 1 and report.added == 0
    assert [r.describe() for r in report.rejects] == ["copy.csv line 9 (id brand-new): missing title"]
    assert list_versions(small_index)[0]["description"] == "update 1 products from prices.jsonl, copy.csv (1 changed)"
    logged = [json.loads(line) for line in open(report.rejects_path, encoding="utf-8")]
    assert [(r["kind"], r["source"], r["line"], r["id"]) for r in logged] == [("update", "copy.csv", 9, "brand-new")]


def test_update_and_delete_rejects_append_to_one_file(small_index, tmp_path):
    with pytest.raises(CatalogError, match="changes nothing"):  # the rejects are written all the same
        apply_delta(small_index, delta(tmp_path, [{"id": "no-title"}]))
    with pytest.raises(CatalogError, match="changes nothing"):
        delete_products(small_index, ["ghost"], source="ids.txt")
    logged = [json.loads(line) for line in open(str(small_index) + ".rejects.jsonl", encoding="utf-8")]
    assert [(r["kind"], r["source"], r["line"], r["reason"]) for r in logged] == [
        ("update", "delta.jsonl", 1, "missing title"), ("delete", "ids.txt", 1, "unknown product id")]
    assert all(r["at"].endswith("Z") for r in logged)


def test_versions_and_rollback(small_index, tmp_path, encoder):
    target = ROWS[7]["id"]
    apply_delta(small_index, delta(tmp_path, [{"id": target, "price": 7.0}]))
    delete_products(small_index, [ROWS[8]["id"]])
    rows = list_versions(small_index)
    assert [(r["version"], r["kind"], r["current"]) for r in rows] == [(3, "delete", True), (2, "update", False),
                                                                      (1, "build", False)]
    assert rows[0]["change"]["deleted"] == 1
    engine = SearchEngine(small_index, device="cpu", encoder=encoder)
    assert engine.search(SearchRequest(text="x", k=5, filters=["price<=7"])).results[0].id == target
    assert rollback(small_index, 1) == 4
    response = engine.search(SearchRequest(text="x", k=5, filters=["price<=7"]))  # same engine, no restart
    assert response.version == 4 and target not in {r.id for r in response.results}
    assert live_ids(small_index) == {r["id"] for r in ROWS}
    assert IndexDirectory(small_index).manifest()["change"] == {"rolled_back_to": 1, "rolled_back_from": 3}
    with pytest.raises(ConfigError, match="not kept"):
        rollback(small_index, 99)
    assert check_index(small_index).ok
    from shoplens.indexers.maintenance import set_retention

    assert set_retention(small_index, 2) == 5
    assert [r["version"] for r in list_versions(small_index)] == [5, 4]
    assert IndexDirectory(small_index).manifest()["keep_versions"] == 2


def test_compaction_reclaims_dead_rows(small_index, tmp_path, encoder):
    apply_delta(small_index, delta(tmp_path, [{"id": r["id"], "price": 1.0} for r in ROWS[:30]]))
    delete_products(small_index, [r["id"] for r in ROWS[30:40]])
    index = IndexDirectory(small_index)
    assert index.manifest()["counts"] == {"products": 50, "rows": 90, "with_image": 50}
    report = compact(small_index)
    assert (report.rows_before, report.rows_after) == (90, 50)
    assert index.manifest()["counts"] == {"products": 50, "rows": 50, "with_image": 50}
    assert check_index(small_index).ok
    engine = SearchEngine(small_index, device="cpu", encoder=encoder)
    assert engine.search(SearchRequest(text=ROWS[45]["title"], k=1)).results[0].id == ROWS[45]["id"]
    assert len(engine.search(SearchRequest(text="x", k=60, filters=["price<=1"])).results) == 30


def test_a_running_search_keeps_its_version(small_index, tmp_path, encoder):
    engine = SearchEngine(small_index, device="cpu", encoder=encoder)
    old = engine.snapshot
    delete_products(small_index, [r["id"] for r in ROWS[:50]])
    # a query that started on the old snapshot still reads all 60 products from it
    assert old.products.num_live == 60 and old.lexical.num_docs() == 60
    assert len(old.vectors.search(old.vectors.vectors(np.array([0]))["fused"][0], 60, old.products.live)[0]) == 60
    assert engine.search(SearchRequest(text="x", k=60)).version == 2
    assert engine.snapshot.products.num_live == 10


def test_check_finds_stores_that_disagree(small_index, tmp_path):
    apply_delta(small_index, delta(tmp_path, [{"id": ROWS[0]["id"], "title": "Another Title"}]))
    index = IndexDirectory(small_index)
    current = index.version_path(2)
    # the lexical store of version 1 (without the new row, with the old one) put in place of version 2's
    shutil.rmtree(current / "lexical")
    shutil.copytree(index.version_path(1) / "lexical", current / "lexical")
    report = check_index(small_index)
    assert not report.ok and "lexical store differs" in report.problems[0]


def test_check_finds_embeddings_that_do_not_match_content(small_index):
    index = IndexDirectory(small_index)
    vectors = index.version_path(1) / "vectors"
    text_file = next(vectors.glob("text-*.npy"))
    data = np.load(text_file)
    data[[3, 4]] = data[[4, 3]]  # two products' text embeddings swapped
    text_file.unlink()  # the file is shared by hard link with nothing else here, but write a new inode anyway
    np.save(text_file, data)
    report = check_index(small_index)
    assert not report.ok and "2 stored text embedding(s) differ" in " ".join(report.problems)


def test_deep_check_reencodes(small_index, encoder):
    report = check_index(small_index, deep=5)
    assert report.ok and report.facts["reencoded"] == {"texts": 5, "images": 5}


def test_model_mismatch_on_update(small_index):
    from shoplens.indexers.writer import IndexWriter, WriteOptions

    writer = IndexWriter(small_index, WriteOptions(model="ViT-B-32", pretrained="openai"))
    from shoplens.common.errors import ModelMismatchError

    with pytest.raises(ModelMismatchError, match="updates must use the same model"):
        writer.commit_changes([], ["x"], kind="delete")
    assert IndexDirectory(small_index).current_version() == 1



def test_following_an_update_reads_only_what_changed(small_index, tmp_path):
    index = IndexDirectory(small_index)
    old = Snapshot.open(index, device="cpu")
    keyword_columns = [c for c in old.products.table.column_names
                       if c in ("brand", "category") or (c.startswith("a.") and not old.products.is_numeric(c))]
    for column in keyword_columns:
        old.products.keyword(column)
    apply_delta(small_index, delta(tmp_path, [{"id": ROWS[5]["id"], "price": 2.5, "brand": "  NEWBRAND "},
                                              {"id": "late-1", "title": "Late Arrival Scarf", "price": 99,
                                               "brand": ROWS[7]["brand"].upper(), "category": ["Scarves", "Winter Wear"]}]))
    fresh = Snapshot.open(index, device="cpu")
    followed = Snapshot.open(index, device="cpu", previous=old)
    assert followed.version == fresh.version == 2
    assert followed.vectors.cpu_index is old.vectors.cpu_index  # a small update does not reload the vector index
    assert followed.products.segments == fresh.products.segments and len(followed.products.segments) == 2
    assert followed.products.table.equals(fresh.products.table)
    np.testing.assert_array_equal(followed.products.live, fresh.products.live)
    assert followed.products.docno_by_id == fresh.products.docno_by_id
    np.testing.assert_array_equal(followed.vectors.fused, fresh.vectors.fused)
    assert len(keyword_columns) >= 3
    assert all(followed.products._extend_keyword(c) is not None for c in keyword_columns)  # really extended
    for column in keyword_columns:  # codes extended from the old version equal codes computed from scratch
        got, want = followed.products.keyword(column), fresh.products.keyword(column)
        assert got[1:] == want[1:], column
        pairs = zip(got[0], want[0]) if got[1] == "list" else [(got[0], want[0])]
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
    assert followed.products.keyword("brand")[2][-1] == "newbrand"
    # the old snapshot is untouched: queries in flight keep their version
    assert old.products.num_rows == 60 and old.vectors.num_rows == 60 and old.products.live.all()
    rollback(small_index, 1)
    back = Snapshot.open(index, device="cpu", previous=followed)
    assert back.products.num_rows == 60 and back.vectors.num_rows == 60
