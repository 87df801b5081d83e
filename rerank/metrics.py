"""Ranking metrics over plain data: judged queries and ranked runs, scored with ranx.

A run is `{query id: {product id: score}}` (higher is better). NDCG@10,
MRR@10, P@10 and Recall@100; NDCG's gains are the grades themselves (linear, as
ranx computes it; fractional grades too), and a product with grade >= 1 counts as
relevant for MRR, precision and recall. Queries with a photo also get hit@1 and hit@10: the
share of queries whose best-judged product (the highest grade; for a derived
photo query, the product in the photo) is in the top 1 or 10. Running the
searches that produce runs is the engine's job (`engine/evaluation.py`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from shoplens.common.errors import ConfigError
from shoplens.rerank.judgments import GRADE_DECIMALS, Judgments, split_by_kind

METRICS = ("ndcg@10", "mrr@10", "precision@10", "recall@100")
HIT_METRICS = ("hit@1", "hit@10")  # for queries with a photo: the best-judged product in the top 1 / 10

Run = dict[str, dict[str, float]]
# ranx holds whole-number grades: grades go to it scaled by this (exact to GRADE_DECIMALS places; NDCG with
# linear gains does not change under scaling), and "relevant" (grade >= 1) becomes a relevance level of SCALE
SCALE = 10 ** GRADE_DECIMALS
RANX_METRICS = {"ndcg@10": "ndcg@10", "mrr@10": f"mrr@10-l{SCALE}", "precision@10": f"precision@10-l{SCALE}",
                "recall@100": f"recall@100-l{SCALE}"}


@dataclass
class Evaluation:
    queries: int
    metrics: dict[str, dict[str, float]]  # system -> metric -> value
    runs: dict[str, Run] = field(default_factory=dict, repr=False)
    latency_ms: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # kind -> system -> metric
    queries_by_kind: dict[str, int] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where the judgments came from, as they say

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "metrics": self.metrics, "latency_ms_mean": self.latency_ms,
                "queries_by_kind": self.queries_by_kind, "by_kind": self.by_kind, "sources": self.sources}


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

    # numba's cast warnings say nothing about the results; numba names ranx's files by path, so the
    # module pattern matches the path as well as the module name
    warnings.filterwarnings("ignore", module=r"(.*[/\\])?ranx([./\\]|$)")
    qids = query_ids(judgments)
    qrels = Qrels.from_dict({qids[q]: {pid: int(round(g * SCALE)) for pid, g in grades.items()}
                             for q, grades in judgments.items()})
    # ranx cannot hold a query with no results; make_comparable scores missing queries as zero
    answered = {qid: docs for qid, docs in run.items() if docs}
    if not answered:  # a system that answers none of the queries (BM25 on photos alone) scores zero
        return {metric: 0.0 for metric in METRICS}
    scores = ranx_evaluate(qrels, RanxRun.from_dict(answered), [RANX_METRICS[m] for m in METRICS],
                           make_comparable=True)
    return {metric: float(scores[RANX_METRICS[metric]]) for metric in METRICS}


def hit_rate(judgments: Judgments, run: Run, k: int) -> float:
    """Share of judged queries whose best-judged product (highest grade, above 0) is in the run's top k."""
    qids = query_ids(judgments)
    hits = 0
    for query, grades in judgments.items():
        best = max(grades.values(), default=0)
        ranked = sorted((run.get(qids[query]) or {}).items(), key=lambda kv: -kv[1])[:k]
        hits += best > 0 and any(grades.get(pid, 0) == best for pid, _ in ranked)
    return hits / max(len(judgments), 1)


def score_by_kind(judgments: Judgments, run: Run) -> dict[str, dict[str, float]]:
    """METRICS for each query kind's queries in a run keyed like `query_ids(judgments)`; HIT_METRICS too for
    kinds with a photo. A kind whose queries the run does not answer at all is left out (not applicable)."""
    whole = query_ids(judgments)
    out = {}
    for kind, part in split_by_kind(judgments).items():
        local = query_ids(part)
        sub = {local[key]: run[whole[key]] for key in part if whole[key] in run}
        if not sub:
            continue
        out[kind] = score_run(part, sub)
        if kind != "text":
            out[kind].update({f"hit@{k}": hit_rate(part, sub, k) for k in (1, 10)})
    return out


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
