"""BM25 on an Elasticsearch cluster, for shops that outgrow one machine.

Same behaviour as the tantivy store: the same fields and boosts, the same
analysis (split on non-alphanumerics, drop tokens of 40+ characters,
lower-casing, ASCII folding, English stop words, Snowball English stemmer),
query text sent as a `multi_match` query (never parsed as query syntax).

Versions without id lists. ShopLens keeps one Elasticsearch index per index
generation (a full build or a compaction starts a new one). Each write of a
version gets the next generation number G of that Elasticsearch index, and
every document carries the generations in which it is live as an
`integer_range` field (`live`, several ranges when history branched):

- a product added at G gets the range [G, open);
- a product deleted at G has its open range closed at G;
- so the view of generation G is one filter, `live` contains G, and a search
  asks Elasticsearch for exactly `limit` hits of that view.

A write never changes what an older generation sees, and the version's
`lexical/state.json` (which names the generation) is only published by the
index's commit after the write's single refresh: a reader sees the old version
or the new one, never half. A write that fails leaves its generation
unreferenced; the next write starts from its own parent's generation and
repairs the ranges of every document whose liveness differs between the two
(rollback works the same way: documents of abandoned generations are closed,
documents they had deleted are reopened).

Filters (`brand=Nike`, `price<=3000`, any attribute) run inside Elasticsearch:
every document carries each product-store column as lower-cased keywords
(`kw.*`) and as a number (`num.*`), and `FieldFilter`s become term / terms /
range clauses beside the version filter, before the top-k.

Scores: Elasticsearch 7's BM25 (Lucene's, with the (k1 + 1) factor kept, as
tantivy keeps it) counts documents of every generation held in the shard
(deleted or abandoned rows included, until a compaction rebuilds the index), and
Lucene keeps document lengths in one lossy byte as tantivy does, with its own
table; with `dfs` (the default) the statistics are global, so on a fresh index
the ranking equals tantivy's and the scores agree closely (the tests allow 3 %).

Per-field scores for the reranker (`field_scores`, `scores_of`): the query's
terms analyzed in process (the same chain, distinct terms, as tantivy) and sent
as `term` queries per field, restricted to the candidates, all fields in one
`_msearch`.

Vectors (optional, `indexers/vector/elasticsearch_store.py`): a document may
carry its product's vectors as float32 binary doc values (`vec`, `nvec`). The server is `SHOPLENS_ES_URL` (or the
`url` option; several comma-separated addresses are allowed).

OpenSearch (`opensearch_store.py`) is this store with another client (`cluster.py`) and the vectors as
HNSW `knn_vector` fields: every method here is written for both servers (`cluster` names which one).
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import time
import uuid
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from shoplens.common.errors import ConfigError, IndexCorruptError, ShopLensError
from shoplens.indexers.lexical.analysis import build_analyzer
from shoplens.indexers.lexical.base import FIELD_BOOSTS, TEXT_FIELDS, FieldFilter, LexicalStore, idf_mode
from shoplens.indexers.lexical.row_bm25 import shared_idf_factors
from shoplens.indexers.lexical.cluster import ELASTICSEARCH, RETRY_STATUSES, Cluster, shown_url
from shoplens.indexers.storage import atomic_write_json, read_json

ANALYZER = "shoplens_en"
VECTOR_FIELDS = ("vec", "nvec")  # the joint and the text-native vector, when vectors live on the cluster
INDEX_SETTINGS = {
    "analysis": {
        "tokenizer": {"shoplens_simple": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
        "filter": {
            "shoplens_long": {"type": "length", "max": 39},
            "shoplens_stop": {"type": "stop", "stopwords": "_english_"},
            "shoplens_stemmer": {"type": "stemmer", "language": "porter2"},
        },
        "analyzer": {
            ANALYZER: {
                "type": "custom",
                "tokenizer": "shoplens_simple",
                "filter": ["shoplens_long", "lowercase", "asciifolding", "shoplens_stop", "shoplens_stemmer"],
            }
        },
    },
    "mapping": {"total_fields": {"limit": 20000}},
}
INDEX_MAPPINGS = {
    "dynamic": "strict",
    "dynamic_templates": [
        {"keywords": {"path_match": "kw.*", "mapping": {"type": "keyword", "ignore_above": 2048}}},
        {"numbers": {"path_match": "num.*", "mapping": {"type": "double"}}},
    ],
    "properties": {
        "docno": {"type": "long"},
        "live": {"type": "integer_range"},
        "kw": {"type": "object", "dynamic": True},
        "num": {"type": "object", "dynamic": True},
        **{field: {"type": "binary", "doc_values": True} for field in VECTOR_FIELDS},
        **{field + "_list": {"type": "integer"} for field in VECTOR_FIELDS},  # IVF list (vector store, --vector-index ivf)
        **{field: {"type": "text", "analyzer": ANALYZER} for field in TEXT_FIELDS},
    },
}
TERMS_MAX = 4096  # a mask this small (the reranker's candidates) is sent as a docno filter
BULK_CHUNK = 500
RETRIES = 8  # backoff 0.5 s doubling to 8 s: about a minute for a node to come back or a replica to take over
OPEN = 2**31 - 1  # an open range's end (integer_range's maximum)


class ElasticsearchUnavailableError(ShopLensError):
    """Elasticsearch did not answer or refused a request."""


def es_url(config: dict[str, Any] | None = None) -> str:
    return ELASTICSEARCH.url(config)


MAX_SHARDS = 1024  # Elasticsearch's own limit per index
MAX_REPLICAS = 64


def index_layout(config: dict[str, Any] | None = None) -> tuple[int, int]:
    """(shards, replicas) of a new Elasticsearch index from the `shards` / `replicas` options (1 and 1)."""
    config = config or {}
    layout = []
    for name, low, high, default in (("shards", 1, MAX_SHARDS, 1), ("replicas", 0, MAX_REPLICAS, 1)):
        value = config.get(name, default)
        whole = value if isinstance(value, int) and not isinstance(value, bool) else \
            int(value) if isinstance(value, str) and value.strip().isdigit() else None
        if whole is None or not low <= whole <= high:
            raise ConfigError(f"--es-{name} must be a whole number from {low} to {high}, got {value!r}")
        layout.append(whole)
    return layout[0], layout[1]


def _library(client):
    """The client library `client` belongs to (elasticsearch or opensearchpy): its helpers and errors."""
    name = type(client).__module__.split(".")[0]
    importlib.import_module(f"{name}.helpers")  # a submodule: not loaded by the package itself
    return importlib.import_module(name)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _client(url: str, check: bool = True, cluster: Cluster = ELASTICSEARCH):
    """A client for `url`; with `check`, fail now with a clear message if the server does not answer."""
    client = cluster.client(url)
    if check:
        try:
            client.info()
        except Exception as exc:  # the transport raises several types: refused, timeout, TLS, auth, product check
            raise ConfigError(f"cannot reach {cluster.label} at {shown_url(url)} ({_reason(exc)}); "
                              f"check {cluster.env} and that the server is up") from None
    return client


def server_major(client) -> int:
    """The major version of the server `client` talks to (7 for Elasticsearch 7.10, 8 for 8.x; OpenSearch: 2)."""
    number = str((client.info().get("version") or {}).get("number") or "0")
    return int(re.match(r"\d*", number).group() or 0)


DENSE_VECTORS = "dense_vector"  # a lexical state's "vectors" on Elasticsearch 8+: vec / nvec as HNSW fields
# dense_vector as the documents' vec / nvec on Elasticsearch 8+: HNSW graphs ranked by inner product (the
# vectors have length 1, or 0 for a row without text; max_inner_product takes both, cosine takes no zeros)
DENSE_MAPPING = {"type": "dense_vector", "index": True, "similarity": "max_inner_product",
                 "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100}}


def field_key(column: str) -> str:
    """A product-store column as an Elasticsearch field name (dots and odd characters escaped)."""
    return re.sub(r"[^0-9A-Za-z_-]", lambda m: f"~{ord(m.group()):x}~", column)


def filter_clause(flt: FieldFilter) -> dict[str, Any]:
    """One filter as an Elasticsearch query clause (the same rows as `engine.filters.filter_mask`)."""
    if flt.op in ("<", "<=", ">", ">="):
        bound = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[flt.op]
        return {"range": {f"num.{field_key(flt.column)}": {bound: float(flt.values[0])}}}
    if flt.numeric:
        clause = {"terms": {f"num.{field_key(flt.column)}": [float(v) for v in flt.values]}}
    else:
        clause = {"terms": {f"kw.{field_key(flt.column)}": list(flt.values)}}
    return {"bool": {"must_not": [clause]}} if flt.op == "!=" else clause


def _source(docno: int, fields: dict[str, Any], generation: int, encode=None) -> dict[str, Any]:
    source: dict[str, Any] = {"docno": int(docno), "live": [{"gte": generation, "lte": OPEN}]}
    source.update({field: fields.get(field) or "" for field in TEXT_FIELDS})
    keywords, numbers = {}, {}
    for column, (words, number) in (fields.get("filters") or {}).items():
        keywords[field_key(column)] = words
        if number is not None:
            numbers[field_key(column)] = number
    source["kw"], source["num"] = keywords, numbers
    for name, vector in (fields.get("vectors") or {}).items():
        if np.ndim(vector) == 0:  # a number beside the vectors (an IVF store's list of the row)
            source[name] = int(vector)
            continue
        value = (encode or encode_vector)(vector)
        if value is not None:  # a vector the server cannot hold (OpenSearch: all zeros) is left out
            source[name] = value
    return source


def dense_value(vector: np.ndarray) -> list[float]:
    """A vector as a dense_vector field's value (Elasticsearch 8+)."""
    return np.asarray(vector, dtype=np.float32).tolist()


