"""The search engine facade: open an index, answer queries, follow new versions.

A `SearchEngine` holds one `Snapshot` (every store at one committed version).
Before each query it checks the index's CURRENT file; when a newer version was
committed it opens that one, and the query in flight keeps the snapshot it
started with. With `follow_in_background=SECONDS` a daemon thread polls CURRENT
instead, opens and warms a new version off the query path (answering the latest
few text queries on it, results dropped) and then swaps it in
(one attribute assignment), so no query waits for a version to open; queries
already running finish on the snapshot they took. The encoder is loaded once
and checked against the model the index was built with.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import ModelMismatchError, QueryError, RankerError
from shoplens.engine.filters import check_comparable, filter_mask, parse_filters
from shoplens.engine.fusion import FusionPlan, default_plan, photo_leads
from shoplens.engine.hybrid import Candidates, QueryVectors, hybrid_search, photo_lead_order, query_plan
from shoplens.engine.query import SearchRequest, SearchResponse, SearchResult
from shoplens.engine.query_cache import DEFAULT_CAPACITY, QueryCache, image_key, text_key
from shoplens.indexers.encoders import open_image, open_query_encoder, resolve_runtime, weights_identity
from shoplens.indexers.encoders.base import Encoder
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.vector.base import normalize_rows
from shoplens.rerank.model import load_ranker

INTENT_CACHE_SIZE = 4096

STAGES = ("encode", "lexical", "vector", "fuse", "rerank")
_MISSING = object()
REHEARSALS = 0  # latest text queries the background follower asks a new version (results dropped) before the swap
FOLLOW_ROWS_STEP = 64  # rows the follower analyzes between pauses (a new version's rows, before its swap)
FOLLOW_PAUSE_S = 0.002  # the pause: a request thread waiting for the GIL takes it at once


class SearchEngine:
    """Answers search requests against the current version of an index."""

    def __init__(self, index_path: str | Path, device: str = "auto", model: str | None = None,
                 pretrained: str | None = None, encoder: Encoder | None = None, search_threads: int = 1,
                 follow_updates: bool = True, preload: bool = True, follow_in_background: float | None = None,
                 encoder_runtime: str | None = None, query_cache_size: int = DEFAULT_CAPACITY,
                 rehearsals: int = REHEARSALS):
        self.index = IndexDirectory(index_path)
        self.index.require()
        self.device = device
        self.follow_updates = follow_updates
        self._lock = threading.Lock()
        # lexical searches run beside query encoding; several workers serve concurrent callers
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shoplens-lexical")
        self._encoder = encoder
        self._search_threads = search_threads
        self.snapshot = Snapshot.open(self.index, device=device)
        self._check_model(model, pretrained)
        recorded_runtime = self.snapshot.manifest["backends"].get("encoder", {}).get("runtime")
        self.encoder_runtime = encoder.runtime if encoder is not None and hasattr(encoder, "runtime") else \
            resolve_runtime(encoder_runtime or recorded_runtime, self.snapshot.manifest["model"]["name"])
        self.query_cache = QueryCache(query_cache_size)
        self._intents = QueryCache(INTENT_CACHE_SIZE)  # parsed stated intent by version and text (read 3x a query)
        self._brands: dict[int, frozenset[str]] = {}  # a version's brand words (never read as a type)
        self._ranker_cache: dict[int, Any] = {}
        # per-version lookups, kept for the newest two versions (queries in flight keep the older one)
        self._spellers: dict[int, Any] = {}
        self._facets: dict[int, Any] = {}
        self._recent: deque[SearchRequest] = deque(maxlen=max(0, int(rehearsals)))
        self._rows_ahead = False  # warm_rows was asked: each new version's rows are analyzed before its swap
        self._set_search_threads()
        if preload:  # now, so the first query's latency is the query's
            self.warm()
        self._follower: _Follower | None = None
        if follow_updates and follow_in_background:
            self.follow_updates = False  # queries no longer check CURRENT: the follower thread does
            self._follower = _Follower(self, follow_in_background)

    def warm(self) -> None:
        """Load the encoder and the current version's reranker (done by __init__ unless preload=False)."""
        self.load_encoder()
        self._warm(self.snapshot)

    def warm_rows(self, stop=None, lexical: bool = True) -> int:
        """Build the version's spelling dictionary and analyze every product for the reranker: its text
        features, and (unless `lexical` is false) the rows' terms the lexical store scores candidates' BM25
        from without searching (seconds on a large catalog: long-running callers run it in a background
        thread, and a one-shot search skips it). Each version followed after this gets its spelling
        dictionary before its swap, shares the analyzed rows of the version it extends and has its own new
        rows analyzed before its swap. Returns the rows analyzed."""
        self._rows_ahead = True
        snapshot = self.snapshot
        speller = self.speller(snapshot)
        if speller is not None:
            speller.prepare()
        try:
            ranker = self.ranker(snapshot)
        except RankerError:
            return 0
        if ranker is None:
            return 0
        ranker.compile_trees()  # native trees when the index has none yet (old models): a minute, once per model
        if lexical:
            snapshot.lexical.prepare_rows(snapshot.products, stop=stop)
        # a newer version swapped in meanwhile shares the rows analyzed so far; queries analyze the rest
        return ranker.context(snapshot).fill_all(stop=lambda: self.snapshot is not snapshot or (stop and stop()))

    def check(self, request: SearchRequest) -> None:
        """Everything about a request that needs the index but not the model: options, filter syntax and
        fields, the image file. A one-shot caller runs it before `warm()`, so a typo costs no model load."""
        request.validate()
        filters = parse_filters(request.filters)
        filter_mask(self.snapshot.products, filters)
        check_comparable(self.snapshot.products, filters)

    # -- versions ----------------------------------------------------------------

    def refresh(self, rehearse: bool = False) -> bool:
        """Open the newest committed version if there is one. Returns True when it changed. With
        `rehearse` (the background follower) the new version first answers the latest text queries."""
        current = self.index.current_version()
        if current == self.snapshot.version:
            return False
        with self._lock:
            if current != self.snapshot.version:
                snapshot = Snapshot.open(self.index, current, device=self.device, previous=self.snapshot)
                self._verify_model(snapshot.manifest["model"])
                self._warm(snapshot, previous=self.snapshot)
                # the rows' BM25 terms the open version holds, extended by the rows the new one added
                snapshot.lexical.prepare_rows(snapshot.products, previous=self.snapshot.lexical)
                if rehearse:
                    self._rehearse(snapshot)
                snapshot.products.release_inherited()  # what the reranker needed is extended by now
                self.snapshot = snapshot
                return True
        return False

    @property
    def follow_error(self) -> str | None:
        """Why the background follower could not open the newest version (None when it could)."""
        return None if self._follower is None else self._follower.error

    # -- model ---------------------------------------------------------------------

    def _check_model(self, model: str | None, pretrained: str | None) -> None:
        recorded = self.snapshot.manifest["model"]
        if model is not None and model != recorded["name"]:
            raise ModelMismatchError(
                f"this index was built with model {recorded['name']}, not {model}; search without --model, "
                f"or rebuild the index with --model {model}"
            )
        if pretrained is not None:
            _, weights_id = weights_identity(recorded["name"], pretrained)
            if weights_id != recorded["weights_id"]:
                raise ModelMismatchError(
                    f"weights {pretrained} differ from the ones this index was built with ({recorded.get('pretrained')}); "
                    "search without --pretrained, or rebuild the index with them"
                )
        self._verify_model(recorded)

    def _verify_model(self, recorded: dict[str, Any]) -> None:
        if self._encoder is not None:
            if not self._encoder.info.same_model(recorded):
                raise ModelMismatchError(
                    f"the loaded encoder ({self._encoder.info.name}, {self._encoder.info.weights_id}) is not the one "
                    f"this index was built with ({recorded['name']}, {recorded['weights_id']})"
                )
            return
        _, weights_id = weights_identity(recorded["name"], recorded.get("pretrained"))
        if weights_id != recorded["weights_id"]:
            raise ModelMismatchError(
                f"the index was built with weights {recorded['weights_id']} of {recorded['name']}, but the installed "
                f"weights are {weights_id}; rebuild the index with `shoplens index`"
            )

    def load_encoder(self) -> Encoder:
        """The query encoder: the index's model, loaded on first use (the constructor preloads it)."""
        if self._encoder is None:
            self._encoder = open_query_encoder(self.index.path, self.snapshot.manifest["model"],
                                               self.encoder_runtime, self.device, threads=self._search_threads)
        return self._encoder

    def _set_search_threads(self) -> None:
        self.snapshot.vectors.set_search_threads(self._search_threads)

    # -- searching -----------------------------------------------------------------

    def encode_query(self, request: SearchRequest) -> QueryVectors:
        """The query's embeddings (from the query cache when seen before): one text-tower pass gives both
        the joint and the text-native one; a photo's; and their sum."""
        text_vec = image_vec = native_vec = None
        encoder = self.load_encoder()
        if request.text and request.text.strip():
            text = request.text.strip()
            text_vec, native_vec = self.query_cache.get(text_key(text), lambda: _first_pair(encoder, [text]))
            if self.snapshot.text_native is None:
                native_vec = None
        if request.image is not None:
            image = load_query_image(request.image)
            image_vec = self.query_cache.get(image_key(image), lambda: encoder.encode_image_objects([image])[0])
        parts = [v for v in (text_vec, image_vec) if v is not None]
        combined = normalize_rows(np.sum(parts, axis=0)[None, :])[0] if parts else None
        return QueryVectors(text_vec, image_vec, combined, native_vec)

    @staticmethod
    def fusion_plan(snapshot: Snapshot, request: SearchRequest | None = None) -> FusionPlan:
        """The fusion a query runs: the plan recorded in the index (learned or default), then the request's overrides."""
        plan = FusionPlan.from_dict(snapshot.manifest.get("fusion"), default_plan(snapshot.manifest))
        if request is None:
            return plan
        plan = request.plan(plan)
        request.check_plan(plan)
        return plan

    def prepare_queries(self, texts: list[str], batch_size: int = 256) -> int:
        """Encode many query texts in batches into the query cache, so later searches for them skip
        encoding (training, evaluation, benchmarks). Returns how many were encoded."""
        todo = list(dict.fromkeys(" ".join(t.split()) for t in texts if t and t.strip()))
        todo = [text for text in todo if not self.query_cache.contains(text_key(text))]
        self.query_cache.grow(len(self.query_cache) + len(todo))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            joint, native = self.load_encoder().encode_texts_native(batch, batch_size=batch_size)
            for row, text in enumerate(batch):
                self.query_cache.put(text_key(text), (joint[row], None if native is None else native[row]))
        return len(todo)

    def retrieve(self, request: SearchRequest, stages: dict[str, float | None] | None = None,
                 for_rerank: bool = False, follow: bool = True) -> tuple[Snapshot, Candidates, list]:
        """Filters, hybrid retrieval and fusion: the candidates a reranker would see, in fused order. `follow`
        False: the caller has just moved to the newest version (`search`: its reranker is that version's)."""
        request.validate()
        if request.image is None and request.text and request.text.strip():
            self._recent.append(request)  # rehearsed on the next version before it is swapped in
        if self.follow_updates and follow:
            self.refresh()
        snapshot = self.snapshot
        if request.image is not None and not hasattr(request.image, "size"):
            request.image = load_query_image(request.image)
        stages = {stage: None for stage in STAGES} if stages is None else stages
        filters = parse_filters(request.filters)
        mask = filter_mask(snapshot.products, filters)
        check_comparable(snapshot.products, filters)
        if mask is not None:
            mask &= snapshot.products.live
        effective = _replace(self.spell_checked(request), rerank=for_rerank)
        intent = self.intent_of(snapshot, effective)
        if intent is not None:
            effective = _replace(effective, text=intent.retrieved_text(with_photo=request.image is not None))
            if effective.strict_intent:
                filters = filters + parse_filters(intent.filters())
                mask = filter_mask(snapshot.products, filters)
                mask &= snapshot.products.live
        candidates = hybrid_search(snapshot, effective, self.encode_query, mask, self._executor, stages,
                                   self.fusion_plan(snapshot, request), intent=intent)
        return snapshot, candidates, filters

    def search(self, request: SearchRequest) -> SearchResponse:
        """Run one query end to end: filters, hybrid retrieval, fusion, reranking, results."""
        started = time.perf_counter()
        request.validate()
        if self.follow_updates:
            self.refresh()
        ranker = self.ranker(self.snapshot) if request.rerank is not False and request.mode == "hybrid" else None
        skipped = None
        if ranker is not None and not ranker.covers(request):
            from shoplens.rerank.model import query_kind

            skipped = (f"reranker not applied: it was trained on {', '.join(ranker.query_kinds)} queries, "
                       f"not {query_kind(request)}; the fused order stands")
            ranker = None
        stages: dict[str, float | None] = {stage: None for stage in STAGES}
        original_text = request.text
        request = self.spell_checked(request)
        snapshot, candidates, filters = self.retrieve(request, stages, for_rerank=ranker is not None, follow=False)
        if ranker is not None and self.ranker(snapshot) is not ranker:  # a new version arrived meanwhile
            ranker = self.ranker(snapshot)
            ranker = ranker if ranker is not None and ranker.covers(request) else None
        contributions = None
        reranked_scores = None
        if ranker is not None and len(candidates):
            t0 = time.perf_counter()
            candidates, reranked_scores, contributions = self._rerank(ranker, snapshot, request, candidates)
            stages["rerank"] = (time.perf_counter() - t0) * 1000
        intent = self.intent_of(snapshot, request) or self.photo_intent_of(snapshot, request, candidates)
        boosts = None
        if intent is not None and (intent.source == "photo" or not request.strict_intent) and len(candidates) > 1:
            from shoplens.engine.intent import boosted_order, constraint_matches

            order, boosts = boosted_order(constraint_matches(snapshot.products, intent, candidates.docnos),
                                          len(candidates))
            candidates, reranked_scores, contributions, _ = _take(order, candidates, reranked_scores, contributions)
            boosts = boosts[order]
        lead = photo_lead_order(candidates, query_plan(request, self.fusion_plan(snapshot, request)),
                                by_fused_rank=not (request.text or "").strip()) \
            if request.mode == "hybrid" else None  # one retriever alone keeps its own order
        if lead is not None:  # the product in the query photo stays first, whatever reranking and boosts did
            candidates, reranked_scores, contributions, boosts = _take(lead, candidates, reranked_scores,
                                                                       contributions, boosts)
        if request.collapse and len(candidates) > 1:
            candidates, reranked_scores, contributions, boosts = _take(
                collapse_duplicates(snapshot, candidates.docnos), candidates, reranked_scores, contributions, boosts)
        results = self._results(snapshot, request, candidates, reranked_scores, contributions, boosts)
        took = (time.perf_counter() - started) * 1000
        image_name = None if request.image is None else str(getattr(request.image, "filename", "") or "<image>")
        query = {"text": original_text, "image": image_name, "filters": [str(f) for f in filters], "mode": request.mode,
                 "fusion": self.fusion_plan(snapshot, request).method, "k": request.k, "page": request.page}
        notes = [skipped] if skipped else []
        if intent is not None:
            applied = "filters" if request.strict_intent and intent.source == "text" else "boost"
            query["intent"] = {**intent.to_dict(), "applied": applied}
            notes.append(intent_note(intent, request.strict_intent))
        if request.text != original_text:
            query["rewritten"] = request.text
            notes.insert(0, f"showing results for \"{request.text}\"; search for \"{original_text}\" with --no-spell")
        return SearchResponse(query, took, stages, results, snapshot.version, len(candidates),
                              reranked=ranker is not None, notes=notes)

    def _rerank(self, ranker, snapshot: Snapshot, request: SearchRequest, candidates: Candidates):
        """The ranker's order of the candidates: (candidates, scores, contributions). It reads a query as it was
        trained to (price phrase out, stated intent as features), also with --no-intent, which turns off only
        the boost and the rewrite of the retrieval text."""
        understood = self.intent_of(snapshot, _replace(request, intent=True))
        rank_request = request if understood is None else \
            _replace(request, text=understood.retrieved_text(with_photo=request.image is not None))
        candidates.intent = understood
        return ranker.rerank(snapshot, rank_request, candidates, explain=request.explain)

    def photo_intent_of(self, snapshot: Snapshot, request: SearchRequest, candidates: Candidates):
        """For a photo alone that shows a catalog product (the photo rule's lead), products of that product's type
        and colour are preferred after it, as if the shopper had typed them; None otherwise."""
        if not request.intent or request.image is None or (request.text or "").strip() or not len(candidates):
            return None
        leads = photo_leads(candidates.photo, query_plan(request, self.fusion_plan(snapshot, request)).photo_match)
        if not leads.any():
            return None
        from shoplens.engine.intent import photo_intent

        shown = int(candidates.docnos[int(np.argmax(np.where(leads, candidates.photo, -np.inf)))])
        intent = photo_intent(snapshot.products, self.facets(snapshot), shown)
        return None if intent.empty else intent

    def intent_of(self, snapshot: Snapshot, request: SearchRequest):
        """What the query text states (price, audience, colour, type) on this version's fields; None when nothing."""
        if not request.intent or not request.text or not request.text.strip():
            return None
        from shoplens.engine.intent import parse_intent

        facets = self.facets(snapshot)
        intent = self._intents.get(("intent", f"{snapshot.version}\x1f{request.text}"),
                                   lambda: parse_intent(request.text, facets, self._associator(snapshot, facets)))
        return None if intent.empty else intent

    def _associator(self, snapshot: Snapshot, facets):
        """word -> the category value the catalog associates it with (its best BM25 matches mostly share it), or
        None; brand words are never types. Remembered per version and word."""
        from shoplens.engine.intent import associated_category

        brands = self._brand_words(snapshot)

        def associate(words: str, within=None) -> str | None:
            if words.split()[0] in brands:  # "puma" or "puma bag": a brand is not a kind of product
                return None
            key = ("word", f"{snapshot.version}\x1f{words}\x1f{within.filter() if within else ''}")
            found = self._intents.get(key, lambda: (associated_category(
                _best_matches(snapshot, words, within, holding), snapshot.products, facets) or "",))
            return found[0] or None

        def holding(word: str) -> np.ndarray | None:
            """The products holding `word`, None when more than PHRASE_DEPTH do (remembered per version and word:
            type words recur in most queries)."""
            return self._intents.get(("pool", f"{snapshot.version}\x1f{word}"), lambda: _holding(snapshot, word))

        return associate

    def _brand_words(self, snapshot: Snapshot) -> frozenset[str]:
        """Every word of the version's brand names (lower case), built once per version."""
        def build():
            column = snapshot.products.column_name("brand")
            if column is None:
                return frozenset()
            from shoplens.engine.intent import _tokens

            return frozenset(w for brand in snapshot.products.keyword(column)[2] if brand for w in _tokens(brand))

        return _per_version(self._brands, snapshot.version, build)

    def facets(self, snapshot: Snapshot):
        """The version's facet values that stated intent is read against, computed once per version."""
        from shoplens.engine.intent import stored_facet_values

        return _per_version(self._facets, snapshot.version, lambda: stored_facet_values(snapshot))

    def speller(self, snapshot: Snapshot):
        """The version's spelling corrector (None when the index has no vocabulary), built once per version."""
        def build():
            from shoplens.indexers.spelling import read_vocabulary

            vocabulary = read_vocabulary(snapshot.path / "spelling")
            if not vocabulary:
                return None
            from shoplens.engine.spelling import SpellCorrector

            # an earlier version's corrector is rebuilt only when the words changed, not their counts
            earlier = [c for v, c in sorted(dict(self._spellers).items()) if v < snapshot.version and c is not None]
            return earlier[-1].for_vocabulary(vocabulary) if earlier else SpellCorrector(vocabulary)

        return _per_version(self._spellers, snapshot.version, build)

    def spell_checked(self, request: SearchRequest) -> SearchRequest:
        """The request with misspelled terms corrected from the catalog's vocabulary (unless spell is off)."""
        if not request.spell or not request.text or not request.text.strip():
            return request
        corrector = self.speller(self.snapshot)
        corrected = corrector.correct(request.text) if corrector is not None else None
        return _replace(request, text=corrected, spell=False) if corrected else request

    def _warm(self, snapshot: Snapshot, previous: Snapshot | None = None) -> None:
        """Load a version's reranker and its per-version lookups before any query needs them. With
        `previous` (the version being served), what the new version shares with it is carried over.

        A reranker that cannot load is not an error here: searches with
        --no-rerank still work, and one that reranks reports it.
        """
        speller = self.speller(snapshot)
        if speller is not None and self._rows_ahead:  # serving: its dictionary too, not on a query
            speller.prepare()
        self.facets(snapshot)
        try:
            ranker = self.ranker(snapshot)
        except RankerError:
            return
        if ranker is not None:
            earlier = self._served_context(previous) if previous is not None else None
            context = ranker.context(snapshot, earlier=earlier)
            if previous is not None:
                self._carry_rows(snapshot, context, earlier)

    def _served_context(self, previous: Snapshot):
        """The reranker's feature context of the version being served, when it has one: a new version takes
        from it what it shares (behaviour, keyword phrases, analyzed rows)."""
        old = self._ranker_cache.get(previous.version)
        try:
            return None if old is None else old.context(previous)
        except RankerError:
            return None

    def _carry_rows(self, snapshot: Snapshot, context, earlier) -> None:
        """The reranker's analyzed rows that `snapshot` shares with the served version are taken from its
        context `earlier` (shared, not copied, when the new version extends the served one); with rows kept
        analyzed ahead (`warm_rows`), the rest (an update's rows) are analyzed now, before the swap, and
        packed, so queries on the new version find every row analyzed as they did on the old one."""
        shared = snapshot.products.shared_rows
        taken = context.adopt_rows(earlier, shared) if earlier is not None and shared else 0
        if not self._rows_ahead:
            return
        rows = snapshot.products.num_rows
        # small steps with a pause between: this thread shares the GIL with the request threads
        for start in range(0 if taken < shared else shared, rows, FOLLOW_ROWS_STEP):
            context.title_terms(np.arange(start, min(rows, start + FOLLOW_ROWS_STEP), dtype=np.int64))
            time.sleep(FOLLOW_PAUSE_S)
        context.pack()  # the shared rows' arrays are taken from the previous version's; only new rows are read

    def _rehearse(self, snapshot: Snapshot) -> None:
        """Answer the latest text queries on a version before it is swapped in (results dropped), so
        what a version loads on first use (columns, vector pages, reranker inputs) is paid here, off the
        query path. A query that fails here is left to fail, if it does, where it is asked."""
        view = copy.copy(self)  # shares the encoder, caches and executor; sees only `snapshot`
        view.snapshot, view.follow_updates, view._follower = snapshot, False, None
        view._recent = deque(maxlen=0)
        for request in list(self._recent):
            try:
                view.search(request)
            except Exception:  # noqa: BLE001 - a rehearsal never breaks following
                continue

    def ranker(self, snapshot: Snapshot):
        """The snapshot's reranker, loaded once per version (None when the index has none)."""
        cache = self._ranker_cache  # read once: a follower thread may replace the dict meanwhile
        if snapshot.version not in cache:
            ranker = load_ranker(snapshot)
            newest = max(cache, default=None)  # keep the previous version's for queries in flight
            self._ranker_cache = {**({newest: cache[newest]} if newest is not None else {}), snapshot.version: ranker}
            return ranker
        return cache[snapshot.version]

    def _results(self, snapshot: Snapshot, request: SearchRequest, candidates: Candidates,
                 reranked: np.ndarray | None, contributions, boosts: np.ndarray | None = None) -> list[SearchResult]:
        start, stop = request.offset, request.offset + request.k
        page = np.arange(start, min(stop, len(candidates)))
        if len(page) == 0:
            return []
        records = snapshot.products.records(candidates.docnos[page])
        bm25 = _page_bm25(snapshot, request, candidates, page)
        results = []
        for position, row, record in zip(page.tolist(), page.tolist(), records):
            rerank_score = None if reranked is None else _nan_to_none(reranked[row])  # NaN past the depth
            signals = {
                "bm25": _nan_to_none(bm25[position - start]),
                "dense": _nan_to_none(candidates.dense[row]),
                "text_native": _nan_to_none(candidates.native[row]),
                "fused": float(candidates.fused[row]),
                "rerank": rerank_score,
            }
            if boosts is not None:
                signals["intent_boost"] = float(boosts[row])
            explain = None
            if request.explain:
                explain = {"bm25_rank": _rank(candidates.bm25_rank[row]),
                           "dense_rank": _rank(candidates.dense_rank[row]),
                           "text_native_rank": _rank(candidates.native_rank[row]),
                           "fusion_weights": {k: round(v, 3) for k, v in candidates.channel_weights.items()},
                           "fused_rank": int(candidates.fused_rank[row])}
                if contributions is not None:
                    explain["rerank_contributions"] = contributions[row]
            results.append(SearchResult(
                rank=position + 1, id=record["id"], title=record["title"], brand=record.get("brand") or "",
                price=record.get("price"), score=rerank_score if rerank_score is not None else float(candidates.fused[row]),
                signals=signals, image=record.get("image"), category=record.get("category") or [], explain=explain,
            ))
        return results

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        self._executor.shutdown(wait=False)


