"""Opening a version: an index on a read-only file system is a one-line error that says what to do
(tantivy writes a lock file to read), not "cannot be opened ... run shoplens check"."""

import shutil

import pytest

from shoplens.common.errors import ConfigError
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.snapshot import Snapshot


def test_an_index_on_a_read_only_mount_says_to_copy_it(small_index, read_only_copy):
    source, mount = read_only_copy
    shutil.copytree(small_index, source / "ix", symlinks=True)
    with pytest.raises(ConfigError, match="read-only file system .*copy the index to a writable folder") as caught:
        Snapshot.open(IndexDirectory(mount / "ix"), device="cpu")
    assert "\n" not in str(caught.value)