def map_vector_fields(client, index: str, adds: Iterable[tuple[int, dict[str, Any]]],
                      mapping: Callable[[int], dict[str, Any]]):
    """Map the vector fields the first document carries, if the index lacks them, as `mapping(dimension)` says
    (OpenSearch's knn_vector, Elasticsearch 8's dense_vector); the documents pass through unchanged."""
    adds = iter(adds)
    first = next(adds, None)
    if first is None:
        return
    vectors = {name: vector for name, vector in (first[1].get("vectors") or {}).items() if np.ndim(vector) == 1}
    if vectors:
        mapped = client.indices.get_mapping(index=index)[index]["mappings"].get("properties", {})
        missing = {name: mapping(int(len(vector))) for name, vector in vectors.items() if name not in mapped}
        if missing:
            client.indices.put_mapping(index=index, body={"properties": missing})
    yield first
    yield from adds


def encode_vector(vector: np.ndarray) -> str:
    """A vector as a binary field's value: float32, big-endian, base64 (what the painless scorer decodes)."""
    return base64.b64encode(np.asarray(vector, dtype=">f4").tobytes()).decode("ascii")


def decode_vector(value: str | list[float]) -> np.ndarray:
    """A document's vector: a binary field's base64 (Elasticsearch 7) or a dense_vector's numbers (8+)."""
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float32)
    return np.frombuffer(base64.b64decode(value), dtype=">f4").astype(np.float32)


