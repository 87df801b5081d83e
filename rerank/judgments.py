"""Graded relevance judgments: JSONL `{"query", "id", "grade"}`, or TREC qrels with a topics file.

A judged query may also carry a photo (JSONL only)::

    {"image": "images/10183.jpg", "id": "10183", "grade": 4, "kind": "photo", "source": "derived"}
    {"query": "black wallet", "image": "images/41259.jpg", "id": "41259", "grade": 4, "kind": "text+photo"}

Rules (every file is read line by line; the first bad line is named in the error):

- text is UTF-8 (a byte-order mark is ignored); `.gz` files are decompressed;
- `query` is non-empty text of at most MAX_QUERY_CHARS characters, `id` text or a whole number;
- `image` (optional, then `query` may be left out) is a path to a photo file, relative to the judgments
  file's folder unless absolute; every photo named must exist;
- `kind` (optional) is text, photo or text+photo and must agree with `query` and `image`; `source`
  (optional) says where the judgment came from ("derived", "human", "behaviour", ...);
- `grade` is a finite number from MIN_GRADE to MAX_GRADE; a fractional grade (the mean of several raters'
  grades, e.g. 2.33) keeps its value to GRADE_DECIMALS places, so training and NDCG see the difference
  between 2.33 and 2.67; negative grades (TREC's "junk") count as 0, not relevant;
- qrels lines are `qid iteration docid grade`; topics lines are `qid<TAB>text` or
  JSON `{"qid", "text"}` (also `id` / `query`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from shoplens.common.errors import JudgmentsError
from shoplens.common.jsontext import loads_line
from shoplens.common.textfile import text_lines

MIN_GRADE, MAX_GRADE = -10, 10
GRADE_DECIMALS = 3
MAX_QUERY_CHARS = 2000
MAX_PATH_CHARS = 1000
MAX_SOURCE_CHARS = 100
QUERY_KINDS = ("text", "photo", "text+photo")

__all__ = ["JudgedQuery", "Judgments", "JudgmentsError", "QUERY_KINDS", "judged_query", "load_judgments",
           "sources", "split_by_kind", "write_judgments"]


@dataclass(frozen=True)
class JudgedQuery:
    """What a judged query asks: its text and/or photo, its kind and where its judgments came from."""

    text: str | None
    image: str | None = None  # a photo's path
    source: str | None = None

    @property
    def kind(self) -> str:
        if self.image is None:
            return "text"
        return "text+photo" if self.text else "photo"

    @property
    def key(self) -> str:
        """The query's key in `Judgments`: the text itself for a text query (as before photos)."""
        if self.image is None:
            return self.text or ""
        return f"{self.text} [photo {self.image}]" if self.text else f"[photo {self.image}]"


