"""End-to-end fuzzing through the CLI: a few hundred generated bad files and arguments on a tiny index.

Every case must end with exit 0, 1 (`check` found a problem) or 2 (a one-line
error), never an exception, never a hang; a failed command leaves the committed
index exactly as it was, a mistyped --index creates nothing, and --json output
is standard JSON. At the end the index still passes `check`.

SHOPLENS_FUZZ_CASES (default 200) and SHOPLENS_FUZZ_SEED (default 9) set the
run; `make fuzz` runs a longer one and prints the summary.
"""

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.maintenance import check_index
from tests.fuzzing import CaseMaker, nasty_images
from tests.helpers import Hang, bounded, sample_products, write_catalog

CASES = int(os.environ.get("SHOPLENS_FUZZ_CASES", "200"))
SEED = int(os.environ.get("SHOPLENS_FUZZ_SEED", "9"))
runner = CliRunner()


def committed_state(index: Path):
    """What a failed command must not change: CURRENT and the committed version directories."""
    current = (index / "CURRENT").read_text()
    versions = sorted(p.name for p in (index / "versions").iterdir() if p.name.isdigit())
    return current, versions


def reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


@pytest.fixture
def fuzz_index(tmp_path, encoder):
    from shoplens.indexers.writer import WriteOptions, build_index

    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(30))
    build_index(catalog, tmp_path / "index", WriteOptions(device="cpu"), encoder=encoder)
    # ranx compiles its metrics with numba on first use (a minute on a busy machine); do it here, outside
    # the per-case time bound, whose alarm would land inside numba's compiler and break it for the process
    from ranx import Qrels, Run, evaluate

    evaluate(Qrels.from_dict({"q": {"a": 1}}), Run.from_dict({"q": {"a": 1.0, "b": 0.5}}),
             ["ndcg@10", "mrr@10", "precision@10", "recall@100"])
    return tmp_path / "index"


def test_cli_survives_generated_bad_input(fuzz_index, tmp_path):
    ids = [row["id"] for row in sample_products(30)]
    maker = CaseMaker(SEED, tmp_path / "work", fuzz_index, ids, nasty_images(tmp_path / "images"))
    tried, outcomes, failures = Counter(), Counter(), []
    for _ in range(CASES):
        category, args, must_not_exist = maker.case()
        tried[category] += 1
        before = committed_state(fuzz_index)
        try:
            with bounded(120):
                result = runner.invoke(app, args)
        except Hang:
            failures.append((category, args, "hang"))
            continue
        outcomes[result.exit_code] += 1
        problem = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            problem = f"{type(result.exception).__name__}: {result.exception}"
        elif result.exit_code not in (0, 1, 2) or "Traceback" in result.output:
            problem = f"exit {result.exit_code}: {result.output[-300:]}"
        elif result.exit_code != 0 and committed_state(fuzz_index) != before:
            problem = "a failed command changed the committed index"
        elif must_not_exist is not None and (must_not_exist.exists() or must_not_exist.parent.exists()
                                            and any(must_not_exist.parent.iterdir())):
            problem = f"a mistyped --index created {must_not_exist}"
        elif result.exit_code == 0 and "--json" in args and args[0] != "watch":
            try:
                json.loads(result.stdout, parse_constant=reject_constant)
            except ValueError as exc:
                problem = f"--json printed non-standard JSON: {exc}"
        if problem:
            failures.append((category, [a[:80] for a in args], problem))
    report = check_index(fuzz_index)
    summary = {"seed": SEED, "cases": sum(tried.values()), "by_category": dict(tried),
               "exit_codes": dict(outcomes), "failures": len(failures), "final_version": IndexDirectory(fuzz_index).current_version(),
               "check_ok": report.ok}
    print("\nCLI fuzz summary:", json.dumps(summary))
    assert not failures, failures[:5]
    assert report.ok, report.problems
