"""Opening a version: an index whose keyword folder cannot be written (a read-only file system, or a
folder this user may only read) is a one-line error that says what to do (tantivy writes a lock file to
read), not "cannot be opened ... run shoplens check"; so is one whose files this user may not read."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from shoplens.common.errors import ConfigError
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.snapshot import Snapshot

NOBODY = 65534


def test_an_index_on_a_read_only_mount_says_to_copy_it(small_index, read_only_copy):
    source, mount = read_only_copy
    shutil.copytree(small_index, source / "ix", symlinks=True)
    with pytest.raises(ConfigError, match="read-only file system .*copy the index to a writable folder") as caught:
        Snapshot.open(IndexDirectory(mount / "ix"), device="cpu")
    assert "\n" not in str(caught.value)


def set_modes(root: Path, writable: bool) -> None:
    """Every folder readable and enterable, every file readable; writable or not."""
    for path in [root, *root.rglob("*")]:
        mode = (0o755 if path.is_dir() else 0o644) if writable else (0o555 if path.is_dir() else 0o444)
        path.chmod(mode)


@pytest.fixture
def unwritable_copy(small_index):
    """A copy of the index that the test's user may read but not write: chmod a-w, opened as the user
    itself, or as `nobody` when the tests run as root (root writes whatever the modes say). The copy lives
    in a folder of its own that `nobody` can reach (pytest's tmp_path is private to root)."""
    Snapshot.open(IndexDirectory(small_index), device="cpu")  # every module it needs imported while root
    folder = Path(tempfile.mkdtemp(prefix="shoplens-unwritable-"))
    folder.chmod(0o755)
    copy = shutil.copytree(small_index, folder / "ix")
    set_modes(copy, writable=False)
    try:
        yield copy
    finally:
        set_modes(copy, writable=True)
        shutil.rmtree(folder)


@contextlib.contextmanager
def as_a_user_who_cannot_write_it():
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)  # the effective user only: the saved root id switches back
    try:
        yield
    finally:
        os.seteuid(0)


def test_an_index_this_user_cannot_write_says_to_copy_it(unwritable_copy):
    with as_a_user_who_cannot_write_it():
        with pytest.raises(ConfigError, match="may not write there .*copy the index to a writable folder") as caught:
            Snapshot.open(IndexDirectory(unwritable_copy), device="cpu")
    assert "\n" not in str(caught.value) and "lexical" in str(caught.value)


def test_a_keyword_store_this_user_cannot_read_says_so(unwritable_copy):
    index = IndexDirectory(unwritable_copy)
    lexical = index.version_path(index.current_version()) / "lexical"
    (lexical / "meta.json").chmod(0)
    with as_a_user_who_cannot_write_it():
        with pytest.raises(ConfigError, match="cannot read the keyword store .*permission denied") as caught:
            Snapshot.open(index, device="cpu")
    assert "\n" not in str(caught.value)
