"""Property tests of the judgments, qrels and topics readers: judgments, or a JudgmentsError naming the line."""

import json
import re

from hypothesis import given, strategies as st

from shoplens.common.errors import JudgmentsError
from shoplens.rerank.judgments import MAX_GRADE, load_judgments
from tests.helpers import bounded

values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                   st.sampled_from(["abc", "2", "", [1], {"a": 1}, 1e20, 100, 3]))
rows = st.fixed_dictionaries({}, optional={"query": values, "id": values, "grade": values})
garbage = st.one_of(st.binary(max_size=30), st.sampled_from([b"\xff\xfe", b"[", b"{" * 2000]))


def encode(row) -> bytes:
    try:
        return json.dumps(row, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return b"{"


def check(judgments):
    for query, grades in judgments.items():
        assert isinstance(query, str) and query.strip()
        assert all(isinstance(pid, str) and isinstance(g, int) and 0 <= g <= MAX_GRADE for pid, g in grades.items())


@given(lines=st.lists(st.one_of(rows.map(encode), garbage), max_size=10))
def test_any_judgments_file_gives_judgments_or_a_line_numbered_error(tmp_path_factory, lines):
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    path = tmp_path_factory.mktemp("j") / "j.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        with bounded():
            check(load_judgments(path))
    except JudgmentsError as exc:
        assert re.search(r"line \d+", str(exc)) or "holds no judgments" in str(exc)


@given(qrels=st.lists(st.lists(st.text(alphabet="ab1 \t\x00é", max_size=4), min_size=1, max_size=5), max_size=6),
       topics=st.lists(st.text(max_size=12), max_size=4), raw=st.binary(max_size=20))
def test_any_qrels_and_topics_give_judgments_or_an_error(tmp_path_factory, qrels, topics, raw):
    folder = tmp_path_factory.mktemp("q")
    (folder / "q.qrels").write_bytes("\n".join(" ".join(parts) for parts in qrels).encode() + raw)
    (folder / "t.tsv").write_bytes("\n".join(f"{i % 3}\t{text}" for i, text in enumerate(topics)).encode())
    try:
        with bounded():
            check(load_judgments(folder / "q.qrels", folder / "t.tsv"))
    except JudgmentsError as exc:
        assert str(exc)


def test_grades_the_issue_names(tmp_path):
    path = tmp_path / "j.jsonl"
    for grade in ("NaN", "Infinity", "1e20", "100"):
        path.write_text('{"query": "q", "id": "a", "grade": 1}\n{"query": "q", "id": "b", "grade": %s}\n' % grade)
        try:
            load_judgments(path)
        except JudgmentsError as exc:
            assert "line 2" in str(exc) and "grade" in str(exc)
        else:
            raise AssertionError(f"grade {grade} accepted")
    (tmp_path / "q.qrels").write_text("1 0 d1 abc\n")
    (tmp_path / "t.tsv").write_text("1\tshirt\n")
    try:
        load_judgments(tmp_path / "q.qrels", tmp_path / "t.tsv")
    except JudgmentsError as exc:
        assert "line 1" in str(exc)
    path.write_bytes(b'{"query": "q", "id": "a", "grade": 1}\n{"query": "q\xff", "id": "b", "grade": 1}\n')
    try:
        load_judgments(path)
    except JudgmentsError as exc:
        assert "line 2 is not UTF-8" in str(exc)
