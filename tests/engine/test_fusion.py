"""Fusion against values worked out by hand."""

import pytest

from shoplens.common.errors import ConfigError
from shoplens.engine.fusion import fuse, normalize, rrf, weighted_sum

LEXICAL = {"a": 12.0, "b": 8.0, "c": 4.0}  # ranks a=1, b=2, c=3
DENSE = {"c": 0.9, "d": 0.7, "a": 0.5}  # ranks c=1, d=2, a=3


def test_rrf_by_hand():
    fused = rrf([LEXICAL, DENSE], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)


def test_weighted_rrf_by_hand():
    fused = rrf([LEXICAL, DENSE], weights=[2.0, 0.5], k=10)
    assert fused["a"] == pytest.approx(2 / 11 + 0.5 / 13)
    assert fused["d"] == pytest.approx(0.5 / 12)
    assert max(fused, key=fused.get) == "a"


def test_minmax_and_zscore_by_hand():
    assert normalize(LEXICAL, "minmax") == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    # mean 8, population std sqrt(32/3)
    std = (32 / 3) ** 0.5
    assert normalize(LEXICAL, "zscore") == pytest.approx({"a": 4 / std, "b": 0.0, "c": -4 / std})
    assert normalize({"x": 3.0, "y": 3.0}, "minmax") == {"x": 1.0, "y": 1.0}
    assert normalize({"x": 3.0, "y": 3.0}, "zscore") == {"x": 0.0, "y": 0.0}


def test_weighted_sum_by_hand():
    fused = weighted_sum([LEXICAL, DENSE], weights=[1.0, 2.0], method="minmax")
    # dense min-max: c=1, d=0.5, a=0; a missing doc gets the run's lowest normalized score (0)
    assert fused["a"] == pytest.approx(1.0 + 2 * 0.0)
    assert fused["b"] == pytest.approx(0.5 + 2 * 0.0)
    assert fused["c"] == pytest.approx(0.0 + 2 * 1.0)
    assert fused["d"] == pytest.approx(0.0 + 2 * 0.5)


def test_weighted_sum_zscore_missing_gets_the_floor():
    fused = weighted_sum([{"a": 1.0, "b": 3.0}, {"b": 5.0, "c": 1.0}], method="zscore")
    # run 1: a=-1, b=1 ; run 2: b=1, c=-1 ; floors -1
    assert fused == pytest.approx({"a": -2.0, "b": 2.0, "c": -2.0})


def test_fuse_dispatch_and_errors():
    assert fuse([LEXICAL, DENSE], "rrf") == rrf([LEXICAL, DENSE])
    assert fuse([LEXICAL, DENSE], "wsum", normalization="zscore") == weighted_sum([LEXICAL, DENSE], method="zscore")
    with pytest.raises(ConfigError, match="rrf, wsum"):
        fuse([LEXICAL], "borda")
    with pytest.raises(ConfigError, match="2 retrievers"):
        rrf([LEXICAL, DENSE], weights=[1.0])
    with pytest.raises(ConfigError, match="non-negative"):
        rrf([LEXICAL], weights=[-1.0])
    with pytest.raises(ConfigError, match="minmax, zscore"):
        normalize(LEXICAL, "rank")
