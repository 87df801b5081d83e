"""`shoplens bench startup`: what a one-shot `shoplens search` costs as a fresh process.

Each run is a new Python process (the way a shell script calls ShopLens), timed from the outside
(wall seconds), and once more from the inside, stage by stage: importing the CLI, opening the
index (products, vector and lexical stores), loading the query encoder and the reranker with the
version's lookups (`warm`), and the search itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from shoplens.benchmarks.common import Report

# Runs inside the child process: stage timings of one search, printed as one JSON line.
_STAGES = """
import json, sys, time
started = time.perf_counter()
from shoplens.cli import app  # noqa: F401  (what the console script imports)
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
imported = time.perf_counter()
engine = SearchEngine(sys.argv[1], preload=False)
opened = time.perf_counter()
engine.warm()
warmed = time.perf_counter()
engine.search(SearchRequest(text=sys.argv[2], k=10))
done = time.perf_counter()
print(json.dumps({"import": imported - started, "open": opened - imported, "warm": warmed - opened,
                  "search": done - warmed}))
"""


def _wall(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _stages(index: Path, query: str) -> dict[str, float]:
    output = subprocess.run([sys.executable, "-c", _STAGES, str(index), query], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(index: Path, query: str = "red dress", runs: int = 5, command: str = "") -> Report:
    """Wall time of `runs` fresh `shoplens search QUERY -k 10` processes, and one process's stages."""
    report = Report(title="One-shot search start-up", data=f"{index}, query {query!r}", command=command)
    cli = [sys.executable, "-m", "shoplens", "search", query, "-k", "10", "--index", str(index)]
    _wall(cli)  # the first run fills the page cache; every later one is what a repeated call costs
    walls = [_wall(cli) for _ in range(runs)]
    report.table("fresh process, wall seconds", ["command", "runs", "min", "p50", "max"],
                 [[f"shoplens search {query!r} -k 10", runs, min(walls), float(np.median(walls)), max(walls)]])
    stages = [_stages(index, query) for _ in range(max(1, runs // 2))]
    rows = [[name, float(np.median([s[name] for s in stages]))] for name in ("import", "open", "warm", "search")]
    report.table("inside one process, seconds (median)", ["stage", "seconds"], rows)
    report.extra["startup"] = {"wall_s": walls, "stages_s": stages}
    return report
