"""Output helpers: JSON the CLI prints is always standard JSON."""

import json

import numpy as np

from shoplens.commands.base import json_text


def test_non_finite_numbers_print_as_null():
    data = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": np.float32("nan"), "d": np.int64(3),
            "e": (1, 2)}
    text = json_text(data)
    assert json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name))) == {
        "a": None, "b": [None, None, 1.5], "c": None, "d": 3, "e": [1, 2]}
