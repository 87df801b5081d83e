"""The reranker at serving time: load the index's XGBoost model and reorder candidates.

The model lives in a version's `ranker/` directory: `model.json` (XGBoost's
JSON format) and `meta.json` (feature names and version, training data
summary, validation metrics, the behaviour it has seen). A model whose
feature names or version differ from `rerank.features` refuses to load.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import RankerError
from shoplens.indexers.encoders.onnx_encoder import onnx_available
from shoplens.indexers.index import IndexDirectory, model_digest
from shoplens.indexers.storage import read_json
from shoplens.rerank import behaviour_store
from shoplens.rerank.features import (COLUMN, FEATURE_NAMES, FEATURE_VERSION, SCORED_FIELDS, FeatureContext,
                                      behaviour_columns, compute_features)
from shoplens.rerank.tree_compile import CompiledTrees, load_compiled
from shoplens.rerank.tree_onnx import INPUT, keep, onnx_bytes


def _xgboost():
    try:
        import xgboost
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RankerError("reranking needs xgboost: pip install xgboost") from exc
    return xgboost


# feature sets since this version only add features (never change one): a model trained on an older one reads
# its own columns, by name, from the matrix this ShopLens computes
FIRST_COMPATIBLE_VERSION = 3


def check_meta(meta: dict[str, Any], where: Path) -> list[str]:
    """The names of the features a model reads; refuses a model trained on a feature set this ShopLens cannot
    compute (another meaning, or names it does not know)."""
    names, version = meta.get("feature_names"), meta.get("feature_version")
    known = isinstance(names, list) and bool(names) and all(isinstance(n, str) and n in COLUMN for n in names)
    if not (known and isinstance(version, int) and FIRST_COMPATIBLE_VERSION <= version <= FEATURE_VERSION):
        raise RankerError(
            f"the reranker in {where} was trained with feature set v{version} "
            f"({len(names) if isinstance(names, list) else 0} features), this ShopLens computes v{FEATURE_VERSION} "
            f"({len(FEATURE_NAMES)} features); retrain it with `shoplens train-ranker` or search with --no-rerank"
        )
    return list(names)


class Ranker:
    """An XGBoost LambdaMART model plus the per-version feature lookups it needs.

    A loaded model predicts with its trees compiled to native code (`rerank.tree_compile`, built by
    train-ranker or `compile_trees`) when the index's cache has them, else with ONNX Runtime (the trees
    converted once per model file); `predictor_note` says which and why. The XGBoost booster is loaded only
    when something needs it (explanations, continued training) or when neither can predict.
    """

    def __init__(self, booster, meta: dict[str, Any], snapshot, model_path: Path | None = None, predictor=None):
        self._booster = booster
        self._model_path = model_path
        self.predictor = predictor
        self.meta = meta
        self.feature_names = list(meta.get("feature_names") or FEATURE_NAMES)  # `load` checked a saved model's
        # None: the model reads every column this ShopLens computes; else the columns it reads, in its order
        self._columns = None if self.feature_names == FEATURE_NAMES else \
            np.array([COLUMN[name] for name in self.feature_names], dtype=np.intp)
        self.use_behaviour = bool(meta.get("use_behaviour", True))
        self._snapshot = snapshot
        self._context: FeatureContext | None = None
        self.predictor_note = "xgboost" if predictor is None else "onnx runtime"
        self._identity: tuple = ("booster", str(model_path))
        self._pinned = False  # predict_with_onnx: compile_trees leaves the predictor alone

    def predict_with_onnx(self) -> str:
        """Predict with ONNX Runtime from now on, compiled trees or not (benchmarks compare the two in one run)."""
        session = onnx_predictor(self._model_path, self._snapshot.index.cache_dir / "ranker", self._identity,
                                 self.feature_names)
        self.predictor, self._pinned = session, True
        self.predictor_note = "onnx runtime (asked for)" if session is not None else "xgboost (asked for onnx runtime)"
        if session is None:
            self._booster = self.booster
        return self.predictor_note

    @classmethod
    def load(cls, directory: Path, snapshot) -> "Ranker":
        meta_path, model_path = directory / "meta.json", directory / "model.json"
        if not meta_path.is_file() or not model_path.is_file():
            raise RankerError(f"the reranker in {directory} is incomplete; retrain it with `shoplens train-ranker`")
        meta = read_json(meta_path)
        names = check_meta(meta, directory)
        stat = model_path.stat()
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, str(meta.get("trained_at")))
        if identity not in _PREDICTORS:
            # versions that carry the ranker over hard-link its file: the next version finds it here
            while len(_PREDICTORS) >= 4:
                _PREDICTORS.pop(next(iter(_PREDICTORS)))
            _PREDICTORS[identity] = _predictor(model_path, snapshot.index.cache_dir / "ranker", identity, names)
        predictor, note = _PREDICTORS[identity]
        booster = None if predictor is not None else _load_booster(model_path, identity, names)
        ranker = cls(booster, meta, snapshot, model_path=model_path, predictor=predictor)
        ranker.predictor_note, ranker._identity = note, identity
        return ranker

    def compile_trees(self) -> str:
        """Compile the trees to native code now unless the index's cache has them (about a minute for 350 trees:
        train-ranker and serving's warm-up call this, never a query), then predict with them. Returns the note."""
        if isinstance(self.predictor, CompiledTrees) or self._model_path is None or self._pinned:
            return self.predictor_note
        cache_dir = self._snapshot.index.cache_dir / "ranker"
        compiled, why = load_compiled(self._model_path, cache_dir, len(self.feature_names), build=True)
        if compiled is not None:
            self.predictor = compiled
            _PREDICTORS[self._identity] = (compiled, f"native: {why}")
        self.predictor_note = f"native: {why}" if compiled is not None else _fallback_note(self.predictor is not None, why)
        return self.predictor_note

    @property
    def booster(self):
        """The XGBoost booster (loaded on first use when ONNX Runtime serves the predictions)."""
        if self._booster is None and self._model_path is not None:
            self._booster = _load_booster(self._model_path, ("booster", str(self._model_path)), self.feature_names)
        return self._booster

    def context(self, snapshot, earlier: FeatureContext | None = None) -> FeatureContext:
        """The snapshot's feature context, built on first use; `earlier`, the context of a version the
        snapshot's products extend, lends what did not change (behaviour, keyword phrases, row lookups)."""
        if self._context is None or self._context.snapshot is not snapshot:
            stats = behaviour_store.load(snapshot.path / "behaviour", earlier.behaviour if earlier else None)
            self._context = FeatureContext(snapshot, stats, snapshot.lexical.text_analyzer(), earlier=earlier)
        return self._context

    def features(self, snapshot, text: str | None, candidates, use_behaviour: bool | None = None) -> np.ndarray:
        """The feature matrix for candidates: exactly what serving and training both use."""
        lexical_scores, field_scores = candidate_scores(snapshot, text, candidates.docnos)
        use = self.use_behaviour if use_behaviour is None else use_behaviour
        return compute_features(self.context(snapshot), text, candidates, lexical_scores, use_behaviour=use,
                                field_scores=field_scores)

    def score(self, features: np.ndarray) -> np.ndarray:
        """The model's score of each row (float32 features, NaN where missing; every column this ShopLens
        computes: a model of an older feature set reads its own)."""
        if self._columns is not None:
            features = features[:, self._columns]
        if isinstance(self.predictor, CompiledTrees):
            return self.predictor.predict(features).astype(np.float64)
        if self.predictor is not None:
            return self.predictor.run(None, {INPUT: features})[0][:, 0].astype(np.float64)
        return self.booster.inplace_predict(features, validate_features=False).astype(np.float64)

    def contributions(self, features: np.ndarray) -> list[dict[str, Any]]:
        """Per-feature contributions (XGBoost's SHAP values) to each row's score."""
        xgboost = _xgboost()
        names = self.feature_names
        if self._columns is not None:
            features = features[:, self._columns]
        matrix = xgboost.DMatrix(features, feature_names=names, missing=np.nan)
        contribs = self.booster.predict(matrix, pred_contribs=True)
        out = []
        for row, values in zip(features, contribs):
            out.append({"features": {name: {"value": None if np.isnan(row[i]) else float(row[i]),
                                            "contribution": float(values[i])} for i, name in enumerate(names)},
                        "bias": float(values[-1])})
        return out

    def rerank(self, snapshot, request, candidates, explain: bool = False):
        """Reorder the top `rerank_depth` candidates by model score; the rest keep their fused order.

        Returns (candidates in the new order, model scores aligned with them
        (NaN beyond the reranked depth), contributions aligned (or None)).
        """
        depth = min(request.rerank_depth, len(candidates))
        head = candidates.take(np.arange(depth))
        features = self.features(snapshot, request.text, head)
        scores = self.score(features)
        order = np.lexsort((np.arange(depth), -scores))
        full_order = np.concatenate([order, np.arange(depth, len(candidates))])
        aligned = np.concatenate([scores[order], np.full(len(candidates) - depth, np.nan)])
        contributions = None
        if explain:
            start, stop = request.offset, min(request.offset + request.k, depth)
            contributions = [None] * len(candidates)
            if start < stop:
                for position, item in zip(range(start, stop), self.contributions(features[order[start:stop]])):
                    contributions[position] = item
        return candidates.take(full_order), aligned, contributions

    @property
    def query_kinds(self) -> list[str]:
        """The query kinds (text, photo, text+photo) the model was trained on; older models saw text only."""
        return list(self.meta.get("query_kinds") or ["text"])

    def covers(self, request) -> bool:
        """Whether this model was trained on the request's kind of query (otherwise the fused order stands)."""
        return query_kind(request) in self.query_kinds

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.meta.items() if k != "feature_names"}


