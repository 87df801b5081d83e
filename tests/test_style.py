"""Functions fit on a screen: none over 60 lines (from `def` to its last line) outside tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_layers import REPO, source_files

MAX_LINES = 60


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES:
                found.append(f"{node.name} (line {node.lineno}, {lines} lines)")
    return found


@pytest.mark.parametrize("path", list(source_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_functions_are_short(path: Path):
    found = long_functions(path)
    assert not found, f"{path.relative_to(REPO)}: over {MAX_LINES} lines, split them: " + "; ".join(found)
