"""bench textonly's data preparation: the images withheld, and derived judgments split by query."""

import gzip
import json

import pytest

from shoplens.benchmarks.textonly import derived_judgments, text_only_catalog
from shoplens.common.errors import CatalogError
from shoplens.indexers.catalog import read_catalog
from tests.helpers import SAMPLE, sample_products


def test_the_text_only_copy_has_no_image_and_keeps_everything_else(tmp_path):
    source = tmp_path / "shop.jsonl.gz"
    rows = sample_products(50)
    for row in rows[:5]:
        row["photo"] = row.pop("image")  # a catalog that names its image column otherwise, mapped with --map
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    target = tmp_path / "text.jsonl"
    assert text_only_catalog(source, target, ["image=photo"], limit=40) == 40
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(written) == 40 and not any("image" in row or "photo" in row for row in written)
    assert written[7] == {k: v for k, v in rows[7].items() if k != "image"}
    assert not any(p.image for p in read_catalog(target).products)
    with pytest.raises(CatalogError, match="no catalog at"):
        text_only_catalog(tmp_path / "missing.jsonl", target)


def test_derived_judgments_are_split_by_query_without_overlap():
    splits = derived_judgments(SAMPLE, None, 120, seed=1)
    assert set(splits) == {"train", "validation", "test"}
    assert all(splits[name] for name in splits)
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["validation"]) & set(splits["test"])
    grades = [g for part in splits.values() for judged in part.values() for g in judged.values()]
    assert grades and all(1 <= g <= 4 for g in grades)
