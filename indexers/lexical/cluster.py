"""Which search cluster a store talks to: Elasticsearch 7 or OpenSearch 2, one client factory for both.

The cluster stores (`elasticsearch_store.py`, `opensearch_store.py`) share their code: documents, version
ranges, bulk retries and error lines are the same on both servers. What differs is the Python client
library (the `elasticsearch` 7.x client refuses a server that is not Elasticsearch, so OpenSearch goes
through `opensearch-py`), the environment variable naming the server and the name in messages. Every
request the stores make is written in the form both clients accept (keyword arguments, `body=`).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shoplens.common.errors import ConfigError

RETRY_STATUSES = (429, 502, 503, 504)


@dataclass(frozen=True)
class Cluster:
    """One kind of search cluster: its backend name, label, URL variable and Python client."""

    backend: str  # the store's backend name (--lexical / --vectors)
    label: str  # in messages
    env: str  # the environment variable naming the server
    module: str  # the client library's import name
    client_class: str
    requirement: str  # what to pip install
    default_port: int

    def library(self):
        """The client library, with its `helpers` submodule loaded (bulk, scan)."""
        try:
            library = importlib.import_module(self.module)
            importlib.import_module(f"{self.module}.helpers")
        except ImportError as exc:  # pragma: no cover - both are declared dependencies
            raise ConfigError(f"the {self.backend} backend needs `pip install '{self.requirement}'`") from exc
        return library

    def url(self, config: dict[str, Any] | None = None) -> str:
        """The server from the `url` option or the environment; a one-line ConfigError without one."""
        url = (config or {}).get("url") or os.environ.get(self.env)
        if not url:
            raise ConfigError(f"the {self.backend} backend needs a server: set "
                              f"{self.env}=http://host:{self.default_port}")
        return url

    def client(self, url: str):
        """A client for `url` (several comma-separated addresses allowed), retrying 429 / 5xx twice."""
        library = self.library()
        hosts = self.hosts(url)
        try:
            return getattr(library, self.client_class)(hosts, timeout=30, max_retries=2, retry_on_timeout=True,
                                                       retry_on_status=RETRY_STATUSES)
        except Exception as exc:  # urllib3 and the clients raise several types for an address they cannot parse
            raise self._bad_url(url, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")

    def hosts(self, url: str) -> list[str]:
        """The comma-separated addresses of `url`, each an http(s) URL with a host and a valid port, or a
        one-line ConfigError (the address comes from an environment variable or the index's manifest)."""
        hosts = [host.strip() for host in str(url).split(",") if host.strip()]
        if not hosts:
            raise self._bad_url(url, "no address")
        for host in hosts:
            try:
                parts = urlsplit(host if "://" in host else f"http://{host}")  # the clients take host:port too
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
            except ValueError as exc:
                raise self._bad_url(url, str(exc)) from None
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in host):
                raise self._bad_url(url, f"{host!r} is not an http(s)://host[:port] address")
        return hosts

    def _bad_url(self, url: str, why: str) -> ConfigError:
        return ConfigError(f"{self.env} (or the index's {self.backend} address) {shown_url(url)!r} is not a "
                           f"usable server address ({why}); set it to http://host:{self.default_port}")


def shown_url(url: str) -> str:
    """`url` for a message: a password in it (http://user:secret@host) replaced by ***."""
    return re.sub(r"(://[^/@:,\s]*:)[^/@,\s]*@", r"\1***@", str(url))[:200]


ELASTICSEARCH = Cluster("elasticsearch", "Elasticsearch", "SHOPLENS_ES_URL", "elasticsearch", "Elasticsearch",
                        "elasticsearch>=7.17,<8", 9200)
OPENSEARCH = Cluster("opensearch", "OpenSearch", "SHOPLENS_OS_URL", "opensearchpy", "OpenSearch",
                     "opensearch-py>=2.4,<4", 9200)