_BOOSTERS: dict[tuple, Any] = {}  # model file identity (and training time) -> the booster loaded from it
_PREDICTORS: dict[tuple, tuple[Any, str]] = {}  # the same identity -> (compiled trees, an ONNX Runtime session or
# None: XGBoost predicts; the note that says which and why)


def _predictor(model_path: Path, cache_dir: Path, identity: tuple, names: list[str]) -> tuple[Any, str]:
    """The fastest predictor the index's cache has for a model: its compiled trees, else ONNX Runtime (else
    None: XGBoost), with a note saying which and why."""
    compiled, why = load_compiled(model_path, cache_dir, len(names))
    if compiled is not None:
        return compiled, f"native: {why}"
    session = onnx_predictor(model_path, cache_dir, identity, names)
    return session, _fallback_note(session is not None, why)


def _fallback_note(onnx: bool, why: str) -> str:
    return f"{'onnx runtime' if onnx else 'xgboost'} (native trees {why})"


def compile_saved_trees(index_path: str | Path, version: int) -> str:
    """Compile a committed version's model into the index's cache (train-ranker, after the commit: the model
    is searchable meanwhile). Returns what searches predict with."""
    index = IndexDirectory(index_path)
    model_path = index.version_path(version) / "ranker" / "model.json"
    names = check_meta(read_json(model_path.parent / "meta.json"), model_path.parent)
    compiled, why = load_compiled(model_path, index.cache_dir / "ranker", len(names), build=True)
    return f"native: {why}" if compiled is not None else _fallback_note(onnx_available(), why)


