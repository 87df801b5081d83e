"""Search requests and responses as plain data (what the CLI prints and scripts read)."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from shoplens.common.errors import QueryError, one_line
from shoplens.engine.filters import parse_filters
from shoplens.engine.fusion import CHANNELS, FUSION_METHODS, NORMALIZATIONS, FusionPlan
from shoplens.indexers.images import ImageError, within_limits

MODES = ("hybrid", "lexical", "dense", "native")  # native: the text tower's own space alone
MAX_QUERY_CHARS = 2000
MAX_K = 1000
RESULT_WINDOW = 10_000  # the deepest result a page can reach (page x k), as Elasticsearch's max_result_window
MAX_CANDIDATES = 10_000
MAX_RRF_K = 1e6
MAX_WEIGHT = 1e6


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise QueryError(f"{name} must be a whole number from {low:,} to {high:,}, got {str(value)[:30]}")


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
        """Check everything that needs no index and no model; QueryError/FilterError say what to fix."""
        if self.text is not None and not isinstance(self.text, str):
            raise QueryError("query text must be text")
        if self.image is not None and not hasattr(self.image, "size"):
            check_image_file(self.image)  # what is wrong with a photo comes before what a mode needs
        has_text = bool(self.text and self.text.strip())
        if not has_text and self.image is None:
            raise QueryError("empty query: give query text, --image PHOTO, or both")
        if has_text and len(self.text) > MAX_QUERY_CHARS:
            raise QueryError(f"query text is longer than {MAX_QUERY_CHARS:,} characters; shorten it")
        _whole("-k", self.k, 1, MAX_K)
        _whole("--page", self.page, 1, RESULT_WINDOW)
        if self.page * self.k > RESULT_WINDOW:
            raise QueryError(f"--page x -k may reach at most result {RESULT_WINDOW:,}, got page {self.page} of {self.k}")
        _whole("--candidates", self.candidates, 1, MAX_CANDIDATES)
        _whole("rerank depth", self.rerank_depth, 1, MAX_CANDIDATES)
        if self.mode not in MODES:
            raise QueryError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.fusion is not None and self.fusion not in FUSION_METHODS:
            raise QueryError(f"unknown fusion {self.fusion!r}; use one of {', '.join(FUSION_METHODS)}")
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise QueryError(f"unknown normalization {self.normalization!r}; use one of {', '.join(NORMALIZATIONS)}")
        if self.mode == "lexical" and not has_text:
            raise QueryError("lexical (BM25) search needs query text")
        if self.rrf_k is not None and (not _finite(self.rrf_k) or not 0 <= self.rrf_k <= MAX_RRF_K):
            raise QueryError(f"--rrf-k must be a number from 0 to {MAX_RRF_K:g}, got {self.rrf_k}")
        if self.weights is not None:
            weights = tuple(self.weights) if isinstance(self.weights, (tuple, list)) else ()
            if len(weights) not in (2, 3) or not all(_finite(w) and 0 <= w <= MAX_WEIGHT for w in weights) \
                    or not any(weights):
                raise QueryError(f"fusion weights are two or three numbers lexical,dense[,native] from 0 to "
                                 f"{MAX_WEIGHT:g}, not all 0; got {self.weights}")
        parse_filters(self.filters)

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

    def check_plan(self, plan: FusionPlan) -> None:
        """An option of the other fusion method is refused: --norm zscore on an index that fuses with rrf (the
        default) or --rrf-k under wsum changed nothing, and the results said nothing of it."""
        if self.normalization is not None and plan.method != "wsum":
            raise QueryError(f"normalization {self.normalization!r} (--norm) applies to wsum fusion only and this "
                             f"search fuses with {plan.method}; add fusion wsum (--fusion wsum), or leave it out")
        if self.rrf_k is not None and plan.method != "rrf":
            raise QueryError(f"rrf_k (--rrf-k) applies to rrf fusion only and this search fuses with {plan.method}; "
                             "add fusion rrf (--fusion rrf), or leave it out")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.k


CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, newline and CR are spaces


def check_typed_text(text: Any) -> None:
    """Query text a person typed (the CLI, a queries file, the HTTP API): no control characters, and at least
    one letter, digit or symbol such as an emoji to search for ("!!!" or a zero-width space alone find
    nothing). Judged and logged queries are not checked here: a shopper's "???" is still a query to train on."""
    if not isinstance(text, str) or not text.strip():
        return  # missing or empty text: `validate` says what to give
    if CONTROL_CHARS.search(text):
        raise QueryError("query text has a control character (NUL, escape...); type plain text")
    if not any(ch.isalnum() or (unicodedata.category(ch) == "So" and ch != "\ufffd") for ch in text):
        raise QueryError(f"query text {text.strip()[:40]!r} has no letters or digits to search for; "
                         "type words (or search by photo)")


def check_image_file(path: Any) -> None:
    """A query photo path must name a readable image: "not found" and "not an image" are QueryErrors."""
    path = Path(str(path)).expanduser()
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long to look up: pathlib raises instead of answering False
        shown = one_line(str(path))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise QueryError(f"query image {shown} cannot be looked up ({exc.strerror}); give a shorter path") from None
    if not exists:
        raise QueryError(f"query image {path} not found; check the path")
    if not path.is_file():
        raise QueryError(f"query image {path} is not a regular file (a directory, pipe or device); "
                         "give a JPEG or PNG photo")
    try:
        with within_limits(path, path):  # reads the header only
            pass
    except ImageError as exc:
        raise QueryError(f"query {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise QueryError(f"query image {path} is not an image (unreadable as JPEG, PNG, WebP...); "
                         "give a photo file") from None


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
        """The one JSON shape of a search answer: `shoplens search --json` prints it and the HTTP
        service (`POST /search`, `GET /search`) returns it, so scripts read both the same way.

        ``{"query", "took_ms", "stages_ms": {encode, lexical, vector, fuse, rerank}, "version",
        "reranked", "total_candidates", "results": [{"rank", "id", "title", "brand", "price",
        "score", "signals": {bm25, dense, fused, rerank}, "explain"?}]}``; the service's OpenAPI
        schema (`shoplens.service.schemas.SearchResponseModel`) describes the same fields.
        """
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
