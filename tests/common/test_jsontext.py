"""User JSON lines parse strictly: a lone surrogate escape or nesting Python cannot follow is a ValueError
(the readers' "invalid JSON"), a whole UTF-16 pair is the character it encodes."""

import json

import pytest

from shoplens.common.jsontext import has_lone_surrogate, loads_line


def test_a_whole_pair_is_one_character():
    assert loads_line('{"title": "Tee \\ud83d\\ude42", "n": 1}') == {"title": "Tee 🙂", "n": 1}
    assert loads_line('{"path": "C:\\\\ud800"}') == {"path": "C:\\ud800"}  # an escaped backslash, not an escape


@pytest.mark.parametrize("line", ['{"title": "x\\ud800"}', '{"\\udc00": 1}', '["a", ["\\uDBFF"]]',
                                  '"\\ude42\\ud83d"'])
def test_a_lone_surrogate_is_refused(line):
    with pytest.raises(ValueError, match="unpaired"):
        loads_line(line)


def test_nesting_too_deep_and_broken_json_are_value_errors():
    with pytest.raises(ValueError, match="nested too deeply"):
        loads_line("[" * 100_000 + "]" * 100_000)
    with pytest.raises(json.JSONDecodeError):
        loads_line('{"id": ')


def test_has_lone_surrogate_walks_keys_and_values():
    assert not has_lone_surrogate({"a": ["b", {"c": 1.5}], "d": None})
    assert has_lone_surrogate({"a": [{"b": "\udfff"}]})


@pytest.mark.parametrize("line", ['{"id": "a", "title": "x", "title": "y"}', '{"a": {"b": 1, "b": 2}}',
                                  '[{"k": 1}, {"k": 2, "k": 3}]'])
def test_a_key_given_twice_is_refused(line):
    """json.loads keeps the last of two equal keys and drops the first unseen; a user's line is refused instead."""
    with pytest.raises(ValueError, match="appears twice"):
        loads_line(line)
    assert loads_line('[{"k": 1}, {"k": 2}]') == [{"k": 1}, {"k": 2}]