class ElasticsearchStore(LexicalStore):
    name = "elasticsearch"
    cluster: Cluster = ELASTICSEARCH
    physical_deletes = True  # a version's view (one range filter) holds only its live rows

    def __init__(self, state: dict[str, Any], url: str, idf: str = "field"):
        self.state = state
        self.shared_idf = idf == "shared"  # per-clause boosts from the terms' document frequencies (see _match)
        self._doc_freqs: dict[str, list[int]] = {}  # term -> its document frequency per field, in this version
        self.url = url
        self.client = _client(url, cluster=self.cluster)
        self.index_name = state["index"]
        self.generation = int(state["generation"])
        self.dfs = bool(state.get("dfs", True))
        self._view = {"term": {"live": self.generation}}
        try:
            exists = self.client.indices.exists(index=self.index_name)
        except Exception as exc:
            raise self._unavailable(exc) from None
        if not exists:
            raise IndexCorruptError(f"{self.cluster.label} index {self.index_name} is missing on {shown_url(url)}; "
                                    "rebuild the index")
        self._count = self._call(self.client.count, index=self.index_name, body={"query": self._view})["count"]

    # ---- writing -------------------------------------------------------------------------------

    @classmethod
    def manifest_config(cls, config):
        return dict(config)  # the server's address is part of where the index lives

    @classmethod
    def check_backend(cls, config: dict[str, Any] | None = None) -> None:
        index_layout(config)
        _client(cls.cluster.url(config), cluster=cls.cluster)

    @classmethod
    def release(cls, removed, kept):
        """Delete the Elasticsearch indices only `removed` versions use, and in the indices that kept
        versions still use, the documents live in none of the kept versions' generations (rows deleted
        before the oldest kept version, and rows of abandoned or failed writes)."""
        kept_states = [_read_state(directory, cls.name) for directory in kept]
        generations: dict[str, set[int]] = {}
        for state in filter(None, kept_states):
            generations.setdefault(state["index"], set()).add(int(state["generation"]))
        doomed = {(state["index"], state["url"]) for state in (_read_state(d, cls.name) for d in removed) if state}
        for index, url in sorted(doomed):
            url = os.environ.get(cls.cluster.env) or url
            try:
                client = _client(url, check=False, cluster=cls.cluster)
                if index not in generations:
                    client.indices.delete(index=index, ignore_unavailable=True)
                    continue
                views = [{"term": {"live": generation}} for generation in sorted(generations[index])]
                _delete_matching(client, index, {"bool": {"must_not": views}})
            except Exception as exc:
                raise ElasticsearchUnavailableError(
                    f"cannot free {cls.cluster.label} index {index} on {shown_url(url)} ({_reason(exc)}); "
                    "the versions that use it are kept until the next prune") from None

    @classmethod
    def write(cls, target, parent, adds, deletes, config):
        config = config or {}
        target.mkdir(parents=True, exist_ok=True)
        if parent is not None:
            state = dict(read_json(parent / "state.json"))
            url = config.get("url") or os.environ.get(cls.cluster.env) or state["url"]
        else:
            url = cls.cluster.url(config)
            prefix = config.get("index_prefix", "shoplens")
            shards, replicas = index_layout(config)
            state = {"backend": cls.name, "url": url, "index": f"{prefix}-{uuid.uuid4().hex[:12]}",
                     "shards": shards, "replicas": replicas, "dfs": bool(config.get("dfs", True))}
        client = _client(url, cluster=cls.cluster)
        try:
            if parent is None:
                cls._create_index(client, state)
            generation = _next_generation(client, state["index"])
            if parent is not None:
                _repair_branch(client, state["index"], int(state["generation"]), generation)
                _close(client, state["index"], int(state["generation"]), generation, deletes)
            adds = cls.prepare_adds(client, state["index"], adds)
            encode = cls.encode_vector
            if state.get("vectors") == DENSE_VECTORS:
                adds = map_vector_fields(client, state["index"], adds, lambda dims: {**DENSE_MAPPING, "dims": dims})
                encode = dense_value
            _bulk(client, ({"_op_type": "index", "_index": state["index"], "_id": f"{docno}.{generation}",
                            "_source": _source(docno, fields, generation, encode)}
                           for docno, fields in adds))
            client.indices.refresh(index=state["index"])  # once per commit, before the version is published
            documents = _retrying(client, lambda: client.count(
                index=state["index"], body={"query": {"term": {"live": generation}}}))["count"]
        except BaseException as exc:
            if parent is None:  # a new index no version names: nothing else would ever delete it
                _drop_quietly(client, state["index"])
            if isinstance(exc, ShopLensError) or not isinstance(exc, Exception):
                raise
            raise ElasticsearchUnavailableError(
                f"{cls.cluster.label} failed during the update ({_reason(exc)}); nothing was committed and the "
                f"previous version is still served; retry when {shown_url(url)} is healthy") from None
        state.update(url=url, generation=generation, documents=int(documents))
        atomic_write_json(target / "state.json", state)
        return state

    @classmethod
    def _create_index(cls, client, state: dict[str, Any]) -> None:
        """Create the version's index; on Elasticsearch 8+ its vectors are dense_vector fields (mapped with their
        dimension by the first write that carries them), recorded in `state` as "vectors": "dense_vector"."""
        mappings = cls.index_mappings()
        if cls.cluster is ELASTICSEARCH and server_major(client) >= 8:
            state["vectors"] = DENSE_VECTORS
            mappings = {**mappings, "properties": {name: value for name, value in mappings["properties"].items()
                                                   if name not in VECTOR_FIELDS}}
        settings = {**cls.index_settings(), "number_of_shards": state["shards"], "number_of_replicas": state["replicas"]}
        _request(client.indices.create, client, index=state["index"], body={
            "settings": settings, "mappings": {**mappings, "_meta": {"generation": 0}}})

    # ---- what differs between the clusters (OpenSearchStore overrides these) -------------------

    @classmethod
    def index_settings(cls) -> dict[str, Any]:
        return INDEX_SETTINGS

    @classmethod
    def index_mappings(cls) -> dict[str, Any]:
        return INDEX_MAPPINGS

    @classmethod
    def prepare_adds(cls, client, index: str, adds: Iterable[tuple[int, dict[str, Any]]]):
        """The documents to write, after whatever the index needs first (nothing here)."""
        return adds

    @staticmethod
    def encode_vector(vector: np.ndarray) -> Any:
        """A vector as its document's field value (None: leave the field out)."""
        return encode_vector(vector)

    @staticmethod
    def decode_vector(value: Any) -> np.ndarray:
        return decode_vector(value)

    # ---- reading -------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory, config=None):
        state = read_json(directory / "state.json")
        url = (config or {}).get("url") or os.environ.get(cls.cluster.env) or state["url"]
        return cls(state, url, idf=idf_mode(config))

    def analyze(self, text: str) -> list[str]:
        response = self._call(self.client.indices.analyze, index=self.index_name,
                              body={"analyzer": ANALYZER, "text": text})
        return [token["token"] for token in response["tokens"]]

    def text_analyzer(self):
        # shoplens_en's chain run in process: reranker features analyze every candidate's title, no round trips
        return build_analyzer().analyze

    def query_terms(self, text: str) -> list[str]:
        # Elasticsearch analyzes the text itself with the fields' analyzer: no extra round trip.
        # Repeated words count once, as tantivy's distinct terms do.
        words = list(dict.fromkeys(word.lower() for word in text.split()))
        return [" ".join(words)] if words else []

    def search(self, text, limit, allowed=None, filters=None):
        terms = self.query_terms(text)
        if not terms or limit <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if filters is not None:  # the engine's filters, run inside Elasticsearch before the top-k
            return self._top(terms, limit, [filter_clause(f) for f in filters])
        if allowed is None:
            return self._top(terms, limit, [])
        allowed = np.asarray(allowed, dtype=bool)
        return self._search(terms, limit, np.flatnonzero(allowed))

    def _search(self, terms, limit, restrict):
        if restrict is None:
            return self._top(terms, limit, [])
        if len(restrict) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if len(restrict) <= TERMS_MAX:
            return self._top(terms, limit, [{"terms": {"docno": [int(d) for d in restrict]}}])
        return self._scan_masked(terms, limit, restrict)

    def _query(self, terms: list[str], clauses: list[dict[str, Any]]) -> dict[str, Any]:
        return {"bool": {"must": [self._match(terms)], "filter": [self._view, *clauses]}}

    def _match(self, terms: list[str]) -> dict[str, Any]:
        """Every field's BM25 summed, each field boosted. With shared IDF, one `term` clause per field and
        analyzed term, boosted by the field boost times the term's shared / own IDF (`row_bm25`), as tantivy's
        query is: Lucene's `cross_fields` blends differently (a field's IDF counts only documents that have the
        field, and ties are broken by adding to document frequencies), which moved scores by up to 20 %."""
        if not self.shared_idf:
            return {"multi_match": {"query": " ".join(terms), "type": "most_fields",
                                    "fields": [f"{field}^{boost}" for field, boost in FIELD_BOOSTS.items()]}}
        analyzed = list(dict.fromkeys(self.text_analyzer()(" ".join(terms))))
        if not analyzed:
            return {"match_none": {}}
        factors = shared_idf_factors(self._frequencies(analyzed), max(self._count, 1))
        return {"bool": {"should": [{"term": {field: {"value": term, "boost": float(boost * factors[row, column])}}}
                                    for row, (field, boost) in enumerate(FIELD_BOOSTS.items())
                                    for column, term in enumerate(analyzed)]}}

    def _frequencies(self, terms: list[str]) -> np.ndarray:
        """(fields, terms) documents of this version holding each term in each field: counted once per term by
        one `_msearch` of `size: 0` queries, then kept (a version's documents do not change)."""
        missing = [term for term in terms if term not in self._doc_freqs]
        if missing:
            body: list[dict[str, Any]] = []
            for term in missing:
                for field in FIELD_BOOSTS:
                    body += [{}, {"query": {"bool": {"filter": [self._view, {"term": {field: term}}]}}, "size": 0,
                                  "track_total_hits": True}]
            responses = self._call(self.client.msearch, index=self.index_name, body=body)["responses"]
            if any("error" in response for response in responses):
                raise self._unavailable(RuntimeError(str(next(r for r in responses if "error" in r)["error"])[:200]))
            counts = [int(response["hits"]["total"]["value"]) for response in responses]
            if len(self._doc_freqs) > 50_000:
                self._doc_freqs.clear()
            for at, term in enumerate(missing):
                self._doc_freqs[term] = counts[at * len(FIELD_BOOSTS):(at + 1) * len(FIELD_BOOSTS)]
        return np.array([self._doc_freqs[term] for term in terms], dtype=np.float32).T

    def _top(self, terms, limit, clauses):
        body = {"query": self._query(terms, clauses), "size": int(limit), "_source": False,
                "docvalue_fields": ["docno"], "track_total_hits": False}
        response = self.search_body(body,
                                    search_type="dfs_query_then_fetch" if self.dfs else "query_then_fetch")
        return _hits(response["hits"]["hits"])

    def _scan_masked(self, terms, limit, restrict):
        """A large mask without filters (not used by the engine): pages of hits, best first, masked here."""
        helpers = _library(self.client).helpers
        mask = np.zeros(int(restrict.max()) + 1, dtype=bool)
        mask[restrict] = True
        docnos, scores = [], []
        try:
            for hit in helpers.scan(self.client, index=self.index_name, preserve_order=True, size=1000,
                                    query={"query": self._query(terms, []), "docvalue_fields": ["docno"],
                                           "_source": False}):
                docno = int(hit["fields"]["docno"][0])
                if docno < len(mask) and mask[docno]:
                    docnos.append(docno)
                    scores.append(hit["_score"])
                    if len(docnos) >= limit:
                        break
        except Exception as exc:
            raise self._unavailable(exc) from None
        return np.asarray(docnos, dtype=np.int64), np.asarray(scores, dtype=np.float32)

    def field_scores(self, text, docnos, fields):
        """BM25 of each row within each single field (0 where the field matches no term), as tantivy's: the
        query's distinct terms analyzed in process, one `_msearch`, one sub-query per field restricted to the rows."""
        return self.candidate_scores(text, docnos, fields, whole=False)[1]

    def scores_of(self, text, docnos):
        """BM25 of each row for the whole field-boosted query (0 where it matches no term): one request."""
        return self.candidate_scores(text, docnos, (), whole=True)[0]

    def candidate_scores(self, text, docnos, fields, whole=True):
        """The whole query's BM25 of each row (with `whole`) and its BM25 within each of `fields`, all from one
        `_msearch` (zeros where nothing matches; an empty array for the whole query without `whole`)."""
        docnos = np.asarray(docnos, dtype=np.int64)
        terms = list(dict.fromkeys(self.text_analyzer()(text or "")))
        if not terms or not len(docnos):
            return np.zeros(len(docnos) if whole else 0), {field: np.zeros(len(docnos)) for field in fields}
        queries = [{"bool": {"should": [{"term": {field: term}} for term in terms]}} for field in fields]
        if whole:
            queries.insert(0, self._whole_query(text, terms))
        scores = self._row_scores(queries, docnos)
        return (scores.pop(0) if whole else np.zeros(0)), dict(zip(fields, scores))

    def _whole_query(self, text: str, terms: list[str]) -> dict[str, Any]:
        if self.shared_idf:  # the search's own query
            return self._match(self.query_terms(text))
        return {"bool": {"should": [{"term": {field: {"value": term, "boost": boost}}}
                                    for field, boost in FIELD_BOOSTS.items() for term in terms]}}

    def _row_scores(self, queries: list[dict[str, Any]], docnos: np.ndarray) -> list[np.ndarray]:
        """Each query's score of each row, from one `_msearch` per chunk of at most TERMS_MAX rows."""
        unique, inverse = np.unique(docnos, return_inverse=True)
        per_query = [np.zeros(len(unique)) for _ in queries]
        search_type = "dfs_query_then_fetch" if self.dfs else "query_then_fetch"
        for start in range(0, len(unique), TERMS_MAX):
            chunk = unique[start:start + TERMS_MAX]
            restrict = {"terms": {"docno": chunk.tolist()}}
            body: list[dict[str, Any]] = []
            for query in queries:
                body.append({})
                body.append({"query": {"bool": {"must": [query], "filter": [self._view, restrict]}},
                             "size": len(chunk), "_source": False, "docvalue_fields": ["docno"],
                             "track_total_hits": False})
            responses = self._call(self.client.msearch, index=self.index_name, body=body,
                                   search_type=search_type)["responses"]
            for scores, response in zip(per_query, responses):
                if "error" in response:
                    raise self._unavailable(RuntimeError(str(response["error"])[:200]))
                found, values = _hits(response["hits"]["hits"])
                scores[np.searchsorted(unique, found)] = values
        return [scores[inverse] for scores in per_query]

    def num_docs(self) -> int:
        return int(self._count)

    def all_docnos(self) -> np.ndarray:
        helpers = _library(self.client).helpers
        try:
            hits = helpers.scan(self.client, index=self.index_name, size=2000,
                                query={"query": self._view, "docvalue_fields": ["docno"], "_source": False})
            docnos = [int(hit["fields"]["docno"][0]) for hit in hits]
        except Exception as exc:
            raise self._unavailable(exc) from None
        return np.sort(np.asarray(docnos, dtype=np.int64))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(url=self.url, index=self.index_name, generation=self.generation,
                    shards=self.state.get("shards"), replicas=self.state.get("replicas"))
        return info

    @property
    def view(self) -> dict[str, Any]:
        """The query clause that selects this version's documents (`live` contains its generation)."""
        return self._view

    def search_body(self, body: dict[str, Any], **params):
        """One search of this store's index with a request body; a failure is one ElasticsearchUnavailableError."""
        return self._call(_request, api=self.client.search, client=self.client, index=self.index_name,
                          body=body, **params)

    def call(self, method: str, **kwargs):
        """A client method by name (`search`, `count`, ...); a failure is one ElasticsearchUnavailableError."""
        return self._call(getattr(self.client, method), **kwargs)

    def _call(self, method, **kwargs):
        try:
            return _whole(method(**kwargs))
        except Exception as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> ElasticsearchUnavailableError:
        return ElasticsearchUnavailableError(
            f"{self.cluster.label} at {shown_url(self.url)} failed ({_reason(exc)}); check that the cluster is up "
            f"(GET {self.url.split(',')[0]}/_cluster/health)")


