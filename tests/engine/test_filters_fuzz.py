"""Property tests of filter parsing and evaluation: any text gives a mask or a FilterError."""

import numpy as np
from hypothesis import given, strategies as st

from shoplens.common.errors import FilterError
from shoplens.engine.filters import filter_mask, parse_filter
from shoplens.indexers.catalog import Product
from shoplens.indexers.products import ProductTable, RowMeta, products_table
from tests.helpers import bounded

PRODUCTS = [Product(id=str(i), title=f"t{i}", brand=["Nike", "Puma", ""][i % 3], category=["Shoes", f"c{i}"],
                    price=[None, 10.0, 2500.0, 1e9][i % 4], attributes={"year": str(2000 + i), "size": [i, "M"],
                                                                         "rating": i * 0.5})
            for i in range(12)]
TABLE = ProductTable(products_table(PRODUCTS, [RowMeta("h", None) for _ in PRODUCTS], 0), np.ones(12, bool))

fields = st.sampled_from(["price", "brand", "category", "year", "size", "rating", "nothing", "", " ", "id", "PRICE"])
operators = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "==", "=<", "<<", "", "=!"])
operands = st.one_of(st.text(max_size=12), st.sampled_from(["nan", "inf", "-inf", "1e400", "9" * 5000, "Nike|Puma",
                                                            '"a|b"', "1,299.5", "|", "", "'", "\x00"]))


@given(field=fields, op=operators, value=operands)
def test_any_filter_gives_a_mask_or_a_filter_error(field, op, value):
    text = f"{field}{op}{value}"
    try:
        with bounded():
            mask = filter_mask(TABLE, [parse_filter(text)])
    except FilterError as exc:
        assert str(exc)
        return
    assert mask.dtype == bool and mask.shape == (12,)


@given(text=st.one_of(st.text(max_size=60), st.binary(max_size=30).map(lambda b: b.decode("latin-1"))))
def test_any_filter_text_parses_or_is_refused(text):
    try:
        with bounded():
            flt = parse_filter(text)
    except FilterError:
        return
    assert flt.field and flt.values


def test_non_finite_bounds_are_refused():
    for text in ("price<=nan", "price>inf", "price<" + "9" * 5000):
        try:
            parse_filter(text)
        except FilterError as exc:
            assert "finite" in str(exc)
        else:
            raise AssertionError(text)
