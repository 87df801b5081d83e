"""The layers import one way. Every import of project code, at module level or inside a function:

    cli, commands -> tui, engine, benchmarks, training -> ...
    tui -> engine
    training -> indexers, common  (it trains the library's models; the library never imports it)
    engine -> indexers, rerank, common
    rerank -> indexers, common
    indexers -> common
    common -> nothing of ShopLens

Nothing imports cli; project code is always imported through the `shoplens` namespace.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("common", "indexers", "rerank", "engine", "tui", "service", "commands", "benchmarks", "training")
ALLOWED = {
    "common": set(),
    "indexers": {"common"},
    "rerank": {"common", "indexers"},
    "engine": {"common", "indexers", "rerank"},
    "tui": {"common", "engine", "indexers", "rerank"},
    "service": {"common", "engine", "indexers", "rerank"},
    "benchmarks": {"common", "indexers", "rerank", "engine"},
    "training": {"common", "indexers"},
    "commands": {"common", "indexers", "rerank", "engine", "tui", "service", "benchmarks", "training", "commands"},
    "cli": {"commands", "common"},
}
OLD_TOP_LEVEL = {"cli", "engine", "indexers", "rerank", "benchmarks", "common", "tui", "commands", "service", "training"}


def source_files():
    for layer in LAYERS:
        yield from sorted((REPO / layer).rglob("*.py"))
    yield REPO / "cli.py"


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, "." * node.level + (node.module or "")
            elif node.module:
                yield node.lineno, node.module
                if node.module == "shoplens":
                    for alias in node.names:
                        yield node.lineno, f"shoplens.{alias.name}"


def layer_of(path: Path) -> str:
    relative = path.relative_to(REPO)
    return "cli" if relative.parts == ("cli.py",) else relative.parts[0]


@pytest.mark.parametrize("path", list(source_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path: Path):
    layer = layer_of(path)
    problems = []
    for line, module in imported_modules(path):
        parts = module.split(".")
        if module.startswith("."):
            problems.append(f"line {line}: relative import {module!r}; use the shoplens namespace")
        elif parts[0] in OLD_TOP_LEVEL:
            problems.append(f"line {line}: {module!r} outside the shoplens namespace")
        elif parts[0] == "shoplens" and len(parts) > 1:
            target = parts[1]
            if target == "cli" or (target != layer and target not in ALLOWED[layer] and target in ALLOWED):
                problems.append(f"line {line}: {layer} may not import shoplens.{target}")
    assert not problems, f"{path.relative_to(REPO)}: " + "; ".join(problems)


def test_every_package_is_installed():
    """Each folder with an __init__.py is listed in pyproject's packages, so a wheel carries it."""
    text = (REPO / "pyproject.toml").read_text()
    for init in sorted(REPO.glob("*/**/__init__.py")):
        package = init.parent.relative_to(REPO)
        if package.parts[0] in ("tests", ".venv", "build") or package.parts[0].startswith("."):
            continue
        assert f'"shoplens.{".".join(package.parts)}"' in text, f"{package} is missing from pyproject's packages"
