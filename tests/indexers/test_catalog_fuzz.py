"""Property tests of the catalog reader: for any file, products and line-numbered rejects, or a CatalogError.

Never another exception, never a hang, and nothing dropped silently: every
non-empty JSONL line becomes a product or a reject.
"""

import gzip
import json
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, strategies as st

from shoplens.common.errors import CatalogError
from shoplens.indexers.catalog import Product, read_catalog
from shoplens.indexers.products import RowMeta, products_table
from shoplens.indexers.rows import MAX_FIELD_CHARS
from tests.helpers import bounded

KEYS = ["id", "title", "description", "brand", "category", "price", "image", "colour", "size", "nested", "ｉｄ", ""]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 500), max_value=10 ** 500),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["NaN", "inf", "-1", "1,299.50", "NA", " ", "a > b > c", "x|y", "\x00", "\ufeff", "1e400"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=12)
rows = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
garbage = st.one_of(st.binary(max_size=60), st.sampled_from([b"{", b"[1,2]", b"null", b'"x"', b"\xff\xfe{}",
                                                            b'{"id": 1, "price": ' + b"9" * 5000 + b"}",
                                                            b"[" * 5000, b"\xef\xbb\xbf{}"]))


def jsonl_line(row) -> bytes:
    try:
        return json.dumps(row, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, OverflowError):
        return b"{"


def check_result(result, line_count):
    assert all(isinstance(p, Product) and isinstance(p.id, str) and p.id and isinstance(p.title, str) and p.title
               for p in result.products)
    for product in result.products:
        assert product.price is None or (math.isfinite(product.price) and product.price >= 0)
        assert all(isinstance(c, str) for c in product.category)
        json.dumps(product.to_record(), allow_nan=False)  # what the product store writes
    assert all(1 <= r.line <= max(line_count, 1) and r.reason for r in result.rejects)
    metas = [RowMeta(text_hash="t", image_hash=None) for _ in result.products]
    products_table(result.products, metas, 0)  # the product store can hold whatever was accepted


def read_or_mapping_hint(path):
    """The file's products and rejects; or None when no row has an id (or title) at all: then the one
    file-level error is the mapping hint that lists the file's columns and suggests --map; or, when no row
    is valid and line 1 opens a JSON array or a pretty-printed object, the hint that converts it to JSONL; or,
    when the file opens with NUL-laden bytes (or a UTF-16 / UTF-32 mark and NULs), the one saying to save it as UTF-8;
    or, when every row (two or more) was rejected for a value of the same column, the one naming that column."""
    try:
        with bounded():
            return read_catalog(path)
    except CatalogError as exc:
        assert ("no valid products" in str(exc) and "--map" in str(exc)) or (
            "is not JSON Lines" in str(exc) and "jq -c" in str(exc)) or (
            re.search(r"is UTF-(16|32) text, not UTF-8", str(exc)) and "iconv" in str(exc)) or (
            "every row was rejected for column" in str(exc)), str(exc)
        return None


@given(lines=st.lists(st.one_of(rows.map(jsonl_line), garbage), max_size=12), compress=st.booleans(),
       bom=st.booleans())
def test_any_jsonl_file_gives_products_and_rejects(tmp_path_factory, lines, compress, bom):
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + b"\n"
    path = tmp_path_factory.mktemp("c") / ("c.jsonl.gz" if compress else "c.jsonl")
    path.write_bytes(gzip.compress(data) if compress else data)
    result = read_or_mapping_hint(path)
    if result is None:
        return
    check_result(result, len(lines))
    non_empty = sum(1 for line in lines if line.decode("utf-8", "surrogateescape").strip())
    assert len(result.products) + len(result.rejects) == non_empty  # nothing dropped silently


@given(data=st.binary(max_size=400), cut=st.integers(min_value=1, max_value=200))
def test_damaged_gzip_is_a_catalog_error_or_rows(tmp_path_factory, data, cut):
    path = tmp_path_factory.mktemp("g") / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "a", "title": "t"}\n' * 50 + data)[:cut])
    try:
        with bounded():
            read_catalog(path)
    except CatalogError as exc:
        assert str(exc)


cells = st.one_of(st.text(max_size=20), st.sampled_from(['"', '""', '"open', 'a"b', "\n", "\r\n", ",", "x" * 300]))


@given(header=st.lists(st.sampled_from(["id", "title", "price", "brand", "description", "image", "x"]), min_size=1,
                       max_size=5, unique=True),
       body=st.lists(st.lists(cells, max_size=6), max_size=8), raw=st.binary(max_size=80), bom=st.booleans())