class Judgments(dict):
    """Graded judgments: query key -> product id -> grade, and in `queries` what each key asks.

    A key without an entry in `queries` is a text query whose key is its text (plain dicts work too).
    """

    def __init__(self, *args, queries: dict[str, JudgedQuery] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.queries: dict[str, JudgedQuery] = dict(queries or {})

    def subset(self, keys) -> "Judgments":
        keys = [key for key in keys if key in self]
        return Judgments({key: self[key] for key in keys},
                         queries={key: self.queries[key] for key in keys if key in self.queries})


def judged_query(judgments: dict, key: str) -> JudgedQuery:
    """What the judged query under `key` asks (a text query when the judgments record nothing else)."""
    recorded = getattr(judgments, "queries", {}).get(key)
    return recorded if recorded is not None else JudgedQuery(key)


def split_by_kind(judgments: dict) -> dict[str, "Judgments"]:
    """The judgments of each query kind present, in QUERY_KINDS order."""
    keys: dict[str, list[str]] = {}
    for key in judgments:
        keys.setdefault(judged_query(judgments, key).kind, []).append(key)
    whole = judgments if isinstance(judgments, Judgments) else Judgments(judgments)
    return {kind: whole.subset(keys[kind]) for kind in QUERY_KINDS if kind in keys}


def sources(judgments: dict) -> list[str]:
    """The sources the judgments name ("derived", "human", ...), sorted; empty when none is recorded."""
    return sorted({q.source for q in getattr(judgments, "queries", {}).values() if q.source})


TWICE = ("product {pid!r} is graded {first} and {grade} for the same query; keep one grade per query and product "
         "(or average them)")


def load_judgments(path: str | Path, topics: str | Path | None = None) -> Judgments:
    """Judgments keyed by query text. A TREC qrels file (`qid 0 docid grade`) needs a topics file."""
    path = Path(path)
    _require_file(path, "judgments")
    if topics is not None or not path.name.endswith((".jsonl", ".json", ".jsonl.gz")):
        if topics is None:
            raise JudgmentsError(f"{path.name} looks like TREC qrels; pass --topics with the query texts (qid<TAB>text)")
        return _from_qrels(path, _load_topics(Path(topics)))
    judgments = Judgments()
    problems: list[str] = []
    images: dict[str, bool] = {}  # each photo's existence, checked once
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            query, pid, grade = _judgment(line, path.parent, images)
            _record(judgments, query)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        graded = judgments.setdefault(query.key, {})
        if graded.get(pid, grade) != grade:  # a second, different grade would silently replace the first
            problems.append(f"line {number}: {TWICE.format(pid=pid[:60], first=graded[pid], grade=grade)}")
            continue
        graded[pid] = grade
    if problems:
        raise JudgmentsError(f"{len(problems)} bad line(s) in {path.name}, first {problems[0]}; "
                             'each line must be {"query": ..., "id": ..., "grade": ...} (a photo query '
                             'names "image" instead of or beside "query")')
    if not judgments:
        raise JudgmentsError(f"{path.name} holds no judgments")
    return judgments


def _judgment(line: str, base: Path, images: dict[str, bool]) -> tuple[JudgedQuery, str, int]:
    try:
        row = loads_line(line)
    except ValueError as exc:
        raise ValueError(f"invalid JSON ({str(exc).split(';')[0][:80]})") from None
    if not isinstance(row, dict) or not {"id", "grade"} <= set(row) or not ({"query", "image"} & set(row)):
        raise ValueError("expected an object with query (or image), id and grade")
    given = row.get("query")
    photo_only = "image" in row and (given is None or (isinstance(given, str) and not given.strip()))
    text = None if photo_only else _query_text(given)
    image = _image_path(row["image"], base, images) if row.get("image") is not None else None
    if text is None and image is None:
        raise ValueError("query and image are both empty; give query text, an image path, or both")
    query = JudgedQuery(text, image, _source(row.get("source")))
    kind = row.get("kind")
    if kind is not None and kind != query.kind:
        raise ValueError(f"kind {str(kind)[:20]!r} does not match the line (it has "
                         f"{'text and a photo' if text and image else 'a photo' if image else 'text'}: "
                         f"{query.kind}); kinds are {', '.join(QUERY_KINDS)}")
    return query, _product_id(row["id"]), parse_grade(row["grade"])


def _image_path(value: Any, base: Path, images: dict[str, bool]) -> str:
    """A photo's path (made absolute against the judgments file's folder); the file must exist."""
    if not isinstance(value, str) or not value.strip() or "\0" in value or len(value) > MAX_PATH_CHARS:
        raise ValueError(f"image must be a photo's path (text of at most {MAX_PATH_CHARS} characters), "
                         f"got {value!r:.60}")
    path = Path(value.strip()).expanduser()
    resolved = str(path if path.is_absolute() else base / path)
    if resolved not in images:
        images[resolved] = Path(resolved).is_file()
    if not images[resolved]:
        raise ValueError(f"image {value.strip()[:200]} not found (looked for {resolved[:200]})")
    return resolved


def _source(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SOURCE_CHARS:
        raise ValueError(f"source must be text of at most {MAX_SOURCE_CHARS} characters, got {value!r:.60}")
    return value.strip()


def _record(judgments: Judgments, query: JudgedQuery) -> None:
    """Remember what a key asks; one key cannot name two different queries (or sources)."""
    known = judgments.queries.get(query.key)
    if known is None and query.key in judgments and query != JudgedQuery(query.key):
        raise ValueError(f"query {query.key[:60]!r} is judged as {query.kind} and as text on other lines")
    if known is not None and known != query:
        raise ValueError(f"query {query.key[:60]!r} is judged as {known.kind} from {known.source} and as "
                         f"{query.kind} from {query.source} on other lines")
    if query != JudgedQuery(query.key):
        judgments.queries[query.key] = query


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


def parse_grade(value: Any) -> int | float:
    """A grade: finite, MIN_GRADE..MAX_GRADE; an int when whole, else a float to GRADE_DECIMALS places;
    negative grades count as 0."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"grade must be a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not MIN_GRADE <= value <= MAX_GRADE:
        raise ValueError(f"grade must be a number from {MIN_GRADE} to {MAX_GRADE}, got {str(value)[:40]}")
    if value <= 0:
        return 0
    value = round(float(value), GRADE_DECIMALS)
    return int(value) if value.is_integer() else value


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise JudgmentsError(f"{what} file {path} does not exist; check the path")
    if not path.is_file():
        raise JudgmentsError(f"{path} is not a regular file; pass a {what} file")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, text) of every line; a line that is not UTF-8, or a damaged .gz, is a JudgmentsError."""
    return text_lines(path, JudgmentsError)


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
        if topics.get(qid, text) != text:  # the later text replaced the earlier silently, for every judgment of it
            raise JudgmentsError(f"{path.name} line {number}: query {qid[:40]} is given again with other text "
                                 f"({text[:40]!r}, was {topics[qid][:40]!r}); give each qid one text")
        topics[qid] = text
    if not topics:
        raise JudgmentsError(f"{path.name} holds no topics")
    return topics


def _json_topic(line: str) -> tuple[str, str]:
    try:
        row = loads_line(line)
    except ValueError:
        raise ValueError("invalid JSON") from None
    if not isinstance(row, dict):
        raise ValueError('expected {"qid": ..., "text": ...}')
    qid = row.get("qid", row.get("id"))
    if qid is None or isinstance(qid, (bool, dict, list)):
        raise ValueError("qid must be text or a number")
    return str(qid).strip(), _query_text(row.get("text", row.get("query")))


def _from_qrels(path: Path, topics: dict[str, str]) -> Judgments:
    judgments = Judgments()
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
            pid, grade = _product_id(docid), parse_grade(grade)
        except ValueError as exc:
            raise JudgmentsError(f"{path.name} line {number}: {exc}") from None
        graded = judgments.setdefault(topics[qid], {})
        if graded.get(pid, grade) != grade:  # a second, different grade would silently replace the first
            raise JudgmentsError(f"{path.name} line {number}: {TWICE.format(pid=pid[:60], first=graded[pid], grade=grade)}")
        graded[pid] = grade
    if not judgments:
        raise JudgmentsError(f"{path.name} holds no judgments")
    return judgments


def judgment_line(query: JudgedQuery, pid: str, grade: int) -> dict[str, Any]:
    """One JSONL judgment: text queries as before photos; a photo query adds image, kind and source."""
    row: dict[str, Any] = {"query": query.text} if query.text else {}
    if query.image is not None:
        row["image"] = query.image
    row.update({"id": pid, "grade": grade})
    if query.image is not None or query.source:
        row["kind"] = query.kind
    if query.source:
        row["source"] = query.source
    return row


def write_judgments(path: Path, judgments: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for key, grades in judgments.items():
            query = judged_query(judgments, key)
            for pid, grade in grades.items():
                handle.write(json.dumps(judgment_line(query, pid, grade)) + "\n")
