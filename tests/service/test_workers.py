"""`shoplens serve --workers 2` as a real process on loopback: it starts, every worker answers /ready
and /search, and every worker moves to a version committed by another process (no mocks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx

from shoplens.indexers.updates import apply_delta
from tests.helpers import copy_index, sample_products

WORKERS = 2
PRODUCT = sample_products(80)[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_get(url: str, **kwargs) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to any worker."""
    return httpx.get(url, headers={"Connection": "close"}, timeout=60, **kwargs)


def every_worker(url: str, check, deadline: float) -> dict[int, dict]:
    """Ask /ready on fresh connections until WORKERS distinct processes each passed `check`."""
    passed: dict[int, dict] = {}
    while len(passed) < WORKERS and time.time() < deadline:
        try:
            reply = fresh_get(url + "/ready")
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        body = reply.json()
        if reply.status_code == 200 and check(body):
            passed[body["worker"]] = body
        else:
            time.sleep(0.2)
    return passed


def test_two_workers_serve_and_follow_new_versions(served_index, tmp_path):
    index = copy_index(served_index, tmp_path / "index")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "shoplens", "serve", "--index", str(index), "--port", str(port),
                               "--workers", str(WORKERS), "--device", "cpu", "--follow-seconds", "0.2"],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    try:
        first = every_worker(url, lambda body: True, time.time() + 600)
        assert len(first) == WORKERS, (tmp_path / "server.log").read_text()[-2000:]
        assert server.pid not in first  # the answers come from the worker processes, not the supervisor
        assert len({body["version"] for body in first.values()}) == 1
        for _ in range(6):
            reply = httpx.post(url + "/search", json={"q": PRODUCT["title"], "k": 3, "rerank": False},
                               headers={"Connection": "close"}, timeout=60)
            assert reply.status_code == 200 and reply.json()["results"], reply.text

        delta = tmp_path / "delta.jsonl"
        delta.write_text(json.dumps({"id": PRODUCT["id"], "price": 12345.0}) + "\n")
        new_version = apply_delta(index, delta, device="cpu").version
        moved = every_worker(url, lambda body: body["version"] == new_version, time.time() + 300)
        assert len(moved) == WORKERS, f"workers on version {new_version}: {sorted(moved)}"
        # and each answer carries the new price: searches run on the new version in every worker
        for _ in range(6):
            reply = httpx.post(url + "/search", json={"q": "x", "k": 1, "filters": [f"id={PRODUCT['id']}"], "rerank": False},
                               headers={"Connection": "close"}, timeout=60)
            assert reply.headers["x-shoplens-version"] == str(new_version)
            assert reply.json()["results"][0]["price"] == 12345.0
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