def test_any_csv_file_gives_products_and_rejects(tmp_path_factory, header, body, raw, bom):
    text = ",".join(header) + "\n" + "\n".join(",".join(row) for row in body) + "\n"
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass") + raw
    path = tmp_path_factory.mktemp("v") / "c.csv"
    path.write_bytes(data)
    try:
        with bounded():
            result = read_catalog(path)
    except CatalogError:
        return
    check_result(result, data.count(b"\n") + data.count(b"\r") + 2)


def test_csv_unterminated_quote_is_rejected_with_its_lines(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,price\nc1,"Red shirt,100\nc2,Blue jeans,200\n')
    result = read_catalog(path)
    assert result.products == [] and len(result.rejects) == 1
    assert result.rejects[0].line == 2 and "unterminated quote" in result.rejects[0].reason
    path.write_text('id,title,price\nc1,"Red shirt,100\nc2,Blue jeans,200\nc3,Hat",5\nc4,Cap,3\n')
    result = read_catalog(path)
    assert [p.id for p in result.products] == ["c4"]
    assert "line 2 to line 4" in result.rejects[0].reason


def test_csv_multiline_description_is_still_fine(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,description\nc1,Shirt,"soft,\nwarm, light"\nc2,Hat,x\n')
    result = read_catalog(path)
    assert [p.id for p in result.products] == ["c1", "c2"] and not result.rejects


def test_bom_oversized_field_and_bad_utf8_cost_one_row_each(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b'\xef\xbb\xbfid,title\n1,"' + b"x" * (MAX_FIELD_CHARS + 10) + b'"\n2,ok\n3,bad \xff\n4,fine\n')
    result = read_catalog(path)
    assert [p.id for p in result.products] == ["2", "4"]
    assert [r.line for r in result.rejects] == [2, 4]
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "title": "t"}\n{"id": "b", "title": "bad \xff"}\n')
    result = read_catalog(path)
    assert [p.id for p in result.products] == ["a"] and result.rejects[0].line == 2


def test_value_rules(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = ['{"id": "big", "title": "x", "price": ' + "9" * 400 + "}",
            '{"id": "huge", "title": "x", "price": ' + "9" * 5000 + "}",
            '{"id": "l", "title": ["a", "b"]}', '{"id": "d", "title": {"a": 1}}', '{"id": "b", "title": true}',
            '{"id": "n", "title": 1984}', '{"id": true, "title": "x"}', '{"id": "i", "title": "x", "image": 5}',
            '{"id": "inf", "title": "x", "w": Infinity}', '{"id": "ok", "title": "x", "brand": ["A", "B"]}']
    path.write_text("\n".join(rows) + "\n")
    result = read_catalog(path)
    assert {p.id: p.title for p in result.products} == {"n": "1984", "ok": "x"}
    reasons = {r.line: r.reason for r in result.rejects}
    assert "64 bits" in reasons[1] and "digits" in reasons[2] and "title must be text" in reasons[3]
    assert "id must be text" in reasons[7] and "image" in reasons[8] and "finite" in reasons[9]


parquet_columns = st.fixed_dictionaries({
    "id": st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=3, max_size=3),
    "title": st.lists(st.one_of(st.none(), st.binary(max_size=10)), min_size=3, max_size=3),
    "price": st.lists(st.one_of(st.none(), st.floats()), min_size=3, max_size=3),
    "tags": st.lists(st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3)), min_size=3, max_size=3),
    "count": st.lists(st.one_of(st.none(), st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)),
                      min_size=3, max_size=3),
})


@given(columns=parquet_columns)
def test_any_parquet_table_gives_products_and_rejects(tmp_path_factory, columns):
    path = tmp_path_factory.mktemp("p") / "c.parquet"
    table = pa.table({"id": pa.array(columns["id"], pa.string()), "title": pa.array(columns["title"], pa.binary()),
                      "price": pa.array(columns["price"], pa.float64()),
                      "tags": pa.array(columns["tags"], pa.list_(pa.string())),
                      "count": pa.array(columns["count"], pa.int64()),
                      "added": pa.array([0, 1, None], pa.timestamp("s"))})
    pq.write_table(table, path)
    result = read_or_mapping_hint(path)
    if result is None:
        return
    check_result(result, 3)
    assert len(result.products) + len(result.rejects) == 3


def test_binary_parquet_title_must_be_utf8(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "title": [b"ok", b"\xff\xfe"]}), path)
    result = read_catalog(path)
    assert [p.title for p in result.products] == ["ok"] and "binary" in result.rejects[0].reason