def predictor_status(snapshot_path: Path, cache_dir: Path) -> str | None:
    """Which predictor a search on this version ranks with, and why (`shoplens info`); None without a ranker."""
    model_path = snapshot_path / "ranker" / "model.json"
    if not model_path.is_file():
        return None
    try:
        names = check_meta(read_json(model_path.parent / "meta.json"), model_path.parent)
    except (RankerError, OSError, ValueError) as exc:
        return f"none: {exc}"
    compiled, why = load_compiled(model_path, cache_dir / "ranker", len(names))
    return f"native: {why}" if compiled is not None else _fallback_note(onnx_available(), why)


def _load_booster(model_path: Path, identity: tuple, names: list[str]):
    booster = _BOOSTERS.get(identity)
    if booster is None:
        booster = _xgboost().Booster()
        booster.load_model(str(model_path))
        booster.set_param({"nthread": 1})
        while len(_BOOSTERS) >= 4:
            _BOOSTERS.pop(next(iter(_BOOSTERS)))
        _BOOSTERS[identity] = booster
    if booster.feature_names and list(booster.feature_names) != names:
        raise RankerError(f"the reranker in {model_path.parent} names other features than its meta.json; "
                          "retrain it with `shoplens train-ranker` or search with --no-rerank")
    return booster


def onnx_predictor(model_path: Path, cache_dir: Path, identity: tuple, names: list[str] | None = None):
    """An ONNX Runtime session of the model's trees (one operator thread), converted once per model file
    and kept in the index's cache; None when onnxruntime is missing or the trees cannot be converted."""
    if not onnx_available():
        return None
    key = hashlib.blake2b(repr(identity).encode(), digest_size=10).hexdigest()
    target = cache_dir / f"ranker-{model_digest(model_path)}-{key}.onnx"  # model first: see IndexDirectory.prune
    source: str | bytes = str(target)
    if not target.is_file():
        model = json.loads(model_path.read_text(encoding="utf-8"))
        stored = model["learner"].get("feature_names") or []
        if stored and stored != (names or FEATURE_NAMES):
            raise RankerError(f"the reranker in {model_path.parent} names other features than its meta.json; "
                          "retrain it with `shoplens train-ranker` or search with --no-rerank")
        data = onnx_bytes(model)
        if data is None:
            return None
        source = keep(target, data)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def candidate_scores(snapshot, text: str | None,
                     docnos: np.ndarray) -> tuple[np.ndarray | None, dict[str, np.ndarray] | None]:
    """Exact BM25 of every candidate for the whole query (0 where it matches no term) and within each of the
    bm25_FIELD features' fields, asked together (one round trip on a server store); (None, None) without text."""
    if not text or not text.strip() or len(docnos) == 0:
        return None, None
    return snapshot.lexical.candidate_scores(text, docnos, SCORED_FIELDS)


def query_kind(request) -> str:
    """text, photo or text+photo."""
    has_text = bool(request.text and str(request.text).strip())
    if request.image is None:
        return "text"
    return "text+photo" if has_text else "photo"


def load_ranker(snapshot) -> Ranker | None:
    """The snapshot's ranker, or None when the index has not been given one."""
    if not snapshot.manifest.get("ranker"):
        return None
    return Ranker.load(snapshot.path / "ranker", snapshot)


def blank_behaviour(features: np.ndarray) -> np.ndarray:
    """The same rows with every behaviour feature missing (a shop with no behaviour yet)."""
    copy = features.copy()
    copy[:, behaviour_columns()] = np.nan
    return copy