class _Follower:
    """A daemon thread that moves an engine to each newly committed version, off the query path.

    Every `interval` seconds it reads CURRENT; a new version is opened and
    warmed (reranker, per-version lookups) here, answers the engine's latest
    text queries (results dropped, so what it loads on first use is loaded
    here), then `engine.snapshot` is replaced in one assignment. A version that cannot be opened (a model
    mismatch, a damaged commit) leaves the engine on the version it has and is
    reported in `error`; the next poll tries again.
    """

    def __init__(self, engine: SearchEngine, interval: float):
        self.engine, self.interval, self.error = engine, float(interval), None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoplens-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.engine.index.current_version() != self.engine.snapshot.version:
                    with _short_switches():
                        self.engine.refresh(rehearse=True)
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep serving the version we have; report why
                self.error = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(1.0, self.interval * 2))


# while the follower opens and warms a version (Python, holding the GIL for up to the switch interval at a
# time), request threads that released the GIL (ONNX Runtime, FAISS, the compiled trees) get it back within this
FOLLOWER_SWITCH_INTERVAL = 0.0005


@contextlib.contextmanager
def _short_switches():
    """Python's thread switch interval at most FOLLOWER_SWITCH_INTERVAL, restored after."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, FOLLOWER_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _best_matches(snapshot: Snapshot, words: str, within=None, holding=None) -> np.ndarray:
    """A word's ASSOCIATION_DEPTH best BM25 matches. A phrase's ("school bag") are the products holding every
    word (BM25 of the phrase would rank the products that say "bag" most, whatever kind of bag): those of its
    rarest word that hold the others. When every word is in more than PHRASE_DEPTH products: none within a
    constraint (narrowing a type on such words cost derived judgments NDCG), and across the catalog the
    phrase's ASSOCIATION_DEPTH best BM25 matches that hold every word. `within` (a constraint) keeps only the
    products meeting it; `holding(word)` gives a word's products (`_holding`, or a cache of it)."""
    from shoplens.engine.filters import filter_mask, parse_filter
    from shoplens.engine.intent import ASSOCIATION_DEPTH

    split = words.split()
    if len(split) == 1:
        return snapshot.lexical.search(words, ASSOCIATION_DEPTH, snapshot.products.live)[0]
    pools = [pool for pool in map(holding or (lambda word: _holding(snapshot, word)), split) if pool is not None]
    if not pools and within is not None:
        return np.empty(0, np.int64)
    # every word is common ("tee shirt"), asked across the catalog: its best BM25 matches holding every word
    docnos = min(pools, key=len) if pools else \
        snapshot.lexical.search(words, ASSOCIATION_DEPTH, snapshot.products.live)[0].astype(np.int64)
    for word in split:
        docnos = docnos[snapshot.lexical.scores_of(word, docnos) > 0] if len(docnos) else docnos
    if within is not None and len(docnos):
        docnos = docnos[filter_mask(snapshot.products, [parse_filter(within.filter())], rows=docnos)]
    return docnos


