import pytest

from shoplens.benchmarks.latency import read_queries
from shoplens.common.errors import QueryError


def test_queries_file_mixes_plain_lines_and_json_with_relative_images(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('red dress\n\n{"text": "shoes", "image": "img/a.jpg"}\n{"image": "/abs/b.jpg"}\n')
    requests = read_queries(path)
    assert [(r.text, r.image) for r in requests] == [
        ("red dress", None), ("shoes", str(tmp_path / "img/a.jpg")), (None, "/abs/b.jpg")]


def test_a_broken_queries_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('red dress\n{"text": "shoes"\n')
    with pytest.raises(QueryError, match="q.jsonl line 2: invalid JSON"):
        read_queries(path)
    with pytest.raises(QueryError, match="not found; check the path"):
        read_queries(tmp_path / "none.txt")
    with pytest.raises(QueryError, match="not a regular file"):
        read_queries(tmp_path)


@pytest.mark.parametrize("line", ["[1, 2]", "42", "null"])
def test_a_json_line_that_is_no_object_is_refused(tmp_path, line):
    """The same rule as `search --queries`: these were replayed as the texts "[1, 2]", "42" and "null"."""
    path = tmp_path / "q.jsonl"
    path.write_text('{"text": "shoes"}\n' + line + '\n"red dress"\n')
    with pytest.raises(QueryError, match=rf"q.jsonl line 2: {line.replace('[', '.').replace(']', '.')} is JSON but not"):
        read_queries(path)
    path.write_text('{"text": "shoes"}\n"red dress"\n')
    assert [r.text for r in read_queries(path)] == ["shoes", "red dress"]
