"""Graded relevance judgments: JSONL `{"query", "id", "grade"}`, or TREC qrels with a topics file.

Rules (every file is read line by line; the first bad line is named in the error):

- text is UTF-8 (a byte-order mark is ignored); `.gz` files are decompressed;
- `query` is non-empty text of at most MAX_QUERY_CHARS characters, `id` text or a whole number;
- `grade` is a finite number from MIN_GRADE to MAX_GRADE, rounded down to a whole number;
  negative grades (TREC's "junk") count as 0, not relevant;
- qrels lines are `qid iteration docid grade`; topics lines are `qid<TAB>text` or
  JSON `{"qid", "text"}` (also `id` / `query`).
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from pathlib import Path
from typing import Any, Iterator

from shoplens.common.errors import JudgmentsError

Judgments = dict[str, dict[str, int]]  # query text -> product id -> grade
MIN_GRADE, MAX_GRADE = -10, 10
MAX_QUERY_CHARS = 2000

__all__ = ["Judgments", "JudgmentsError", "load_judgments", "write_judgments"]


def load_judgments(path: str | Path, topics: str | Path | None = None) -> Judgments:
    """Judgments keyed by query text. A TREC qrels file (`qid 0 docid grade`) needs a topics file."""
    path = Path(path)
    _require_file(path, "judgments")
    if topics is not None or not path.name.endswith((".jsonl", ".json", ".jsonl.gz")):
        if topics is None:
            raise JudgmentsError(f"{path.name} looks like TREC qrels; pass --topics with the query texts (qid<TAB>text)")
        return _from_qrels(path, _load_topics(Path(topics)))
    judgments: Judgments = {}
    problems: list[str] = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            query, pid, grade = _judgment(line)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        judgments.setdefault(query, {})[pid] = grade
    if problems:
        raise JudgmentsError(f"{len(problems)} bad line(s) in {path.name}, first {problems[0]}; "
                             'each line must be {"query": ..., "id": ..., "grade": ...}')
    if not judgments:
        raise JudgmentsError(f"{path.name} holds no judgments")
    return judgments


def _judgment(line: str) -> tuple[str, str, int]:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"invalid JSON ({str(exc).split(';')[0][:80]})") from None
    if not isinstance(row, dict) or not {"query", "id", "grade"} <= set(row):
        raise ValueError("expected an object with query, id and grade")
    return _query_text(row["query"]), _product_id(row["id"]), parse_grade(row["grade"])


def _query_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("query must be non-empty text")
    if len(value) > MAX_QUERY_CHARS:
        raise ValueError(f"query is longer than {MAX_QUERY_CHARS} characters")
    return value.strip()


def _product_id(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip() or len(str(value)) > 512:
        raise ValueError(f"id must be text or a whole number, got {value!r:.60}")
    return str(value).strip()


def parse_grade(value: Any) -> int:
    """A grade as an int: finite, MIN_GRADE..MAX_GRADE, rounded down; negative grades count as 0."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"grade must be a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not MIN_GRADE <= value <= MAX_GRADE:
        raise ValueError(f"grade must be a number from {MIN_GRADE} to {MAX_GRADE}, got {str(value)[:40]}")
    return max(0, math.floor(value))


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise JudgmentsError(f"{what} file {path} does not exist; check the path")
    if not path.is_file():
        raise JudgmentsError(f"{path} is not a regular file; pass a {what} file")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, text) of every line; a line that is not UTF-8, or a damaged .gz, is a JudgmentsError."""
    number = 0
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise JudgmentsError(f"{path.name} line {number} is not UTF-8 text; save the file as UTF-8") from None
    except (EOFError, zlib.error, OSError) as exc:
        raise JudgmentsError(f"cannot read {path.name} after line {number}: {exc}") from None


def _load_topics(path: Path) -> dict[str, str]:
    _require_file(path, "topics")
    topics = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            if line.lstrip().startswith("{"):
                qid, text = _json_topic(line)
            else:
                parts = line.rstrip("\r\n").split("\t", 1)
                if len(parts) != 2:
                    raise ValueError("expected qid<TAB>query text")
                qid, text = parts[0].strip(), _query_text(parts[1])
        except ValueError as exc:
            raise JudgmentsError(f"{path.name} line {number}: {exc}") from None
        topics[qid] = text
    if not topics:
        raise JudgmentsError(f"{path.name} holds no topics")
    return topics


def _json_topic(line: str) -> tuple[str, str]:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        raise ValueError("invalid JSON") from None
    if not isinstance(row, dict):
        raise ValueError('expected {"qid": ..., "text": ...}')
    qid = row.get("qid", row.get("id"))
    if qid is None or isinstance(qid, (bool, dict, list)):
        raise ValueError("qid must be text or a number")
    return str(qid).strip(), _query_text(row.get("text", row.get("query")))


def _from_qrels(path: Path, topics: dict[str, str]) -> Judgments:
    judgments: Judgments = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise JudgmentsError(f"{path.name} line {number}: TREC qrels lines are `qid iteration docid grade`")
        qid, _, docid, grade = parts
        if qid not in topics:
            raise JudgmentsError(f"{path.name} line {number}: query {qid[:40]} is not in the topics file")
        try:
            judgments.setdefault(topics[qid], {})[_product_id(docid)] = parse_grade(grade)
        except ValueError as exc:
            raise JudgmentsError(f"{path.name} line {number}: {exc}") from None
    if not judgments:
        raise JudgmentsError(f"{path.name} holds no judgments")
    return judgments


def write_judgments(path: Path, judgments: Judgments) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for query, grades in judgments.items():
            for pid, grade in grades.items():
                handle.write(json.dumps({"query": query, "id": pid, "grade": grade}) + "\n")