def _holding(snapshot: Snapshot, word: str) -> np.ndarray | None:
    """The live products holding `word`, or None when more than PHRASE_DEPTH do."""
    from shoplens.engine.intent import PHRASE_DEPTH

    if snapshot.lexical.documents_at_least(word) > 2 * PHRASE_DEPTH:  # too common, whatever rows are deleted
        return None
    docnos = snapshot.lexical.search(word, PHRASE_DEPTH + 1, snapshot.products.live)[0]
    return None if len(docnos) > PHRASE_DEPTH else docnos


def _per_version(cache: dict[int, Any], version: int, build) -> Any:
    """`cache[version]`, built on first use; only the newest two versions are kept. The dict is changed
    in place, so a rehearsal's view of the engine (a shallow copy) fills the engine's own cache."""
    value = cache.get(version, _MISSING)
    if value is _MISSING:
        value = cache[version] = build()
        for old in sorted(cache)[:-2]:
            cache.pop(old, None)
    return value


def load_query_image(image: Any):
    """Open a query photo; a missing or unreadable file is a QueryError."""
    if hasattr(image, "size") and hasattr(image, "convert"):
        return image.convert("RGB")
    path = Path(str(image))
    if not path.exists():
        raise QueryError(f"query image {path} not found; check the path given to --image")
    if not path.is_file():
        raise QueryError(f"query image {path} is not a regular file; give --image a JPEG or PNG photo")
    try:
        opened = open_image(path)
    except (OSError, ValueError, SyntaxError) as exc:
        raise QueryError(f"cannot read query image {path}: {exc}; use a JPEG or PNG photo") from None
    opened.filename = str(path)
    return opened


