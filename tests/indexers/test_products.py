"""Reading Arrow columns as numpy without pyarrow's pandas-importing conversions."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.products import arrow_numpy, load_products
from shoplens.indexers.updates import apply_delta, delete_products

from tests.helpers import sample_products


@pytest.mark.parametrize("values, arrow_type, fill", [
    ([1.5, None, 3.0, None, 5.0, 6.0, 7.0, 8.0, None, 10.0], pa.float64(), np.nan),
    ([3, None, 1, 2, None, 7, 8, 9, 10, None, 12], pa.int32(), -1),
    ([1, 2, 3], pa.int64(), None),
])
@pytest.mark.parametrize("start", [0, 1, 3])
def test_arrow_numpy_matches_pylist_with_nulls_and_slices(values, arrow_type, fill, start):
    array = pa.array(values, type=arrow_type).slice(start)
    expected = [fill if v is None else v for v in array.to_pylist()]
    got = arrow_numpy(array, fill)
    assert got.dtype == np.dtype(arrow_type.to_pandas_dtype())
    np.testing.assert_array_equal(got, np.array(expected, dtype=got.dtype))


def test_arrow_numpy_reads_list_offsets_dictionary_codes_and_chunks():
    lists = pa.array([["a", "b"], None, ["c"], []]).slice(1)
    assert arrow_numpy(lists.offsets).tolist() == lists.offsets.to_pylist() == [2, 2, 3, 3]
    codes = pc.dictionary_encode(pa.array(["x", None, "y", "x"])).indices
    assert arrow_numpy(codes, -1).tolist() == [0, -1, 1, 0]
    chunked = pa.chunked_array([[1.0, None], [3.0]])
    np.testing.assert_array_equal(arrow_numpy(chunked, np.nan), [1.0, np.nan, 3.0])
    assert len(arrow_numpy(pa.array([], type=pa.float64()))) == 0


def test_arrow_numpy_refuses_nulls_without_a_fill():
    with pytest.raises(ValueError, match="fill"):
        arrow_numpy(pa.array([1.0, None]))


def test_arrow_numpy_imports_no_pandas(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"f": pa.array([1.0, None]), "s": pa.array(["a", None])}), tmp_path / "t.parquet")
    script = ("import sys, numpy as np, pyarrow.parquet as pq, pyarrow.compute as pc\n"
              "from shoplens.indexers.products import arrow_numpy\n"
              f"table = pq.ParquetFile({str(tmp_path / 't.parquet')!r}).read()\n"
              "arrow_numpy(table.column('f'), np.nan)\n"
              "arrow_numpy(pc.dictionary_encode(table.column('s').combine_chunks()).indices, -1)\n"
              "print('pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_segments_from_parquet_and_arrow_concatenate_keeping_list_columns(tmp_path):
    """An index written before the Arrow twins (Parquet names a list's item "element") updated by a build that
    writes them ("item"): the category lists stay lists, not text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shoplens.indexers.products import _concat

    fresh = pa.table({"category": pa.array([["Apparel", "Shirts"]]), "price": [10.0]})
    pq.write_table(fresh, tmp_path / "old.parquet")
    old = pq.read_table(tmp_path / "old.parquet")
    joined = _concat([old, fresh])
    assert pa.types.is_list(joined.schema.field("category").type)
    assert joined.column("category").to_pylist() == [["Apparel", "Shirts"], ["Apparel", "Shirts"]]


def _table(rows):
    from shoplens.indexers.products import ProductTable

    columns = {name: [row.get(name) for row in rows] for name in ("id", "title", "brand", "image_hash")}
    return ProductTable(pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()}),
                        np.ones(len(rows), dtype=bool))


def test_collapse_keys_match_on_normalized_title_brand_and_photo_only():
    rows = [
        {"id": "a", "title": "Nike Men Blue T-Shirt", "brand": "Nike", "image_hash": "h1"},
        {"id": "b", "title": "  nike men   blue t shirt!", "brand": " NIKE ", "image_hash": "h1"},  # same listing
        {"id": "c", "title": "Nike Men Blue T-Shirt", "brand": "Nike", "image_hash": "h2"},  # another photo
        {"id": "d", "title": "Nike Men Blue T-Shirt", "brand": "Puma", "image_hash": "h1"},  # another brand
        {"id": "e", "title": "Nike Men Blue T-Shirt", "brand": "Nike", "image_hash": None},  # no photo
        {"id": "f", "title": "nike men blue t shirt", "brand": None, "image_hash": None},
        {"id": "g", "title": "Nike-Men-Blue-T-Shirt", "brand": "", "image_hash": None},  # no brand = empty brand
    ]
    products = _table(rows)
    keys = products.collapse_keys(np.arange(len(rows))).tolist()
    assert keys[0] == keys[1] and keys[5] == keys[6]
    assert len({keys[0], keys[2], keys[3], keys[4], keys[5]}) == 5
    assert all(key >= 0 for key in keys)


