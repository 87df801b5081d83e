"""BM25 with Elasticsearch, for shops that outgrow one machine.

Same behaviour as the tantivy store: the same fields and boosts, an English
analyzer (lower-casing, ASCII folding, English stop words and stemmer), query
text sent as a `multi_match` query (never parsed as query syntax).

Versions: an Elasticsearch index cannot be hard-linked, so ShopLens keeps one
Elasticsearch index per ShopLens index generation and only ever adds rows to
it (document id = docno). Which rows a version sees is decided by that
version's live mask, which the engine passes with every search; a full
rebuild or compaction starts a new Elasticsearch index. A version's
`lexical/state.json` names the Elasticsearch index and how many rows it had.

The server is `SHOPLENS_ES_URL` (or the `url` option at build time).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np

from shoplens.common.errors import ConfigError, IndexCorruptError
from shoplens.indexers.lexical.base import FIELD_BOOSTS, TEXT_FIELDS, LexicalStore
from shoplens.indexers.storage import atomic_write_json, read_json

INDEX_SETTINGS = {
    "analysis": {
        "filter": {
            "shoplens_stop": {"type": "stop", "stopwords": "_english_"},
            "shoplens_stemmer": {"type": "stemmer", "language": "english"},
        },
        "analyzer": {
            "shoplens_en": {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["lowercase", "asciifolding", "shoplens_stop", "shoplens_stemmer"],
            }
        },
    }
}
INDEX_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "docno": {"type": "long"},
        **{field: {"type": "text", "analyzer": "shoplens_en"} for field in TEXT_FIELDS},
    },
}
TERMS_MAX = 10_000  # Elasticsearch's default max terms in a terms query is 65,536; stay well below


def es_url(config: dict[str, Any] | None = None) -> str:
    url = (config or {}).get("url") or os.environ.get("SHOPLENS_ES_URL")
    if not url:
        raise ConfigError("the elasticsearch backend needs a server: set SHOPLENS_ES_URL=http://host:9200")
    return url


def _client(url: str, check: bool = True):
    """A client for `url`; with `check`, fail now with a clear message if the server does not answer."""
    try:
        from elasticsearch import Elasticsearch
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("the elasticsearch backend needs `pip install elasticsearch`") from exc
    client = Elasticsearch(url, request_timeout=60)
    if check:
        try:
            client.info()
        except Exception as exc:  # the transport raises several types: refused, timeout, TLS, auth
            reason = str(exc).splitlines()[0][:200]
            raise ConfigError(f"cannot reach Elasticsearch at {url} ({type(exc).__name__}: {reason}); "
                              "check SHOPLENS_ES_URL and that the server is up") from None
    return client


class ElasticsearchStore(LexicalStore):
    name = "elasticsearch"
    physical_deletes = False  # rows stay until a rebuild; the live mask hides dead ones

    def __init__(self, state: dict[str, Any], url: str):
        self.state = state
        self.url = url
        self.client = _client(url)
        self.index_name = state["index"]
        self._rows = int(state["rows"])
        if not self.client.indices.exists(index=self.index_name):
            raise IndexCorruptError(f"Elasticsearch index {self.index_name} is missing on {url}; rebuild the index")

    @classmethod
    def check_backend(cls, config: dict[str, Any] | None = None) -> None:
        _client(es_url(config))

    @classmethod
    def write(cls, target, parent, adds, deletes, config):
        from elasticsearch import helpers

        target.mkdir(parents=True, exist_ok=True)
        if parent is not None:
            state = read_json(parent / "state.json")
            url = (config or {}).get("url") or os.environ.get("SHOPLENS_ES_URL") or state["url"]
        else:
            url = es_url(config)
            prefix = (config or {}).get("index_prefix", "shoplens")
            state = {"backend": cls.name, "url": url, "index": f"{prefix}-{uuid.uuid4().hex[:12]}", "rows": 0}
        client = _client(url)
        if parent is None:
            client.indices.create(index=state["index"], settings=INDEX_SETTINGS, mappings=INDEX_MAPPINGS)
        actions = (
            {"_index": state["index"], "_id": str(docno), "_source": {"docno": int(docno), **{f: fields.get(f) or "" for f in TEXT_FIELDS}}}
            for docno, fields in adds
        )
        helpers.bulk(client, actions, chunk_size=1000, refresh="wait_for")
        if adds:
            state["rows"] = max(state["rows"], max(docno for docno, _ in adds) + 1)
        atomic_write_json(target / "state.json", state)
        return state

    @classmethod
    def open(cls, directory, config=None):
        state = read_json(directory / "state.json")
        url = (config or {}).get("url") or os.environ.get("SHOPLENS_ES_URL") or state["url"]
        return cls(state, url)

    def analyze(self, text: str) -> list[str]:
        response = self.client.indices.analyze(index=self.index_name, analyzer="shoplens_en", text=text)
        return [token["token"] for token in response["tokens"]]

    def query_terms(self, text: str) -> list[str]:
        # Elasticsearch analyzes the text itself with the fields' analyzer: no extra round trip.
        return [text.strip()] if text.strip() else []

    def search(self, text, limit, allowed=None):
        # Rows added after this version must stay invisible: always mask to this version's rows.
        if allowed is None:
            allowed = np.ones(self._rows, dtype=bool)
        return super().search(text, limit, allowed)

    def _search(self, terms, limit, restrict):
        query: dict[str, Any] = {
            "multi_match": {
                "query": " ".join(terms),
                "fields": [f"{field}^{boost}" for field, boost in FIELD_BOOSTS.items()],
                "type": "most_fields",
            }
        }
        if restrict is not None and len(restrict) <= TERMS_MAX:
            query = {"bool": {"must": [query], "filter": [{"terms": {"docno": [int(d) for d in restrict]}}]}}
        size = int(limit if restrict is None or len(restrict) <= TERMS_MAX else self.num_docs())
        response = self.client.search(index=self.index_name, query=query, size=min(size, 10_000),
                                      source=False, docvalue_fields=["docno"], track_total_hits=False)
        hits = response["hits"]["hits"]
        docnos = np.array([int(hit["_id"]) for hit in hits], dtype=np.int64)
        scores = np.array([hit["_score"] for hit in hits], dtype=np.float32)
        if restrict is not None and len(restrict) > TERMS_MAX:
            keep = np.isin(docnos, restrict)
            docnos, scores = docnos[keep][:limit], scores[keep][:limit]
        return docnos, scores

    def num_docs(self) -> int:
        return int(self.client.count(index=self.index_name)["count"])

    def all_docnos(self) -> np.ndarray:
        from elasticsearch import helpers

        hits = helpers.scan(self.client, index=self.index_name, query={"query": {"match_all": {}}}, source=False)
        docnos = [int(hit["_id"]) for hit in hits]
        return np.sort(np.asarray(docnos, dtype=np.int64))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(url=self.url, index=self.index_name)
        return info