def _read_state(directory, backend: str = "elasticsearch") -> dict[str, Any] | None:
    """A version's lexical/state.json, or None where it has none (a write that failed before it)."""
    try:
        state = read_json(directory / "state.json")
    except (OSError, ValueError, IndexCorruptError):
        return None
    return state if state.get("backend") == backend else None


def _drop_quietly(client, index: str) -> None:
    try:
        client.indices.delete(index=index, ignore_unavailable=True)
    except Exception:  # noqa: BLE001 - the write's own error is the one to report
        pass


def _request(api, client, body: dict[str, Any], **params):
    """`api` (client.search, client.indices.create) with a request body, in the form each client takes
    without a warning: the elasticsearch 7.17 client deprecates `body=` there and wants its keys as arguments."""
    if _library(client).__name__ == "elasticsearch" and "knn" not in body:
        return api(**body, **params)
    with warnings.catch_warnings():  # the 7.17 client has no `knn` argument (Elasticsearch 8's kNN section)
        warnings.simplefilter("ignore", DeprecationWarning)
        return api(body=body, **params)


class ShardFailure(RuntimeError):
    """A search or count that some shards did not answer (a node lost while it ran): its hits are partial."""


def _whole(response):
    """`response` itself when every shard answered it (and each of an `_msearch`'s); else ShardFailure. A
    search the cluster answers from some shards only is a wrong answer, never one to return."""
    if isinstance(response, dict):
        for part in [response, *response.get("responses", ())]:
            shards = part.get("_shards") or {}
            if shards.get("failed"):
                reason = str((shards.get("failures") or [{}])[0].get("reason", ""))[:200]
                raise ShardFailure(f"{shards['failed']} of {shards.get('total')} shards failed {reason}".strip())
    return response


