import numpy as np
import pytest

from shoplens.common.errors import FilterError
from shoplens.engine.filters import check_comparable, filter_mask, parse_filter, parse_filters
from shoplens.indexers.catalog import Product
from shoplens.indexers.products import ProductTable, RowMeta, products_table

PRODUCTS = [
    Product("1", "Nike Blue Shoe", brand="Nike", category=["Footwear", "Shoes"], price=2999.0,
            attributes={"year": "2012", "gender": "Men", "rating": 1, "sizes": ["S", "M"]}),
    Product("2", "Puma Red Shirt", brand="Puma", category=["Apparel", "Shirts"], price=999.0,
            attributes={"year": "2015", "gender": "Women", "rating": 0}),
    Product("3", "Nike Watch", brand="NIKE", category=["Accessories", "Watches"], price=None,
            attributes={"gender": "Unisex", "sizes": ["Free Size"]}),
    Product("4", "Allen Solly Shirt", brand="Allen Solly", category=["Apparel", "Shirts"], price=3000.0,
            attributes={"year": "n/a", "gender": "Men", "rating": 1}),
]


@pytest.fixture(scope="module")
def table():
    metas = [RowMeta("h", None)] * len(PRODUCTS)
    return ProductTable(products_table(PRODUCTS, metas, 0), np.ones(len(PRODUCTS), bool))


def ids(table, texts):
    mask = filter_mask(table, parse_filters(texts))
    return [PRODUCTS[i].id for i in np.flatnonzero(mask)]


def test_parse():
    assert parse_filter("price<=3000") == parse_filter(" price <= 3000 ")
    f = parse_filter("brand=Nike|Puma")
    assert (f.field, f.op, f.values) == ("brand", "=", ("Nike", "Puma"))
    assert parse_filter('brand="Allen Solly"').values == ("Allen Solly",)
    assert parse_filter("category!=Shirts").op == "!="
    assert parse_filter("brand==Nike") == parse_filter("brand=Nike")  # == as a programmer writes it


@pytest.mark.parametrize("text, message", [
    ("price", "cannot parse"), ("price<=", "has no value after '<='; give one, e.g. price<=3000"), ("=Nike", "cannot parse"),
    ("brand==", "has no value after '=='; give one, e.g. brand==Nike"), ("brand= ", "has no value after '='"),
    ("price<=cheap", "needs a number"), ("price<1|2", "one number"),
])
def test_parse_errors(text, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(text)


def test_numeric_comparisons_skip_missing_values(table):
    assert ids(table, ["price<=3000"]) == ["1", "2", "4"]
    assert ids(table, ["price<3000"]) == ["1", "2"]
    assert ids(table, ["price>999"]) == ["1", "4"]
    assert ids(table, ["price=999"]) == ["2"]


def test_keyword_match_is_case_insensitive_and_exact(table):
    assert ids(table, ["brand=nike"]) == ["1", "3"]
    assert ids(table, ["brand=Nike|Puma"]) == ["1", "2", "3"]
    assert ids(table, ["brand=Allen Solly"]) == ["4"]
    assert ids(table, ["brand=Allen"]) == []
    assert ids(table, ["brand!=Nike"]) == ["2", "4"]


def test_list_fields_match_any_element(table):
    assert ids(table, ["category=shirts"]) == ["2", "4"]
    assert ids(table, ["category=Footwear|Watches"]) == ["1", "3"]
    assert ids(table, ["sizes=M"]) == ["1"]
    assert ids(table, ["category!=Shirts"]) == ["1", "3"]


def test_attributes_and_numbers_stored_as_text(table):
    assert ids(table, ["gender=Men"]) == ["1", "4"]
    assert ids(table, ["year>=2013"]) == ["2"]  # "n/a" and missing years never match a comparison
    assert ids(table, ["rating=1"]) == ["1", "4"]
    assert ids(table, ["GENDER=men"]) == ["1", "4"]  # field names: case-insensitive when unambiguous


def test_filters_are_anded(table):
    assert ids(table, ["brand=Nike", "price<=3000"]) == ["1"]
    assert filter_mask(table, []) is None


def test_unknown_field_lists_the_known_ones(table):
    with pytest.raises(FilterError, match="unknown filter field 'colour'.*brand.*gender"):
        ids(table, ["colour=Blue"])


@pytest.mark.parametrize("texts", [
    ["price<=2999"], ["price>1000"], ["brand=nike"], ["brand!=Nike"], ["category=Shirts|Watches"],
    ["category!=Shirts"], ["sizes=M|Free Size"], ["year=2012|2015"], ["rating=1"], ["gender=men", "price>=1000"],
])
def test_a_mask_over_some_rows_equals_the_whole_mask_at_those_rows(table, texts):
    whole = filter_mask(table, parse_filters(texts))
    for rows in ([3, 0, 2], [1], [2, 2, 0], [], [0, 1, 2, 3]):
        rows = np.array(rows, dtype=np.int64)
        assert filter_mask(table, parse_filters(texts), rows=rows).tolist() == whole[rows].tolist()


@pytest.mark.parametrize("text", ["title>3", "brand<=5", "gender>=1", "sizes<2"])
def test_a_range_filter_on_a_field_without_numbers_is_refused(table, text):
    """title>3 matched nothing and was answered as an empty page (HTTP 200, exit 0): now a FilterError naming
    the field; a text field whose values are numbers (a year "2012") still compares."""
    with pytest.raises(FilterError, match=rf"no product in this index has a number in .*; compare its text with ="):
        check_comparable(table, parse_filters([text]))
    check_comparable(table, parse_filters(["year>=2013", "price<=1000", "rating>0", "brand=Nike"]))
    empty = ProductTable(products_table(PRODUCTS[2:3], [RowMeta("h", None)], 0), np.ones(1, bool))
    with pytest.raises(FilterError, match="no product in this index has a number in 'price'"):
        check_comparable(empty, parse_filters(["price<=3000"]))
