import gzip

import pytest

from shoplens.common.errors import QueryError
from shoplens.common.textfile import text_lines


def test_lines_are_numbered_and_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes("\ufeffred dress\n\nblue jeans\n".encode("utf-8"))
    assert list(text_lines(path, QueryError)) == [(1, "red dress\n"), (2, "\n"), (3, "blue jeans\n")]


def test_gzip_files_are_read_too(tmp_path):
    path = tmp_path / "q.txt.gz"
    path.write_bytes(gzip.compress(b"shoes\n"))
    assert list(text_lines(path, QueryError)) == [(1, "shoes\n")]


@pytest.mark.parametrize("name, data, message", [
    ("bin.txt", b"ok\n\xf2\xff\x00\n", "line 2 is not UTF-8 text; give UTF-8"),
    ("cut.txt.gz", gzip.compress("".join(f"query {i}\n" for i in range(5000)).encode())[:200], "cannot read cut.txt.gz"),
])
def test_unreadable_files_are_the_callers_error_naming_the_line(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(QueryError, match=message):
        list(text_lines(path, QueryError, "give UTF-8"))
