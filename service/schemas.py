"""Request and response models of the HTTP API (they make its OpenAPI schema).

The search response is not rebuilt here: endpoints return
`SearchResponse.to_json()`, the dict `shoplens search --json` prints, and
`SearchResponseModel` only describes it (tests validate both fronts' output
against it). Limits are constants so the README, the schema and the checks
agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shoplens.engine.fusion import FUSION_METHODS, NORMALIZATIONS
from shoplens.engine.query import MODES

MAX_K = 100
MAX_OFFSET = 1000
MAX_CANDIDATES = 1000
MAX_FILTERS = 20
MAX_QUERY_CHARS = 1000
MAX_BODY_BYTES = 8 * 2 ** 20  # a request body (JSON, multipart, events); larger is a 413
MAX_EVENTS = 10_000  # events in one POST /events

MAX_WEIGHT = 100  # a fusion weight
Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT)]
Mode = Literal[MODES]  # type: ignore[valid-type]
Fusion = Literal[FUSION_METHODS]  # type: ignore[valid-type]
Normalization = Literal[NORMALIZATIONS]  # type: ignore[valid-type]


class SearchBody(BaseModel):
    """A search: text (`q`), a photo (`image`, URL-safe base64), or both, with the CLI's options."""

    model_config = ConfigDict(extra="forbid")

    q: Optional[str] = Field(None, max_length=MAX_QUERY_CHARS, description="Query text.")
    image: Optional[str] = Field(None, description="Query photo (JPEG, PNG, WebP...) as URL-safe base64 "
                                                   "(standard base64 and data: URLs are accepted too).")
    k: int = Field(10, ge=1, le=MAX_K, description="Results to return.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Results to skip; a multiple of k (pages).")
    filters: list[str] = Field(default_factory=list, max_length=MAX_FILTERS,
                               description='CLI filter syntax, ANDed: "price<=3000", "brand=Nike", "category=Shoes|Sandals".')
    mode: Mode = Field("hybrid", description="hybrid, lexical (BM25 only) or dense (vectors only).")
    fusion: Optional[Fusion] = Field(None, description="rrf (reciprocal rank fusion) or wsum (weighted sum of "
                                     "normalized scores); default: the index's fusion plan.")
    rrf_k: Optional[float] = Field(None, gt=0, le=10_000, description="k of reciprocal rank fusion (default: the plan's).")
    weights: Optional[tuple[Weight, Weight] | tuple[Weight, Weight, Weight]] = Field(
        None, description="Fusion weights [lexical, dense] or [lexical, dense, native], each 0 to 100, not all 0 "
                          "(default: the plan's).")
    normalization: Optional[Normalization] = Field(None, description="Score normalization for wsum (default: the plan's).")
    candidates: int = Field(200, ge=1, le=MAX_CANDIDATES, description="Candidates fetched from each retriever.")
    rerank: Optional[bool] = Field(None, description="Learned reranker on or off; null: on when the index has one.")
    explain: bool = Field(False, description="Add ranks per signal and the reranker's per-feature contributions.")

    @field_validator("weights")
    @classmethod
    def _some_weight(cls, weights: Optional[tuple[float, ...]]) -> Optional[tuple[float, ...]]:
        if weights is not None and not any(weights):
            raise ValueError("weights are all 0")
        return weights


class QueryEcho(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: Optional[str]
    image: Optional[str]
    filters: list[str]
    mode: str
    fusion: str
    k: int
    page: int


class FeatureContribution(BaseModel):
    value: Optional[float]
    contribution: float


class RerankContributions(BaseModel):
    features: dict[str, FeatureContribution]
    bias: float


class Explanation(BaseModel):
    model_config = ConfigDict(extra="allow")

    bm25_rank: Optional[float]
    dense_rank: Optional[float]
    fused_rank: int
    rerank_contributions: Optional[RerankContributions] = None


class ResultModel(BaseModel):
    rank: int
    id: str
    title: str
    brand: str
    price: Optional[float]
    score: Optional[float]
    signals: dict[str, Optional[float]] = Field(description="bm25, dense, fused, rerank: null where one did not apply.")
    explain: Optional[Explanation] = Field(None, description="Only with explain=true.")


class SearchResponseModel(BaseModel):
    """`SearchResponse.to_json()`: the shape `shoplens search --json` prints."""

    query: QueryEcho
    took_ms: float
    stages_ms: dict[str, Optional[float]]
    version: int = Field(description="The index version that answered.")
    reranked: bool
    total_candidates: int
    results: list[ResultModel]


class ErrorModel(BaseModel):
    """Every 4xx and 5xx: a one-line reason (and, for events, the bad lines)."""

    error: str
    status: int
    rejects: Optional[list[dict[str, Any]]] = None


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events appended to the inbox.")
    file: str = Field(description="The inbox file they were written to (`shoplens watch INBOX` folds it).")
    version: int = Field(description="The index version they were validated against.")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    version: Optional[int] = None
    reason: Optional[str] = None
    worker: Optional[int] = None  # the process id of the worker that answered (one of `--workers N`)
