"""`shoplens bench shoppers`: shopper queries as people type them, graded 0-3, with and without spelling and intent.

benchmarks/shopper_queries.jsonl holds 44 queries written by hand for the bundled sample
(data/myntra-sample), each with hand-written criteria: the product types that answer it, related
types, and the audience, colour, brand and price it states. `grade` turns them into graded
judgments (benchmarks/shopper_judgments.jsonl, regenerated with `--write-judgments`):
3 = a wanted type meeting every stated constraint, each unmet constraint one less (never below 1),
1 = a related type, 0 = anything else. The criteria were written by a person looking at the
products; the per-product grades follow from them mechanically (they are not per-product clicks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

QUERIES = Path(__file__).resolve().parent / "shopper_queries.jsonl"
JUDGMENTS = Path(__file__).resolve().parent / "shopper_judgments.jsonl"
CONFIGS = [  # (label, SearchRequest settings)
    ("as typed (--no-spell --no-intent)", {"spell": False, "intent": False}),
    ("spelling (--no-intent)", {"spell": True, "intent": False}),
    ("spelling + intent boost (default)", {"spell": True, "intent": True}),
    ("spelling + --strict-intent", {"spell": True, "intent": True, "strict_intent": True}),
]


def grade(criteria: dict[str, Any], product: dict[str, Any]) -> int:
    """A product's grade for one query's criteria."""
    kind = (product.get("category") or [""])[-1]
    if kind in criteria.get("related", []) and kind not in criteria["types"]:
        return 1
    if kind not in criteria["types"]:
        return 0
    misses = 0
    for key, field in (("gender", "gender"), ("colour", "base_colour"), ("brand", "brand")):
        if key in criteria and product.get(field) not in criteria[key]:
            misses += 1
    price = product.get("price")
    if "price_max" in criteria and (price is None or price > criteria["price_max"]):
        misses += 1
    if "price_min" in criteria and (price is None or price < criteria["price_min"]):
        misses += 1
    return max(1, 3 - misses)


def write_judgments(catalog: Path, queries: Path = QUERIES, out: Path = JUDGMENTS) -> int:
    products = [json.loads(line) for line in catalog.read_text().splitlines() if line.strip()]
    rows = 0
    with open(out, "w", encoding="utf-8") as handle:
        for line in queries.read_text().splitlines():
            criteria = json.loads(line)
            for product in products:
                value = grade(criteria, product)
                if value:
                    handle.write(json.dumps({"query": criteria["query"], "id": product["id"], "grade": value}) + "\n")
                    rows += 1
    return rows


def run(index: Path, judgments_path: Path = JUDGMENTS, device: str = "cpu", rerank: bool = False,
        command: str = ""):
    """NDCG@10 of every configuration over the judged queries, and each query's top 5 under each."""
    from shoplens.benchmarks.quality import score_run
    from shoplens.engine.query import SearchRequest
    from shoplens.engine.evaluation import check_judged_products
    from shoplens.engine.search import SearchEngine
    from shoplens.rerank.metrics import query_ids
    from shoplens.rerank.judgments import load_judgments

    judgments = load_judgments(judgments_path)
    qids = query_ids(judgments)
    engine = SearchEngine(index, device=device)
    check_judged_products(engine, judgments)
    rows, tops, per_query = [], {}, {}
    for label, settings in CONFIGS:
        run_, top = {}, {}
        for query in judgments:
            response = engine.search(SearchRequest(text=query, k=10, rerank=None if rerank else False, **settings))
            run_[qids[query]] = {r.id: 10.0 - r.rank for r in response.results}
            top[query] = [f"{r.id} {r.title} ({r.price:g}) g{judgments[query].get(r.id, 0)}" for r in response.results[:5]]
        scores = score_run(judgments, run_)
        rows.append([label, scores["ndcg@10"]])
        tops[label] = top
    engine.close()
    from shoplens.benchmarks.common import Report

    report = Report(title="Shopper queries (hand-written, graded from hand-written criteria)",
                    data=f"{len(judgments)} queries from {judgments_path.name} on index {index}", command=command,
                    extra={"top5": tops})
    report.table("NDCG@10" + (" (reranker on)" if rerank else " (no reranker)"), ["configuration", "NDCG@10"], rows)
    return report
