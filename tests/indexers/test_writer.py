import json

import numpy as np
import pytest

from shoplens.common.errors import CatalogError
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import SAMPLE, sample_products, write_catalog


def test_build_writes_every_store_at_one_version(small_index):
    index = IndexDirectory(small_index)
    manifest = index.manifest()
    assert manifest["version"] == 1 and manifest["kind"] == "build"
    assert manifest["model"]["name"] == "shoplens-lite0-minilm" and manifest["model"]["dim"] == 256
    assert manifest["backends"]["lexical"]["backend"] == "tantivy"
    assert manifest["backends"]["vector"] == {"backend": "faiss", "kind": "flat", "dim": 256, "image_weight": 0.5}
    assert manifest["counts"] == {"products": 60, "rows": 60, "with_image": 60}
    assert {"faiss-cpu", "tantivy", "torch", "open-clip-torch"} <= set(manifest["software"])
    snapshot = Snapshot.open(index, device="cpu")
    assert snapshot.products.num_live == 60
    assert snapshot.vectors.num_rows == 60
    assert snapshot.lexical.num_docs() == 60
    assert sorted(snapshot.lexical.all_docnos().tolist()) == list(range(60))


def test_rebuilding_reuses_every_embedding(small_index, small_catalog, encoder):
    report = build_index(small_catalog, small_index, WriteOptions(device="cpu"), encoder=encoder)
    assert report.version == 2
    assert (report.texts_encoded, report.images_encoded) == (0, 0)
    assert report.embeddings_reused == 120
    assert IndexDirectory(small_index).committed_versions() == [1, 2]


def test_bad_rows_are_skipped_and_written_next_to_the_index(tmp_path, encoder):
    rows = sample_products(10)
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    with open(catalog, "a") as handle:
        handle.write('{"id": "x1", "price": 5}\n{broken\n')
        handle.write(json.dumps({"id": rows[0]["id"], "title": "duplicate"}) + "\n")
    report = build_index(catalog, tmp_path / "ix", WriteOptions(device="cpu"), encoder=encoder)
    assert report.products == 10
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejects] == [
        (11, "missing title"), (12, "invalid JSON"), (13, "duplicate id (first seen on line 1)")]
    rejects = [json.loads(line) for line in (tmp_path / "ix.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [11, 12, 13]


def test_strict_mode_fails_and_leaves_the_previous_version(small_index, tmp_path, encoder):
    bad = write_catalog(tmp_path / "bad.jsonl", sample_products(5) + [{"id": "z", "title": "bad", "price": "free"}])
    with pytest.raises(CatalogError, match="1 bad row.*line 6.*not a number.*index left unchanged"):
        build_index(bad, small_index, WriteOptions(device="cpu"), strict=True, encoder=encoder)
    index = IndexDirectory(small_index)
    assert index.current_version() == 1 and index.committed_versions() == [1]
    assert Snapshot.open(index, device="cpu").products.num_live == 60


def test_missing_and_unreadable_images_index_the_product_from_text(tmp_path, encoder):
    rows = sample_products(4)
    rows[3] = dict(rows[3], image="https://cdn.example.com/p/4.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    rows[1] = dict(rows[1], image=str(broken))
    rows[2] = dict(rows[2], image=str(tmp_path / "nowhere.jpg"))
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    report = build_index(catalog, tmp_path / "ix", WriteOptions(device="cpu"), encoder=encoder)
    assert report.products == 4
    problems = {p.id: p.reason for p in report.image_problems}
    assert problems[rows[3]["id"]].startswith("an image URL") and "downloads nothing" in problems[rows[3]["id"]]
    assert problems[rows[1]["id"]].startswith("unreadable image")
    assert problems[rows[2]["id"]] == "image file not found"
    snapshot = Snapshot.open(IndexDirectory(tmp_path / "ix"), device="cpu")
    assert snapshot.manifest["counts"]["with_image"] == 1
    flags = snapshot.vectors.vectors(np.arange(4))["has_image"]
    assert flags.tolist() == [True, False, False, False]
    # the text-only products are still found through their text embedding
    vectors = snapshot.vectors.vectors(np.arange(3))
    np.testing.assert_allclose(vectors["fused"][1], vectors["text"][1], rtol=1e-5)


def test_empty_catalog_is_an_error(tmp_path, encoder):
    catalog = tmp_path / "empty.jsonl"
    catalog.write_text('{"id": 1}\n')
    with pytest.raises(CatalogError, match="no valid products"):
        build_index(catalog, tmp_path / "ix", WriteOptions(device="cpu"), encoder=encoder)
    assert not IndexDirectory(tmp_path / "ix").exists()


@pytest.mark.parametrize("name, content", [("empty.jsonl", b""), ("blank.jsonl", b"\n  \n\n"),
                                           ("header.csv", b"id,title\n"), ("empty.jsonl.gz", None)])
def test_a_catalog_without_rows_says_so_not_see_the_rejects(tmp_path, encoder, name, content):
    """An empty file pointed at `<index>.rejects.jsonl` ("no valid products (0 rejected); see ..."), a file
    that nothing was written to; it now says the catalog holds no rows, and nothing is created."""
    import gzip

    catalog = tmp_path / name
    catalog.write_bytes(gzip.compress(b"") if content is None else content)
    with pytest.raises(CatalogError, match="holds no product rows") as caught:
        build_index(catalog, tmp_path / "ix", WriteOptions(device="cpu"), encoder=encoder)
    assert "rejects" not in str(caught.value)
    assert not IndexDirectory(tmp_path / "ix").exists() and not list(tmp_path.glob("ix*"))


def test_a_product_whose_photo_is_a_strip_is_indexed_from_its_text(tmp_path, encoder):
    """One product photo of 20000x1 pixels ended the whole `index` run with a ValueError traceback (the
    encoder's resize made it 0 pixels high); it is now an unusable image, reported, and the product is
    indexed from its text like any other."""
    from PIL import Image

    Image.new("RGB", (20000, 1), (0, 0, 0)).save(tmp_path / "strip.png")
    rows = sample_products(2)
    rows[0]["image"] = str(tmp_path / "strip.png")
    rows[1]["image"] = str(SAMPLE.parent / rows[1]["image"])
    report = build_index(write_catalog(tmp_path / "c.jsonl", rows), tmp_path / "ix", WriteOptions(device="cpu"),
                         encoder=encoder)
    manifest = IndexDirectory(tmp_path / "ix").manifest()
    assert manifest["counts"]["products"] == 2 and manifest["counts"]["with_image"] == 1
    assert any("strip rather than a photo" in problem.reason for problem in report.image_problems), report.to_json()


def test_the_sample_catalog_builds(sample_index):
    manifest = IndexDirectory(sample_index).manifest()
    assert manifest["counts"]["products"] == 1500
    assert manifest["change"]["catalog"] == str(SAMPLE.resolve())
