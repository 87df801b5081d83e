"""An index with a small reranker for the service tests, an engine over it, and an API client."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def served_index(tmp_path_factory, encoder) -> Path:
    """80 sample products with derived judgments, simulated behaviour and a small reranker. Read-only."""
    from shoplens.benchmarks import devdata
    from shoplens.engine.learning import train_ranker
    from shoplens.indexers.writer import WriteOptions, build_index
    from shoplens.rerank.folding import apply_events
    from shoplens.rerank.judgments import load_judgments
    from shoplens.rerank.training import RankerConfig
    from tests.helpers import sample_products, write_catalog

    directory = tmp_path_factory.mktemp("served")
    catalog = write_catalog(directory / "catalog.jsonl", sample_products(80))
    index = directory / "index"
    build_index(catalog, index, WriteOptions(device="cpu"), encoder=encoder)
    dev = directory / "dev"
    devdata.build(catalog, index, dev, queries=30, sessions=200, seed=5)
    apply_events(index, dev / "events.simulated.jsonl")
    train_ranker(index, load_judgments(dev / "judgments.train.jsonl"),
                 RankerConfig(n_estimators=12, early_stopping_rounds=4, depth=50))
    return index


@pytest.fixture(scope="session")
def served_engine(served_index, encoder):
    from shoplens.engine.search import SearchEngine

    engine = SearchEngine(served_index, device="cpu", encoder=encoder)
    yield engine
    engine.close()


def make_client(index: Path, engine=None, **settings):
    from fastapi.testclient import TestClient

    from shoplens.service.app import create_app
    from shoplens.service.settings import ServiceSettings

    app = create_app(ServiceSettings(index=index, device="cpu", **settings), engine=engine)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="session")
def client(served_index, served_engine, tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox") / "inbox"
    with make_client(served_index, served_engine, events_inbox=inbox) as test_client:
        yield test_client


class LiveServer:
    """uvicorn serving an app on a free loopback port in a thread (for the browser test)."""

    def __init__(self, app):
        import socket

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
