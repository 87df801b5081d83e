"""Product vectors on the Elasticsearch cluster: the dense retriever as one filtered query there.

Where the vectors live. With `--vectors elasticsearch` (which needs `--lexical
elasticsearch`) each product's joint vector (field `vec`) and, for a model with
a text tower, its text-native vector (`nvec`) are written into the same
Elasticsearch documents the lexical store writes (`indexers/lexical/
elasticsearch_store.py`), as float32 binary doc values. So the vectors share
everything the lexical store does per version: the `live` generation range (a
deleted or superseded product is never found), the `kw.*` / `num.*` filter
fields, bulk retries, the one refresh per commit, rollback repair, and the
release of what pruned versions held. This store's folder names no server: it
opens the version's lexical store to reach the documents.

Exact, not approximate. Elasticsearch 7.10.2, the newest version whose server
modules Maven Central serves (`org.codelibs:elasticsearch-cluster-runner`),
has no HNSW kNN (Elasticsearch 8.0 and later) and no `dense_vector` field in
its Apache-2.0 modules (that field is x-pack's). A search is a `script_score`
query: the version filter and the user's filters select the documents, and a
painless script computes each one's inner product with the query (float32
vectors, summed in double): brute force over the matching documents of every
shard, the same order as FAISS's exact search, at a cost linear in the
catalog. Fine for tests and moderate catalogs; HNSW on a cluster is
`--vectors opensearch` (`opensearch_store.py`: this store with a `knn` clause
instead of the script, `vector_query` / `inner_product`).

Approximate, with `--vector-index ivf`: an inverted-file index built from what Elasticsearch 7.10 has. The
first write clusters the rows' vectors (FAISS k-means, `ivf_lists`: about 4 sqrt(rows) lists, at least 39
rows a list) and keeps the centroids in the folder (`centroids-SEG.npy`, carried to later versions); every
document also carries its nearest centroid's number (`vec_list` / `nvec_list`), and a search first picks the
query's `nprobe` nearest centroids (in ShopLens: lists x dimensions multiplications) and scores only those
lists' documents with the same script, so a query reads a few percent of the catalog, not all of it. When
the lists hold fewer than `limit` matching documents (a narrow filter), the search widens (4x the lists, up
to all of them, which is the exact search). Compaction clusters again from the live rows; updates assign
their rows to the existing centroids.

What stays in the index directory: every row's raw text and image embeddings as
segment files (`text-SEG.npy`, `image-SEG.npy`, `hasimg-SEG.npy`, FAISS's
format), memory-mapped; only the rows asked for are read (the reranker's
similarities of its candidates) and compaction rewrites from them. Nothing of
them is loaded at open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import ConfigError, IndexCorruptError
from shoplens.indexers.lexical.cluster import ELASTICSEARCH
from shoplens.indexers.lexical.elasticsearch_store import TERMS_MAX, ElasticsearchStore, filter_clause, server_major
from shoplens.indexers.storage import atomic_write_json, link_or_copy, read_json
from shoplens.indexers.vector.base import VectorStore, fuse_vectors, ivf_lists, normalize_rows
from shoplens.indexers.vector.faiss_store import DEFAULTS

FIELDS = {"joint": "vec", "native": "nvec"}  # a store's channel -> its documents' field
IVF = "ivf"  # --vector-index ivf: the documents of the query's nearest lists, scored by the script
NPROBE = 32  # lists an IVF search reads (of about 4 sqrt(rows))
HNSW = "hnsw"  # Elasticsearch 8+: the documents' vectors are dense_vector fields searched by kNN
NUM_CANDIDATES = 100  # candidates per shard an HNSW search considers (at least the hits asked for)
LIST_SUFFIX = "_list"  # a document's IVF list number: field vec_list for vec (lexical store's mapping)
LEXICAL_COMPONENT = "lexical"  # the sibling folder of a version whose documents carry the vectors
# The inner product of the document's vector (big-endian float32 bytes) with params.q (unit length), plus 1:
# script_score needs scores >= 0 and both vectors have length 1 (or 0), so the sum lies in [0, 2].
SCRIPT = """
def values = doc[params.f];
if (values.size() == 0) { return 0.0; }
BytesRef b = values.value; byte[] a = b.bytes; int j = b.offset; double s = 0; List q = params.q;
int n = q.size();
for (int i = 0; i < n; ++i) {
  int b0 = a[j]; int b1 = a[j + 1]; int b2 = a[j + 2]; int b3 = a[j + 3];
  s += Float.intBitsToFloat((b0 << 24) | ((b1 & 255) << 16) | ((b2 & 255) << 8) | (b3 & 255)) * (double) q.get(i);
  j += 4;
}
return s + 1.0;
"""


class ElasticsearchVectorStore(VectorStore):
    """Fused product vectors searched inside Elasticsearch; raw embeddings memory-mapped from the folder."""

    name = "elasticsearch"
    kind = "exact"  # what --vector-index this store runs (auto resolves to it)
    lexical_class: type[ElasticsearchStore] = ElasticsearchStore  # the store whose documents carry the vectors
    physical_deletes = True  # the version's view (one range filter) holds only its live rows
    remote = True
    zero_queries = True  # an all-zero query vector still ranks rows (all score 0)

    def __init__(self, state: dict[str, Any], directory: Path, documents: ElasticsearchStore):
        self.state = state
        self.documents = documents
        self.field = state["field"]
        self.weight = float(state["params"]["image_weight"])
        self._starts, self._segments = _map_segments(directory, state)
        self.centroids = _read_centroids(directory, state)  # None: exact search

    # -- writing -----------------------------------------------------------------

    @classmethod
    def write(cls, target, parent, text, image, has_image, segment_name, config):
        """The parent's segments (hard links) plus one for the new rows; their vectors reach Elasticsearch
        through the lexical store's write (`lexical_fields`)."""
        target.mkdir(parents=True, exist_ok=True)
        text, image = normalize_rows(text), normalize_rows(image)
        if parent is not None:
            state = read_json(parent / "state.json")
            for segment in state["segments"]:
                for prefix in ("text", "image", "hasimg"):
                    name = f"{prefix}-{segment['name']}.npy"
                    link_or_copy(parent / name, target / name)
            if text.shape[0] and text.shape[1] != state["dim"]:
                raise IndexCorruptError(f"new vectors have dimension {text.shape[1]}, the store has {state['dim']}")
        else:
            config = config or {}
            params = cls.search_params(config)
            check_kind(cls, config.get("kind"), HNSW if params.get("kind") == HNSW else None)
            weight = config.get("image_weight")
            state = {"backend": cls.name, "dim": int(text.shape[1]), "segments": [], "rows": 0,
                     "field": config.get("field") or FIELDS[config.get("channel", "joint")],
                     "params": {"image_weight": float(DEFAULTS["image_weight"] if weight is None else weight),
                                **params}}
        if len(text):
            np.save(target / f"text-{segment_name}.npy", text.astype(np.float32))
            np.save(target / f"image-{segment_name}.npy", image.astype(np.float32))
            np.save(target / f"hasimg-{segment_name}.npy", np.asarray(has_image, dtype=bool))
            state["segments"].append({"name": segment_name, "rows": int(len(text))})
            state["rows"] += int(len(text))
        centroids = _ivf_centroids(target, parent, state, text, image, has_image, segment_name)
        atomic_write_json(target / "state.json", state)
        # the new rows' documents are written next (`lexical_fields`): they are assigned to these lists
        return state if centroids is None else {**state, CENTROIDS_KEY: centroids}

    @classmethod
    def search_params(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The backend's own search settings a new store records: on Elasticsearch 8+ HNSW (dense_vector, kNN
        with `num_candidates`); on 7.10 none for the exact script, or the lists to read for IVF, whose
        centroids the first write makes."""
        if _dense_server(cls, config):
            return {"kind": HNSW, "num_candidates": int(config.get("hnsw_ef_search") or NUM_CANDIDATES)}
        if config.get("kind") != IVF:
            return {}
        return {"kind": IVF, "nprobe": int(config.get("nprobe") or NPROBE)}

    @classmethod
    def server_kind(cls, config: dict[str, Any] | None) -> str | None:
        """HNSW when the configured server is Elasticsearch 8+ (None when it is 7.x, OpenSearch or unreachable:
        the checks that follow say so): what `check_kind` weighs before any work."""
        try:
            return HNSW if _dense_server(cls, config or {}) else None
        except Exception:  # noqa: BLE001 - unset or unreachable: check_backend reports it in one line
            return None

    @classmethod
    def lexical_fields(cls, state, text, image, has_image):
        weight = float(state["params"]["image_weight"])
        fused = fuse_vectors(normalize_rows(text), normalize_rows(image), np.asarray(has_image, dtype=bool), weight)
        fields = {state["field"]: fused}
        if state.get(CENTROIDS_KEY) is not None:  # an IVF store's write: each row's list goes with it
            fields[state["field"] + LIST_SUFFIX] = nearest_lists(fused, state[CENTROIDS_KEY], 1)[:, 0]
        return fields

    # -- reading -----------------------------------------------------------------

    @classmethod
    def read_rows(cls, directory):
        state = read_json(directory / "state.json")
        _, segments = _map_segments(directory, state)
        if not segments:
            empty = np.zeros((0, int(state["dim"])), np.float32)
            return empty, empty.copy(), np.zeros(0, bool)
        return tuple(np.concatenate([segment[part] for segment in segments]) for part in range(3))

    @classmethod
    def image_flags(cls, directory):
        return cls.read_rows(directory)[2]

    @classmethod
    def open(cls, directory, device="auto", previous=None):
        state = read_json(directory / "state.json")
        lexical = directory.parent / LEXICAL_COMPONENT
        try:
            backend = read_json(lexical / "state.json").get("backend")
        except (OSError, ValueError, IndexCorruptError):
            backend = None
        documents = cls.lexical_class
        if backend != documents.name:
            raise IndexCorruptError(f"{directory} keeps its vectors in {documents.cluster.label} documents, but the "
                                    f"version's lexical store is not on {documents.cluster.label}; rebuild with "
                                    f"--lexical {documents.name}")
        return cls(state, directory, documents.open(lexical))

    @classmethod
    def summarize(cls, state):
        return {"backend": cls.name, "kind": cls.kind, "dim": state["dim"], "field": state["field"],
                **state["params"]}

    def describe(self):
        return {**self.summarize(self.state), "device": self.name, "rows": self.num_rows,
                "url": self.documents.url, "index": self.documents.index_name,
                "generation": self.documents.generation}

    def vectors(self, docnos, parts=None):  # every part: the fused vectors are computed from the others
        docnos = np.asarray(docnos, dtype=np.int64)
        text, image, has_image = (self._gather(part, docnos) for part in range(3))
        return {"text": text, "image": image, "has_image": has_image,
                "fused": fuse_vectors(text, image, has_image, self.weight)}

    def _gather(self, part: int, docnos: np.ndarray) -> np.ndarray:
        if len(docnos) and (docnos.min() < 0 or docnos.max() >= self.num_rows):
            raise IndexCorruptError(f"row {int(docnos.max())} is beyond the vector store's {self.num_rows} rows")
        shape = (len(docnos),) if part == 2 else (len(docnos), self.dim)
        out = np.zeros(shape, bool if part == 2 else np.float32)
        segment_of = np.searchsorted(self._starts, docnos, side="right") - 1
        for segment in np.unique(segment_of):
            rows = segment_of == segment
            out[rows] = self._segments[segment][part][docnos[rows] - self._starts[segment]]
        return out

    # -- searching ---------------------------------------------------------------

    def search(self, query, limit, allowed=None, filters=None):
        """Top `limit` rows of this version by inner product, among the rows `filters` (run inside
        Elasticsearch, as the lexical store does) or else `allowed` select; exactly `limit` hits asked for."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise IndexCorruptError(f"query vector has dimension {query.shape[0]}, the index {self.dim}")
        limit = int(min(limit, self.num_rows))
        if limit <= 0:
            return _empty()
        if filters is not None:
            return self._top(query, limit, [filter_clause(f) for f in filters])
        if allowed is None:
            return self._top(query, limit, [])
        restrict = np.flatnonzero(np.asarray(allowed, dtype=bool)[: self.num_rows])
        if len(restrict) == 0:
            return _empty()
        if len(restrict) <= TERMS_MAX:
            return self._top(query, limit, [{"terms": {"docno": restrict.tolist()}}])
        return self._masked(query, limit, np.asarray(allowed, dtype=bool), len(restrict))

    def _top(self, query: np.ndarray, limit: int, clauses: list[dict[str, Any]]):
        norm = float(np.linalg.norm(query))
        if norm == 0 and not self.zero_queries:
            return _empty()
        unit = query / norm if norm > 0 else query
        probe = None if self.centroids is None else min(len(self.centroids), int(self.state["params"]["nprobe"]))
        while True:
            lists = [] if probe is None else \
                [{"terms": {self.field + LIST_SUFFIX: nearest_lists(unit[None, :], self.centroids, probe)[0].tolist()}}]
            hits = self._hits(unit, limit, [self.documents.view, *clauses, *lists])
            if probe is None or len(hits) >= limit or probe >= len(self.centroids):
                break
            probe = min(len(self.centroids), probe * 4)  # a narrow filter left too few in these lists: widen
        docnos = np.array([int(hit["fields"]["docno"][0]) for hit in hits], dtype=np.int64)
        scores = np.array([self.inner_product(hit["_score"]) * norm for hit in hits], dtype=np.float32)
        return docnos, scores

    def _hits(self, unit: np.ndarray, limit: int, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.state["params"].get("kind") == HNSW:  # Elasticsearch 8+: the kNN section, filtered in the graph
            candidates = max(int(limit), int(self.state["params"].get("num_candidates", NUM_CANDIDATES)))
            ranking = {"knn": {"field": self.field, "query_vector": unit.tolist(), "k": int(limit),
                               "num_candidates": candidates, "filter": {"bool": {"filter": filters}}}}
        else:
            ranking = {"query": self.vector_query(unit, limit, filters)}
        body = {**ranking, "size": int(limit), "_source": False, "docvalue_fields": ["docno"], "track_total_hits": False}
        return self.documents.search_body(body)["hits"]["hits"]

    def vector_query(self, unit: np.ndarray, limit: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
        """The query that ranks the documents `filters` select by inner product with `unit` (length 1)."""
        return {"script_score": {"query": {"bool": {"filter": filters}},
                                 "script": {"source": SCRIPT, "params": {"f": self.field, "q": unit.tolist()}}}}

    def inner_product(self, score: float) -> float:
        """A hit's score as the inner product of the unit vectors: the script adds 1; Elasticsearch's
        max_inner_product gives 1 + p for p >= 0 and 1 / (1 - p) below."""
        if self.state["params"].get("kind") == HNSW and score < 1.0:
            return 1.0 - 1.0 / score
        return score - 1.0

    def _masked(self, query: np.ndarray, limit: int, allowed: np.ndarray, allowed_rows: int):
        """A large mask without filters (not what the engine sends): over-fetch, keep the allowed, widen."""
        fetch = int(min(self.num_rows, max(2 * limit, limit * self.num_rows / allowed_rows * 1.5 + 10)))
        while True:
            docnos, scores = self._top(query, fetch, [])
            inside = docnos < len(allowed)
            keep = np.zeros(len(docnos), dtype=bool)
            keep[inside] = allowed[docnos[inside]]
            if keep.sum() >= limit or len(docnos) < fetch or fetch >= self.num_rows:
                return docnos[keep][:limit], scores[keep][:limit]
            fetch = min(self.num_rows, fetch * 4)

    def check_documents(self, live: np.ndarray, sample: int = 20) -> list[str]:
        """Problems between the cluster's documents and this folder: live rows without a vector, and (on a
        sample) a document's vector that differs from the stored embeddings'."""
        problems, label = [], self.documents.cluster.label
        lacking = {"bool": {"filter": [self.documents.view], "must_not": [{"exists": {"field": self.field}}]}}
        missing = self.documents.call("count", index=self.documents.index_name, body={"query": lacking})["count"]
        if missing:
            problems.append(f"{missing} live {label} document(s) lack their `{self.field}` vector; rebuild")
        rows = np.asarray(live, dtype=np.int64)[:: max(1, len(live) // sample)][:sample]
        if not len(rows):
            return problems
        query = {"bool": {"filter": [self.documents.view, {"terms": {"docno": rows.tolist()}}]}}
        response = self.documents.search_body({"query": query, "size": len(rows), "_source": ["docno", self.field]})
        expected = self.vectors(rows)["fused"]
        for hit in response["hits"]["hits"]:
            row = int(np.searchsorted(rows, hit["_source"]["docno"]))
            stored = self.documents.decode_vector(hit["_source"].get(self.field) or "")
            if stored.shape != expected[row].shape or not np.allclose(stored, expected[row], atol=1e-6):
                problems.append(f"row {rows[row]}: its {label} `{self.field}` vector differs from the stored "
                                "embeddings; rebuild")
                break
        return problems


def _dense_server(store: type[ElasticsearchVectorStore], config: dict[str, Any]) -> bool:
    """Whether the Elasticsearch store's server is 8 or later (dense_vector HNSW); OpenSearch stores say no."""
    documents = store.lexical_class
    if documents.cluster is not ELASTICSEARCH:
        return False
    url = documents.cluster.url(config)
    return server_major(documents.cluster.client(url)) >= 8


def check_kind(store: type[ElasticsearchVectorStore], kind: str | None, runs_kind: str | None = None) -> None:
    """Refuse a --vector-index the cluster's store cannot run (one line saying what it runs instead);
    `runs_kind`: what the new store's server runs (HNSW on Elasticsearch 8+, checked by `search_params`)."""
    if runs_kind == HNSW:
        if kind in (None, "auto", HNSW):
            return
        raise ConfigError(f"--vectors {store.name} on Elasticsearch 8+ runs HNSW (dense_vector kNN), not "
                          f"--vector-index {kind}; use --vector-index hnsw or auto")
    if kind in (None, "auto", store.kind) or (store.kind == "exact" and kind in ("flat", IVF)):
        return
    runs = "exact kNN or IVF on Elasticsearch 7.10 (a painless script; HNSW needs Elasticsearch 8+, make " \
        "es8-up)" if store.kind == "exact" else f"{store.kind.upper()} only (the k-NN plugin's Lucene engine)"
    other = "an Elasticsearch 8 cluster, or --lexical opensearch --vectors opensearch, for HNSW on a cluster" \
        if store.kind == "exact" else \
        "--vectors faiss or --vectors elasticsearch for exact kNN"
    raise ConfigError(f"--vectors {store.name} runs {runs}, not --vector-index {kind}; use --vector-index "
                      f"{'flat, ivf' if store.kind == 'exact' else store.kind} or auto, or {other}")


CENTROIDS_KEY = "_centroids"  # in the state a write returns (never saved): the IVF centroids its new rows use


def nearest_lists(vectors: np.ndarray, centroids: np.ndarray, count: int) -> np.ndarray:
    """Each vector's `count` nearest centroids by inner product (rows x count list numbers, nearest first)."""
    scores = np.asarray(vectors, dtype=np.float32) @ centroids.T
    count = min(count, centroids.shape[0])
    top = np.argpartition(-scores, count - 1, axis=1)[:, :count]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64)


def _ivf_centroids(target: Path, parent: Path | None, state: dict[str, Any], text, image, has_image,
                   segment_name: str) -> np.ndarray | None:
    """An IVF store's centroids: the parent's (linked into `target`), or on a first write k-means of these rows'
    fused vectors (saved in `target`, named in the state). None for an exact store."""
    params = state["params"]
    if params.get("kind") != IVF:
        return None
    if parent is not None:
        link_or_copy(parent / params["centroids"], target / params["centroids"])
        return np.load(target / params["centroids"])
    from shoplens.indexers.vector.faiss_store import _faiss

    fused = np.ascontiguousarray(fuse_vectors(text, image, np.asarray(has_image, dtype=bool),
                                              float(params["image_weight"])), dtype=np.float32)
    if len(fused):
        lists = ivf_lists(len(fused))
        kmeans = _faiss().Kmeans(fused.shape[1], lists, niter=20, seed=1234, spherical=True, verbose=False,
                                 min_points_per_centroid=1)  # one list for under 78 rows: no FAISS warning on stderr
        kmeans.train(fused)
        centroids = np.asarray(kmeans.centroids, dtype=np.float32)
    else:  # nothing live (a compaction of an emptied index): one list, which the rows of later writes join
        lists, centroids = 1, np.zeros((1, int(state["dim"])), dtype=np.float32)
    params.update({"nlist": lists, "centroids": f"centroids-{segment_name}.npy"})
    np.save(target / params["centroids"], centroids)
    return centroids


def _read_centroids(directory: Path, state: dict[str, Any]) -> np.ndarray | None:
    name = state["params"].get("centroids")
    if state["params"].get("kind") != IVF or not name:
        return None
    try:
        return np.load(directory / name)
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"IVF centroids {name} of {directory} are unreadable ({exc}); "
                                "run `shoplens check`") from None


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.float32)


def _map_segments(directory: Path, state: dict[str, Any]) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Each segment's (text, image, has_image), memory-mapped, and the first row of each."""
    segments, starts, row = [], [], 0
    for segment in state["segments"]:
        name = segment["name"]
        try:
            parts = (np.load(directory / f"text-{name}.npy", mmap_mode="r"),
                     np.load(directory / f"image-{name}.npy", mmap_mode="r"),
                     np.load(directory / f"hasimg-{name}.npy"))
        except OSError as exc:
            raise IndexCorruptError(f"vector segment {name} of {directory} is unreadable ({exc}); "
                                    "run `shoplens check`") from None
        segments.append(parts)
        starts.append(row)
        row += len(parts[0])
    if row != int(state["rows"]):
        raise IndexCorruptError(f"vector segments of {directory} hold {row} rows, state says {state['rows']}; "
                                "run `shoplens check`")
    return np.asarray(starts, dtype=np.int64), segments
