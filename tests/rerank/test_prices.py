import pytest

from shoplens.rerank.features import price_range
from shoplens.rerank.prices import parse_price


@pytest.mark.parametrize("text, low, high, rest", [
    ("lamp under $50", None, 50.0, "lamp"),
    ("drill below 100 dollars", None, 100.0, "drill"),
    ("rug between $100 and $200", 100.0, 200.0, "rug"),
    ("sofa less than 1,500", None, 1500.0, "sofa"),
    ("cheap dress under 2k", None, 2000.0, "cheap dress"),
    ("shoes 1000-2000", 1000.0, 2000.0, "shoes"),
    ("kurta between 500 and 1000 rupees for women", 500.0, 1000.0, "kurta for women"),
])
def test_stated_prices(text, low, high, rest):
    assert parse_price(text) == (low, high, rest)


@pytest.mark.parametrize("text", ["ladder over 6 ft", "dumbbells under 10 lbs", "bulb under 60 watt",
                                  "bag under 5 kg", "pipe under 1/2 in.", "paint under 2 gal", "tv over 55 inches"])
def test_a_number_with_a_unit_or_a_fraction_is_not_a_price(text):
    assert parse_price(text) == (None, None, text)


def test_the_reranker_reads_the_same_limits_as_query_understanding():
    for text in ("lamp under $50", "ladder over 6 ft", "rug between $100 and $200", "under 2k"):
        assert price_range(text) == parse_price(text)[:2]
