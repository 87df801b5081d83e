"""Reading Arrow columns as numpy without pyarrow's pandas-importing conversions."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoplens.indexers.products import arrow_numpy


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