def intent_note(intent, strict: bool) -> str:
    """One line saying what was understood and how it was used."""
    parts = [f"{c.field}={'|'.join(c.values)} (\"{c.word}\")" for c in intent.constraints]
    if intent.price_min is not None or intent.price_max is not None:
        low = "" if intent.price_min is None else f"{intent.price_min:g} <= "
        high = "" if intent.price_max is None else f" <= {intent.price_max:g}"
        parts.insert(0, f"{low}price{high}")
    if intent.price_level is not None:
        parts.insert(0, f"price in the {'cheapest' if intent.price_level == 'low' else 'dearest'} third")
    if intent.source == "photo":
        return "from the product in the photo: " + ", ".join(parts) + ": preferred after it (--no-intent to ignore)"
    how = "applied as filters (--strict-intent)" if strict else "preferred, not required (--strict-intent to filter, --no-intent to ignore)"
    return "understood " + ", ".join(parts) + f": {how}"


def collapse_duplicates(snapshot: Snapshot, docnos: np.ndarray) -> np.ndarray:
    """Positions to keep: the first of products with the same normalized title, brand and image content."""
    _, first = np.unique(snapshot.products.collapse_keys(docnos), return_index=True)
    return np.sort(first).astype(np.int64)


def _page_bm25(snapshot: Snapshot, request: SearchRequest, candidates: Candidates, page: np.ndarray) -> np.ndarray:
    """BM25 of a page's products whenever BM25 ran: a product only the vectors found gets its exact
    score too (0 when it matches no query term), so a product has one BM25 value, whichever list found it."""
    scores = candidates.bm25[page].astype(np.float64)
    text = (request.text or "").strip()
    missing = np.isnan(scores)
    if request.mode in ("dense", "native") or not text or not missing.any():
        return scores
    scores[missing] = snapshot.lexical.scores_of(text, candidates.docnos[page][missing])  # rows in memory when held
    return scores


def _take(order: np.ndarray, candidates: Candidates, scores: np.ndarray | None, contributions, boosts=None):
    """Candidates and what is aligned with them (reranker scores, contributions, boosts) in a new order."""
    return (candidates.take(order), None if scores is None else scores[order],
            None if contributions is None else [contributions[i] for i in order],
            None if boosts is None else boosts[order])


def _rank(value: float) -> int | None:
    return None if value is None or np.isnan(value) else int(value)


def _first_pair(encoder: Encoder, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The joint and text-native embeddings of one query text (native None for models without a text tower)."""
    joint, native = encoder.encode_texts_native(texts)
    return joint[0], None if native is None else native[0]


def _nan_to_none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _replace(request: SearchRequest, **changes) -> SearchRequest:
    from dataclasses import replace

    return replace(request, **changes)
