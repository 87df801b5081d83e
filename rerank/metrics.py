"""Ranking metrics over plain data: judged queries and ranked runs, scored with ranx.

A run is `{query id: {product id: score}}` (higher is better). NDCG@10,
MRR@10, P@10 and Recall@100; a product with grade >= 1 counts as relevant for
MRR, precision and recall. Running the searches that produce runs is the
engine's job (`engine/evaluation.py`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from shoplens.common.errors import ConfigError
from shoplens.rerank.judgments import Judgments

METRICS = ("ndcg@10", "mrr@10", "precision@10", "recall@100")

Run = dict[str, dict[str, float]]


@dataclass
class Evaluation:
    queries: int
    metrics: dict[str, dict[str, float]]  # system -> metric -> value
    runs: dict[str, Run] = field(default_factory=dict, repr=False)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "metrics": self.metrics, "latency_ms_mean": self.latency_ms}


def query_ids(judgments: Judgments) -> dict[str, str]:
    """A stable id per judged query (`q1`, `q2`, ... in the judgments' order), as TREC files name them."""
    return {query: f"q{i + 1}" for i, query in enumerate(judgments)}


def ranked_run(ids: list[str], depth: int) -> dict[str, float]:
    """Scores that keep a returned order exactly: the first of `depth` results scores `depth`."""
    return {pid: float(depth - i) for i, pid in enumerate(ids)}


def score_run(judgments: Judgments, run: Run) -> dict[str, float]:
    """Every metric in METRICS for one run; a judged query the run does not answer scores zero."""
    from ranx import Qrels
    from ranx import Run as RanxRun
    from ranx import evaluate as ranx_evaluate

    warnings.filterwarnings("ignore", module="ranx")  # numba's cast warnings say nothing about the results
    qids = query_ids(judgments)
    qrels = Qrels.from_dict({qids[q]: {pid: int(g) for pid, g in grades.items()} for q, grades in judgments.items()})
    # ranx cannot hold a query with no results; make_comparable scores missing queries as zero
    answered = {qid: docs for qid, docs in run.items() if docs}
    scores = ranx_evaluate(qrels, RanxRun.from_dict(answered), list(METRICS), make_comparable=True)
    return {metric: float(scores[metric]) for metric in METRICS}


def run_file(directory: Path, system: str) -> Path:
    """Where a system's TREC run file goes in `directory`."""
    return directory / f"{system.replace('+', '_')}.trec"


def check_run_dir(directory: Path, systems: Iterable[str]) -> None:
    """Fail now if the systems' run files could not be written into `directory` (a file there, or no way to
    create it)."""
    directory = Path(directory)
    existing = next((p for p in [directory, *directory.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--run-dir {directory}: {existing} is a file, not a directory; pass another path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--run-dir {directory}: cannot write into {existing}; pass another path")
    for path in (run_file(directory, name) for name in systems):
        if path.exists() and not path.is_file():
            raise ConfigError(f"--run-dir {directory}: {path} exists and is not a file")


def write_trec_runs(evaluation: Evaluation, directory: Path) -> list[Path]:
    """One TREC run file per system (`qid Q0 docid rank score system`)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, run in evaluation.runs.items():
        path = run_file(directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            for qid, docs in run.items():
                for rank, (pid, score) in enumerate(sorted(docs.items(), key=lambda kv: -kv[1]), start=1):
                    handle.write(f"{qid} Q0 {pid} {rank} {score:g} {name}\n")
        paths.append(path)
    return paths
