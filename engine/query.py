"""Search requests and responses as plain data (what the CLI prints and scripts read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoplens.common.errors import QueryError
from shoplens.engine.fusion import CHANNELS, FUSION_METHODS, NORMALIZATIONS, FusionPlan

MODES = ("hybrid", "lexical", "dense", "native")  # native: the text tower's own space alone


@dataclass
class SearchRequest:
    """One query: text, an image, or both, with retrieval and fusion settings."""

    text: str | None = None
    image: Any = None  # a path, or an opened PIL image
    k: int = 10
    page: int = 1
    filters: list[str] = field(default_factory=list)
    mode: str = "hybrid"  # hybrid, lexical (BM25 only), dense (joint space only) or native (text space only)
    fusion: str | None = None  # rrf or wsum; None: the index's fusion plan
    rrf_k: float | None = None  # None: the plan's
    weights: tuple[float, ...] | None = None  # (lexical, dense) or (lexical, dense, native); None: the plan's
    normalization: str | None = None  # for wsum: minmax or zscore; None: the plan's
    adaptive: bool | None = None  # scale dense channels by their agreement with BM25; None: the plan's
    candidates: int = 200  # per retriever
    rerank: bool | None = None  # None: rerank when the index has a ranker
    rerank_depth: int = 200
    explain: bool = False
    collapse: bool = True  # one result per normalized title + brand + image content
    spell: bool = True  # correct words the catalog never uses (the rewrite is shown)
    intent: bool = True  # read price limits, audience, colour and type from the text (engine/intent.py)
    strict_intent: bool = False  # those as filters; otherwise a boost

    def validate(self) -> None:
        has_text = bool(self.text and self.text.strip())
        if not has_text and self.image is None:
            raise QueryError("empty query: give query text, --image PHOTO, or both")
        if self.k < 1 or self.k > 1000:
            raise QueryError(f"-k must be between 1 and 1000, got {self.k}")
        if self.page < 1:
            raise QueryError(f"--page must be 1 or more, got {self.page}")
        if self.mode not in MODES:
            raise QueryError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.fusion is not None and self.fusion not in FUSION_METHODS:
            raise QueryError(f"unknown fusion {self.fusion!r}; use one of {', '.join(FUSION_METHODS)}")
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise QueryError(f"unknown normalization {self.normalization!r}; use one of {', '.join(NORMALIZATIONS)}")
        if self.mode == "lexical" and not has_text:
            raise QueryError("lexical (BM25) search needs query text")
        if self.candidates < 1:
            raise QueryError(f"--candidates must be positive, got {self.candidates}")
        if self.weights is not None and (len(self.weights) not in (2, 3) or any(w < 0 for w in self.weights)):
            raise QueryError("fusion weights are two or three non-negative numbers: lexical,dense[,native]")
        if self.rrf_k is not None and self.rrf_k < 0:
            raise QueryError(f"--rrf-k must be non-negative, got {self.rrf_k}")

    def plan(self, index_plan: FusionPlan) -> FusionPlan:
        """The fusion this request runs: the index's plan with whatever the request sets explicitly."""
        from dataclasses import replace

        changes: dict[str, Any] = {}
        if self.fusion is not None:
            changes["method"] = self.fusion
        if self.rrf_k is not None:
            changes["k"] = float(self.rrf_k)
        if self.normalization is not None:
            changes["normalization"] = self.normalization
        if self.adaptive is not None:
            changes["adaptive"] = self.adaptive
        if self.weights is not None:
            given = dict(zip(CHANNELS, (float(w) for w in self.weights)))
            changes["weights"] = tuple((c, given.get(c, index_plan.weight(c))) for c in CHANNELS)
        return replace(index_plan, **changes) if changes else index_plan

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.k


@dataclass
class SearchResult:
    rank: int
    id: str
    title: str
    brand: str
    price: float | None
    score: float
    signals: dict[str, float | None]
    image: str | None = None
    category: list[str] = field(default_factory=list)
    explain: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"rank": self.rank, "id": self.id, "title": self.title, "brand": self.brand, "price": self.price,
                "score": _round(self.score), "signals": {k: _round(v) for k, v in self.signals.items()}}
        if self.explain is not None:
            data["explain"] = self.explain
        return data


@dataclass
class SearchResponse:
    query: dict[str, Any]
    took_ms: float
    stages_ms: dict[str, float | None]
    results: list[SearchResult]
    version: int
    total_candidates: int
    reranked: bool = False
    notes: list[str] = field(default_factory=list)  # what the engine decided for the user to see

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "took_ms": round(self.took_ms, 3),
            "stages_ms": {k: None if v is None else round(v, 3) for k, v in self.stages_ms.items()},
            "version": self.version,
            "reranked": self.reranked,
            "notes": self.notes,
            "total_candidates": self.total_candidates,
            "results": [r.to_json() for r in self.results],
        }


def _round(value):
    return None if value is None else round(float(value), 6)
