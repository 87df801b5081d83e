"""An error message stays one printable line whatever a user's value holds."""

from shoplens.common.errors import one_line


def test_control_characters_and_lone_surrogates_are_escaped():
    assert one_line("no index at /tmp/a\nb") == "no index at /tmp/a\\nb"
    assert one_line("x\r\x1b[31mred\t\u2028\udcff") == "x\\r\\x1b[31mred\\t\\u2028\\udcff"


def test_printable_text_is_unchanged():
    text = "catalog file /tmp/café 🙂 [/] 'x' \\ does not exist"
    assert one_line(text) is text
