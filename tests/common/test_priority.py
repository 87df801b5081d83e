"""A writer's CPU priority (common/priority.py): `update --nice N` and `watch` lower their own niceness,
`watch --once` and plain `update` keep the caller's."""

import os
import subprocess
import sys

from typer.testing import CliRunner

from shoplens.cli import app


def niceness_after(increment: int) -> int:
    code = f"from shoplens.common.priority import lower_priority; print(lower_priority({increment}))"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_lower_priority_raises_the_niceness_of_its_own_process_only():
    mine = os.nice(0)
    assert niceness_after(3) == min(mine + 3, 19)
    assert niceness_after(0) == mine
    assert os.nice(0) == mine


def test_watch_once_keeps_the_callers_priority(small_index, tmp_path):
    mine = os.nice(0)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    result = CliRunner().invoke(app, ["watch", str(inbox), "--index", str(small_index), "--once", "--json"])
    assert result.exit_code == 0, result.output
    assert os.nice(0) == mine


def test_a_niceness_out_of_range_is_refused(small_index, tmp_path):
    for command in (["update", str(tmp_path / "d.jsonl")], ["watch", str(tmp_path)]):
        result = CliRunner().invoke(app, [*command, "--index", str(small_index), "--nice", "20"])
        assert result.exit_code == 2 and "--nice" in result.output
