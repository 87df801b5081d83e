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
