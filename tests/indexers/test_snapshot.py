"""Opening a version: an index whose keyword folder cannot be written (a read-only file system, or a
folder this user may only read) is a one-line error that says what to do (tantivy writes a lock file to
read), not "cannot be opened ... run shoplens check"; so is one whose files this user may not read."""

import shutil

import pytest

from shoplens.common.errors import ConfigError
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.snapshot import Snapshot
from tests.helpers import as_a_user_who_cannot_write


def test_an_index_on_a_read_only_mount_says_to_copy_it(small_index, read_only_copy):
    source, mount = read_only_copy
    shutil.copytree(small_index, source / "ix", symlinks=True)
    with pytest.raises(ConfigError, match="read-only file system .*copy the index to a writable folder") as caught:
        Snapshot.open(IndexDirectory(mount / "ix"), device="cpu")
    assert "\n" not in str(caught.value)


def test_an_index_this_user_cannot_write_says_to_copy_it(unwritable_index):
    with as_a_user_who_cannot_write():
        with pytest.raises(ConfigError, match="may not write there .*copy the index to a writable folder") as caught:
            Snapshot.open(IndexDirectory(unwritable_index), device="cpu")
    assert "\n" not in str(caught.value) and "lexical" in str(caught.value)


def test_a_keyword_store_this_user_cannot_read_says_so(unwritable_index):
    index = IndexDirectory(unwritable_index)
    lexical = index.version_path(index.current_version()) / "lexical"
    (lexical / "meta.json").chmod(0)
    with as_a_user_who_cannot_write():
        with pytest.raises(ConfigError, match="cannot read the keyword store .*permission denied") as caught:
            Snapshot.open(index, device="cpu")
    assert "\n" not in str(caught.value)