def test_collapse_keys_are_learned_per_row_and_inherited_by_a_later_version():
    from shoplens.indexers.products import ProductTable

    rows = [{"id": str(i), "title": f"Shirt {i % 3}", "brand": "B", "image_hash": None} for i in range(6)]
    first = _table(rows)
    asked = np.array([4, 1, 4])
    keys = first.collapse_keys(asked)
    assert keys[0] == keys[1] == keys[2]  # 4 and 1 are both "shirt 1"
    assert (first._collapse >= 0).tolist() == [False, True, False, False, True, False]
    later = ProductTable(pa.concat_tables([first.table, _table(rows[:2]).table]), np.ones(8, dtype=bool), extends=first)
    assert later._collapse[[1, 4]].tolist() == first._collapse[[1, 4]].tolist()
    assert later.collapse_keys(np.array([7]))[0] == later.collapse_keys(np.array([1]))[0]


def test_a_followed_version_maps_ids_as_a_fresh_load(small_index, tmp_path):
    """A version loaded on top of the previous one updates its id lookup by the changed rows only; it equals
    the lookup of the same version loaded on its own (updated ids on their new rows, deleted ids gone)."""
    index = IndexDirectory(small_index)
    older = load_products(index.version_path(index.current_version()) / "products")
    rows = sample_products(60)
    delta = tmp_path / "delta.jsonl"
    delta.write_text("".join(json.dumps({**row, "price": 1.5}) + "\n" for row in rows[:5]))
    apply_delta(small_index, delta, device="cpu")
    delete_products(small_index, [row["id"] for row in rows[3:8]])
    for _ in range(2):
        latest = index.version_path(index.current_version()) / "products"
        followed, fresh = load_products(latest, older), load_products(latest)
        assert followed.shared_rows == older.num_rows
        assert followed.docno_by_id == fresh.docno_by_id
        older = followed
    assert len(fresh.docno_by_id) == 55 and fresh.docno_by_id[rows[0]["id"]] >= 60


@pytest.mark.parametrize("seed", range(4))
def test_rows_taken_chunk_by_chunk_equal_a_take_from_one_chunk(seed):
    """A followed version's columns hold one chunk per segment (some empty); rows taken from them in any
    order (repeats, one chunk, across chunks, none) equal Arrow's take from the concatenated column."""
    from shoplens.indexers.products import take_rows

    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.choice([0, 1, 5, 40], size=6)] + [3]
    values = [[f"row {i}" if i % 7 else None for i in range(start, start + n)]
              for start, n in zip(np.cumsum([0] + sizes[:-1]), sizes)]
    column = pa.chunked_array([pa.array(chunk, type=pa.large_string()) for chunk in values])
    whole = column.combine_chunks()
    total = len(whole)
    for docnos in (rng.integers(0, total, 30), np.sort(rng.integers(0, total, 30)), np.arange(total)[::-1],
                   np.array([total - 1]), np.array([], dtype=np.int64), np.array([2, 2, 2])):
        got = take_rows(column, docnos)
        assert isinstance(got, pa.Array)
        assert got.to_pylist() == whole.take(pa.array(docnos, type=pa.int64())).to_pylist()
    with pytest.raises(IndexError):
        take_rows(column, np.array([total]))


def test_a_followed_table_keeps_chunks_and_reads_as_a_fresh_one(small_index, tmp_path):
    """Following updates appends the new segments' chunks to the served table (nothing concatenated) and
    extends keyword codes and live counts by the changed rows; each reader gets what a fresh load gives,
    also when the segments have no Arrow twins (an index written before them)."""
    index = IndexDirectory(small_index)
    older = load_products(index.version_path(index.current_version()) / "products")
    rows = sample_products(60)
    for twins in (True, False):
        if not twins:
            for path in small_index.glob("versions/*/products/*.arrow"):
                path.unlink()
        delta = tmp_path / f"delta-{twins}.jsonl"
        delta.write_text("".join(json.dumps({**row, "price": 2.5, "brand": f"Brand {twins}"}) + "\n" for row in rows[:6]))
        apply_delta(small_index, delta, device="cpu")
        delete_products(small_index, sorted(older.docno_by_id)[20:22 + twins])
        latest = index.version_path(index.current_version()) / "products"
        columns = [c for c in older.table.column_names
                   if c in ("brand", "category") or (c.startswith("a.") and not older.is_numeric(c))]
        for column in columns:
            older.live_counts(column)
        followed, fresh = load_products(latest, older), load_products(latest)
        assert followed.table.column("record").num_chunks > 1 and followed.table.equals(fresh.table)
        order = np.random.default_rng(1).permutation(fresh.num_rows)
        assert followed.records(order) == fresh.records(order)
        assert followed.column_values("price", order) == fresh.column_values("price", order)
        for column in columns:
            got, want = followed.keyword(column), fresh.keyword(column)
            assert got[1:] == want[1:], column
            np.testing.assert_array_equal(followed.live_counts(column), fresh.live_counts(column))
        assert followed.vocabulary_grew("brand") is True and fresh.vocabulary_grew("brand") is None
        older = followed