def _retrying(client, request):
    """`request()`, a search or count of an update, retried with the bulk writes' backoff while shards fail
    or a node is lost (an update must not act on partial hits); ElasticsearchUnavailableError at the end."""
    es = _library(client)
    for attempt in range(RETRIES + 1):
        try:
            return _whole(request())
        except (ShardFailure, es.ConnectionError, es.ConnectionTimeout) as exc:
            failure = exc
        except es.TransportError as exc:
            if exc.status_code not in RETRY_STATUSES:
                raise
            failure = exc
        if attempt == RETRIES:
            raise ElasticsearchUnavailableError(f"the cluster kept failing a request after {RETRIES} retries "
                                                f"({_reason(failure)})")
        time.sleep(min(0.5 * 2**attempt, 8.0))


def _hits(hits: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    docnos = np.array([int(hit["fields"]["docno"][0]) for hit in hits], dtype=np.int64)
    scores = np.array([hit["_score"] for hit in hits], dtype=np.float32)
    return docnos, scores


# ---- generations and ranges ------------------------------------------------------------------------

def _next_generation(client, index: str) -> int:
    """Reserve the next generation number of `index` (kept in the mapping's _meta; one writer at a time)."""
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    generation = int((mapping.get("_meta") or {}).get("generation", 0)) + 1
    client.indices.put_mapping(index=index, body={"_meta": {"generation": generation}})
    return generation


def _ranges(source: dict[str, Any]) -> list[dict[str, int]]:
    live = source.get("live") or []
    return [live] if isinstance(live, dict) else list(live)


def _update(index: str, hit: dict[str, Any], ranges: list[dict[str, int]]) -> dict[str, Any]:
    return {"_op_type": "update", "_index": index, "_id": hit["_id"], "doc": {"live": ranges}}


def _close_at(ranges: list[dict[str, int]], generation: int) -> list[dict[str, int]]:
    """End every range that contains `generation` just before it."""
    closed = []
    for r in ranges:
        if r["gte"] <= generation <= r["lte"]:
            if r["gte"] < generation:
                closed.append({"gte": r["gte"], "lte": generation - 1})
        else:
            closed.append(r)
    return closed


def _repair_branch(client, index: str, parent: int, generation: int) -> None:
    """Make `generation` start from exactly the parent's view, whatever was written in between.

    Open ranges carry every document live at the last written generation forward; when that is not
    the parent (a rollback, or a failed write), documents live only in the abandoned generations are
    closed and documents they deleted are reopened.
    """
    if parent == generation - 1:
        return
    helpers = _library(client).helpers
    # a failed write may have left documents unrefreshed: make them visible to the scans (and so repairable);
    # no version's view changes, since no version names the abandoned generations
    client.indices.refresh(index=index)
    lost = {"bool": {"filter": [{"term": {"live": parent}}], "must_not": [{"term": {"live": generation}}]}}
    extra = {"bool": {"filter": [{"term": {"live": generation}}], "must_not": [{"term": {"live": parent}}]}}
    actions = []
    for hit in helpers.scan(client, index=index, query={"query": lost, "_source": ["live"]}):
        actions.append(_update(index, hit, _ranges(hit["_source"]) + [{"gte": generation, "lte": OPEN}]))
    for hit in helpers.scan(client, index=index, query={"query": extra, "_source": ["live"]}):
        actions.append(_update(index, hit, _close_at(_ranges(hit["_source"]), generation)))
    _bulk(client, actions)
    client.indices.refresh(index=index)  # the deletes that follow read these ranges


def _close(client, index: str, parent: int, generation: int, deletes: Iterable[int]) -> None:
    """Close the ranges of the parent's documents for `deletes` at `generation`."""
    deletes = [int(d) for d in deletes]
    actions = []
    for start in range(0, len(deletes), TERMS_MAX):
        chunk = deletes[start:start + TERMS_MAX]
        query = {"bool": {"filter": [{"terms": {"docno": chunk}}, {"term": {"live": parent}}]}}
        body = {"query": query, "size": len(chunk), "_source": ["live"]}
        hits = _retrying(client, lambda: _request(client.search, client, index=index, body=body))["hits"]["hits"]
        actions.extend(_update(index, hit, _close_at(_ranges(hit["_source"]), generation)) for hit in hits)
    _bulk(client, actions)


def _delete_matching(client, index: str, query: dict[str, Any]) -> None:
    """Delete the documents `query` matches: `_delete_by_query` where the cluster has it (the reindex module),
    else a scan of their ids and bulk deletes (a cluster without that module, such as the local Elasticsearch 8
    runner)."""
    try:
        client.delete_by_query(index=index, body={"query": query}, conflicts="proceed", refresh=True,
                               wait_for_completion=True)
        return
    except _library(client).TransportError as exc:
        if exc.status_code not in (400, 404, 405) or "_delete_by_query" not in str(exc):
            raise
    hits = _library(client).helpers.scan(client, index=index, query={"query": query, "_source": False},
                                         size=1000, preserve_order=False)
    _bulk(client, ({"_op_type": "delete", "_index": index, "_id": hit["_id"]} for hit in hits))
    client.indices.refresh(index=index)


def _bulk(client, actions: Iterable[dict[str, Any]]) -> None:
    """Send actions in chunks; retry what failed with 429 / node loss, with exponential backoff."""
    chunk: list[dict[str, Any]] = []
    for action in actions:
        chunk.append(action)
        if len(chunk) >= BULK_CHUNK:
            _send(client, chunk)
            chunk = []
    if chunk:
        _send(client, chunk)


def _send(client, chunk: list[dict[str, Any]]) -> None:
    es = _library(client)
    pending = chunk
    for attempt in range(RETRIES + 1):
        try:
            _, errors = es.helpers.bulk(client, pending, raise_on_error=False, raise_on_exception=True,
                                        max_retries=0, chunk_size=len(pending))
        except (es.ConnectionError, es.ConnectionTimeout) as exc:
            failure, retry = exc, pending
        except es.TransportError as exc:
            if exc.status_code not in RETRY_STATUSES:
                raise
            failure, retry = exc, pending
        else:
            failed = {}
            for item in errors:
                result = next(iter(item.values()))
                if result.get("status") not in RETRY_STATUSES:
                    raise ElasticsearchUnavailableError(
                        f"the cluster refused document {result.get('_id')}: {str(result.get('error'))[:200]}")
                failed[result["_id"]] = result
            if not failed:
                return
            retry = [action for action in pending if action["_id"] in failed]
            failure = RuntimeError(str(next(iter(failed.values())).get("error"))[:200])
        if attempt == RETRIES:
            raise ElasticsearchUnavailableError(
                f"the cluster kept refusing {len(retry)} document(s) after {RETRIES} retries ({_reason(failure)})")
        time.sleep(min(0.5 * 2**attempt, 8.0))
        pending = retry
