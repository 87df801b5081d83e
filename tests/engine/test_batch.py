import pytest

from shoplens.common.errors import QueryError
from shoplens.engine.batch import read_queries
from shoplens.engine.query import SearchRequest


def test_a_queries_file_of_plain_lines_and_json_lines(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_text('\ufeffred dress\n\n{"text": "shoes", "filters": ["price<=3000"], "k": 3}\n', encoding="utf-8")
    queries = read_queries(path, SearchRequest(k=5))
    assert [q.line for q in queries] == [1, 3]
    assert queries[0].request.text == "red dress" and queries[0].request.k == 5
    assert queries[1].request.filters == ["price<=3000"] and queries[1].request.k == 3


def test_a_binary_queries_file_is_one_query_error(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xf2\xff")
    with pytest.raises(QueryError, match="queries.txt line 1 is not UTF-8 text"):
        read_queries(path, SearchRequest())


@pytest.mark.parametrize("line, message", [
    ('{"image": ["x.jpg"]}', "line 2: image must be a photo path, got a list"),
    ('{"image": ""}', "line 2: image must be a photo path, got empty text"),
    ('{"image": 5}', "line 2: image must be a photo path, got 5"),
    ('{"text": 5}', "line 2: text must be text, got 5"),
    ('{"query": ["red", "dress"]}', "line 2: query must be text, got a list"),
    ('{"text": "shirt", "mode": null}', "line 2: mode must be text, got null"),
    ('{"text": "shirt", "fusion": ["rrf"]}', "line 2: fusion must be text, got a list"),
    ('{"text": "shirt", "id": {"a": 1}}', "line 2: id must be text or a whole number, got an object"),
    ('{"text": "shirt", "query": "shoes"}', 'line 2: give the query text once, as "text"'),
])
def test_a_json_line_with_a_value_of_another_type_is_refused_before_any_search(tmp_path, line, message):
    """Values were turned into text with str(): "image": ["x.jpg"] looked for a file named "['x.jpg']",
    "image": "" opened the file's own folder ("query image . is not a regular file"), "mode": null asked
    for mode 'None', and "text" beside "query" searched one of them silently. The file is now refused
    as it is read, naming the line and the key, like "k": "5" already was."""
    path = tmp_path / "queries.jsonl"
    path.write_text('{"text": "red dress", "id": 7}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_queries(path, SearchRequest())
    path.write_text('{"text": "red dress", "id": 7, "mode": "lexical"}\n{"image": "x.jpg", "text": null}\n',
                    encoding="utf-8")
    first, second = read_queries(path, SearchRequest())
    assert first.query_id == "7" and first.request.mode == "lexical" and second.request.image == str(tmp_path / "x.jpg")


@pytest.mark.parametrize("line", ["[1, 2]", "42", "null", "true", "-1.5"])
def test_a_json_line_that_is_no_object_is_refused_with_its_line(tmp_path, line):
    """`[1, 2]`, `42` or `null` in a file of JSON lines were searched as the text "[1, 2]", "42", "null"."""
    path = tmp_path / "queries.jsonl"
    path.write_text('{"text": "red dress"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(QueryError) as caught:
        read_queries(path, SearchRequest())
    assert str(caught.value).startswith(f"queries.jsonl line 2: {line} is JSON but not an object; ")
    assert '{"text": "red dress"' in str(caught.value)


def test_plain_lines_stay_plain_and_a_json_string_is_its_text(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_text('42\nnull\n"blue shirt"\n"red" dress\n', encoding="utf-8")
    assert [q.request.text for q in read_queries(path, SearchRequest())] == ["42", "null", "blue shirt", '"red" dress']
    path.write_text("red dress\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(QueryError, match=r"queries.txt line 2: \[1, 2\] is JSON but not an object"):
        read_queries(path, SearchRequest())


def test_a_queries_path_that_is_no_file_says_what_it_is(tmp_path):
    """A folder given as --queries was "queries file F not found"; a FIFO too (its check came first)."""
    import os

    os.mkfifo(tmp_path / "pipe.txt")
    for path in (tmp_path, tmp_path / "pipe.txt"):
        with pytest.raises(QueryError, match=r"is not a regular file \(a directory, pipe or device\); give a text"):
            read_queries(path, SearchRequest())
    with pytest.raises(QueryError, match="none.txt not found; check the path"):
        read_queries(tmp_path / "none.txt", SearchRequest())
