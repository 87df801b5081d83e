"""Files written for the user: refused up front when they cannot be written, written whole or not at all."""

import os
from pathlib import Path

import pytest

from shoplens.common.errors import ConfigError
from shoplens.common.outputs import atomic_output, check_output_file


def test_writable_paths_pass_and_create_nothing(tmp_path):
    check_output_file(tmp_path / "report.json")
    check_output_file(tmp_path / "new" / "deeper" / "report.json")  # folders are made when the file is written
    (tmp_path / "old.json").write_text("{}")
    check_output_file(tmp_path / "old.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


@pytest.mark.parametrize("make, expected", [
    (lambda t: t / "folder", "is a folder"),
    (lambda t: t / "afile" / "report.json", "is a file, not a folder"),
    (lambda t: t / "afile" / "deeper" / "report.json", "is a file, not a folder"),
    (lambda t: Path("/dev/null"), "not a regular file"),
    (lambda t: t / "pipe", "not a regular file"),
    (lambda t: Path("/proc/report.json"), "cannot write in /proc"),
])
def test_unwritable_paths_are_one_line_errors(tmp_path, make, expected):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ConfigError, match=expected) as caught:
        check_output_file(make(tmp_path), "--save")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("--save ")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as handle:
            handle.write("half a rep")
            raise RuntimeError("the benchmark failed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with atomic_output(tmp_path / "sub" / "new.json") as handle:
        handle.write("whole")
    assert (tmp_path / "sub" / "new.json").read_text() == "whole"
    assert oct((tmp_path / "sub" / "new.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_an_os_error_while_writing_is_a_config_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="cannot write"):
        with atomic_output(tmp_path / "afile" / "report.json") as handle:
            handle.write("x")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_output_folders_are_checked_like_files(tmp_path):
    from shoplens.common.outputs import check_output_folder

    (tmp_path / "afile").write_text("x")
    check_output_folder(tmp_path)
    check_output_folder(tmp_path / "new" / "deeper")
    for path, expected in ((tmp_path / "afile", "is a file; give a folder"),
                           (tmp_path / "afile" / "runs", "afile is a file, not a folder"),
                           (Path("/proc/shoplens-runs"), "cannot write in /proc")):
        with pytest.raises(ConfigError, match=expected):
            check_output_folder(path, "--run-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
