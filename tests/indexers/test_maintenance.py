"""Rollback, versions and the index-directory guards under damage and typos."""

import json
import shutil

import pytest

from shoplens.common.errors import IndexCorruptError, IndexNotFoundError
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.maintenance import compact, list_versions, rollback
from shoplens.indexers.updates import delete_products
from tests.helpers import sample_products


def test_rollback_refuses_a_damaged_target(small_index):
    delete_products(small_index, [sample_products(1)[0]["id"]])
    index = IndexDirectory(small_index)
    shutil.rmtree(index.version_path(1) / "vectors")
    with pytest.raises(IndexCorruptError, match="fails its consistency check"):
        rollback(small_index, 1)
    assert index.current_version() == 2


def test_versions_lists_an_unreadable_manifest(small_index):
    delete_products(small_index, [sample_products(1)[0]["id"]])
    (IndexDirectory(small_index).version_path(1) / "manifest.json").write_text("{not json")
    rows = list_versions(small_index)
    assert [row["version"] for row in rows] == [2, 1]
    assert rows[1]["kind"] == "unreadable" and "unreadable" in rows[1]["error"]
    json.dumps(rows, allow_nan=False)


def test_writers_on_a_mistyped_index_create_nothing(tmp_path):
    typo = tmp_path / "typo" / "index"
    for write in (lambda: rollback(typo, 1), lambda: compact(typo), lambda: delete_products(typo, ["1"])):
        with pytest.raises(IndexNotFoundError):
            write()
    assert not (tmp_path / "typo").exists()


def test_an_index_path_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(IndexNotFoundError, match="is a file"):
        IndexDirectory(path).current_version()
    with pytest.raises(IndexNotFoundError, match="is a file"):
        compact(path)


@pytest.mark.parametrize("damage", ["gone", "manifest"])
def test_rollback_restores_a_kept_version_when_the_current_one_is_gone(small_index, damage):
    """CURRENT naming a version whose folder is gone (a partial copy, a hand-deleted folder), or whose manifest is
    damaged: every command said "run `shoplens check`" or "`shoplens rollback` to a good version", check said the
    same, and rollback refused with the current version's damage, so no command got out of it."""
    from shoplens.indexers.maintenance import check_index

    delete_products(small_index, [sample_products(1)[0]["id"]])
    index = IndexDirectory(small_index)
    if damage == "gone":
        shutil.rmtree(index.version_path(2))
    else:
        (index.version_path(2) / "manifest.json").write_text("{not json")
    problem = check_index(small_index).problems[0]
    assert problem.startswith("version 2 does not open: ") and "run `shoplens check`" not in problem
    assert problem.endswith("; restore a kept version with `shoplens rollback VERSION` (see `shoplens versions`)")
    assert rollback(small_index, 1) == 3
    assert index.current_version() == 3 and check_index(small_index).ok
    assert index.manifest()["change"] == {"rolled_back_to": 1, "rolled_back_from": 2}
