"""Graded relevance judgments: JSONL `{"query", "id", "grade"}`, or TREC qrels with a topics file."""

from __future__ import annotations

import json
from pathlib import Path

from shoplens.common.errors import ShopLensError


class JudgmentsError(ShopLensError):
    """A judgments, qrels or topics file cannot be used."""


Judgments = dict[str, dict[str, int]]  # query text -> product id -> grade


def load_judgments(path: str | Path, topics: str | Path | None = None) -> Judgments:
    """Judgments keyed by query text. A TREC qrels file (`qid 0 docid grade`) needs a topics file."""
    path = Path(path)
    if not path.is_file():
        raise JudgmentsError(f"judgments file {path} does not exist; check the path")
    if topics is not None or not path.name.endswith((".jsonl", ".json", ".jsonl.gz")):
        if topics is None:
            raise JudgmentsError(f"{path.name} looks like TREC qrels; pass --topics with the query texts (qid<TAB>text)")
        return _from_qrels(path, _load_topics(Path(topics)))
    judgments: Judgments = {}
    problems: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                query, pid, grade = row["query"], str(row["id"]), row["grade"]
                if not isinstance(query, str) or not query.strip():
                    raise ValueError("empty query")
                if isinstance(grade, bool) or not isinstance(grade, (int, float)) or grade < 0:
                    raise ValueError(f"grade must be a non-negative number, got {grade!r}")
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"line {number}: {exc}")
                continue
            judgments.setdefault(query.strip(), {})[pid] = int(grade)
    if problems:
        raise JudgmentsError(f"{len(problems)} bad line(s) in {path.name}, first {problems[0]}; "
                             'each line must be {"query": ..., "id": ..., "grade": ...}')
    if not judgments:
        raise JudgmentsError(f"{path.name} holds no judgments")
    return judgments


def _load_topics(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise JudgmentsError(f"topics file {path} does not exist")
    topics = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            row = json.loads(line)
            topics[str(row.get("qid") or row.get("id"))] = row.get("text") or row.get("query")
        else:
            parts = line.split("\t", 1)
            if len(parts) != 2:
                raise JudgmentsError(f"{path.name} line {number}: expected qid<TAB>query text")
            topics[parts[0].strip()] = parts[1].strip()
    return topics


def _from_qrels(path: Path, topics: dict[str, str]) -> Judgments:
    judgments: Judgments = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise JudgmentsError(f"{path.name} line {number}: TREC qrels lines are `qid iteration docid grade`")
        qid, _, docid, grade = parts
        if qid not in topics:
            raise JudgmentsError(f"{path.name} line {number}: query {qid} is not in the topics file")
        judgments.setdefault(topics[qid], {})[docid] = int(float(grade))
    return judgments


def write_judgments(path: Path, judgments: Judgments) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for query, grades in judgments.items():
            for pid, grade in grades.items():
                handle.write(json.dumps({"query": query, "id": pid, "grade": grade}) + "\n")
