import os
from pathlib import Path

import pytest

from shoplens.common.errors import IndexCorruptError, IndexLockedError, IndexNotFoundError
from shoplens.indexers.index import IndexDirectory


# What the writers record beside their own facts; readers of a manifest take these for granted.
STORES = {"model": {"name": "test-model", "dim": 4}, "counts": {"products": 1, "rows": 1},
          "backends": {"lexical": {"backend": "tantivy"}, "vector": {"backend": "faiss"}}}


def commit(index, payload="x", keep=10):
    with index.lock(create=True):
        txn = index.begin("test")
        (txn.component_dir("products") / "data.txt").write_text(payload)
        return txn.commit({"payload": payload, **STORES}, keep=keep)


def test_versions_are_numbered_and_current_moves_on_commit(tmp_path):
    index = IndexDirectory(tmp_path / "ix")
    assert not index.exists()
    assert commit(index, "a") == 1
    assert commit(index, "b") == 2
    assert index.current_version() == 2
    assert index.manifest()["payload"] == "b"
    assert index.manifest(1)["payload"] == "a"
    assert index.manifest()["parent"] == 1
    assert (index.version_path(1) / "products" / "data.txt").read_text() == "a"
    assert index.committed_versions() == [1, 2]


def test_old_versions_are_pruned_but_never_the_current(tmp_path):
    index = IndexDirectory(tmp_path / "ix")
    for payload in "abcde":
        commit(index, payload, keep=3)
    assert index.committed_versions() == [3, 4, 5]


def test_a_second_writer_gets_a_clear_error(tmp_path):
    index = IndexDirectory(tmp_path / "ix")
    commit(index)
    with index.lock():
        with pytest.raises(IndexLockedError, match="another shoplens process"):
            with IndexDirectory(tmp_path / "ix").lock():
                pass


def test_leftovers_of_a_killed_writer_are_removed_and_ignored(tmp_path):
    index = IndexDirectory(tmp_path / "ix")
    commit(index, "a")
    # a writer died after renaming its version into place but before replacing CURRENT,
    # and another died while still writing its temporary directory
    (index.versions_dir / "000002").mkdir()
    (index.versions_dir / "000003.tmp-999").mkdir()
    (index.path / ".CURRENT.tmp-999").write_text("000002\n")
    assert index.current_version() == 1
    assert index.committed_versions() == [1]
    assert commit(index, "b") == 2
    assert index.manifest()["payload"] == "b"
    assert sorted(os.listdir(index.versions_dir)) == ["000001", "000002"]


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="shoplens index CATALOG"):
        IndexDirectory(tmp_path / "nothing").current_version()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    with pytest.raises(IndexNotFoundError, match="not a ShopLens index"):
        IndexDirectory(tmp_path / "other").require()


@pytest.mark.parametrize("damage, expected", [
    (lambda m: m.clear(), "has no format"), (lambda m: m.pop("model"), "has no model"), (lambda m: m.pop("counts"), "has no counts"),
    (lambda m: m["model"].pop("name"), "has no model.name"), (lambda m: m.update(version="2"), "holds str for version"),
    (lambda m: m["counts"].update(rows=True), "holds bool for counts.rows"),
    (lambda m: m.update(backends=[]), "holds list for backends"), (lambda m: m.update(format=99), "index format 99"),
])
def test_a_manifest_that_is_json_but_not_whole_is_a_clear_error(tmp_path, damage, expected):
    """A hand-edited manifest (valid JSON, keys missing or of another type) is refused where manifests are read,
    so no writer builds a new version on it (a `versions --keep` once committed one and pruned the last good
    data) and no reader ends in a KeyError."""
    import json

    index = IndexDirectory(tmp_path / "ix")
    commit(index)
    path = index.version_path(1) / "manifest.json"
    manifest = json.loads(path.read_text())
    damage(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=expected) as caught:
        index.manifest()
    assert "shoplens check" in str(caught.value) and "\n" not in str(caught.value)
    with index.lock(), pytest.raises(IndexCorruptError, match=expected):
        index.begin("settings")  # a writer on it: refused before it creates its version folder
    assert os.listdir(index.versions_dir) == ["000001"]


def test_a_build_goes_only_where_an_index_may_be_made(tmp_path):
    """A build's --index: an index, an empty or new folder (even under missing folders), or what a killed first
    build left; never a folder of other files, a path under a file, or a place nothing can be written."""
    for fine in ("new/deeper/ix", "empty"):
        IndexDirectory(tmp_path / fine).check_buildable()
    (tmp_path / "empty").mkdir()
    IndexDirectory(tmp_path / "empty").check_buildable()
    (tmp_path / "killed" / "versions").mkdir(parents=True)
    (tmp_path / "killed" / "LOCK").write_text("")
    (tmp_path / "killed" / ".DS_Store").write_text("")
    IndexDirectory(tmp_path / "killed").check_buildable()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "1.jpg").write_text("x")
    (tmp_path / "afile").write_text("x")
    for path, expected in ((tmp_path / "photos", "holds other files \\(1.jpg\\)"),
                           (tmp_path / "afile", "is a file, not an index directory"),
                           (tmp_path / "afile" / "ix", "afile is a file, not a folder"),
                           (Path("/proc/shoplens-ix"), "cannot write in /proc")):
        with pytest.raises(IndexNotFoundError, match=expected):
            IndexDirectory(path).check_buildable()
        with pytest.raises(IndexNotFoundError, match=expected):
            with IndexDirectory(path).lock(create=True):
                pass
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["1.jpg"]  # no LOCK left among the photos


def test_a_first_build_that_fails_leaves_no_directory(tmp_path):
    """A build that made the index directory and never committed (a bad --pretrained, Ctrl-C, a full disk)
    takes the directory away again; a failed write into an existing index leaves the index as it was."""
    for failure in (ValueError("bad option"), KeyboardInterrupt()):
        with pytest.raises(type(failure)):
            with IndexDirectory(tmp_path / "new" / "ix").lock(create=True):
                raise failure
        assert not (tmp_path / "new" / "ix").exists()
    index = IndexDirectory(tmp_path / "ix")
    commit(index)
    with pytest.raises(ValueError):
        with index.lock(create=True):
            raise ValueError("a rebuild that failed")
    assert index.current_version() == 1 and index.manifest()["payload"] == "x"


def test_a_writer_on_a_read_only_index_is_one_line(read_only_copy):
    from shoplens.common.errors import ConfigError

    source, mount = read_only_copy
    commit(IndexDirectory(source / "ix"))
    index = IndexDirectory(mount / "ix")
    assert index.manifest()["payload"] == "x"  # reading needs no write
    with pytest.raises(ConfigError, match="cannot write to the index .*Read-only file system.*writable folder"):
        with index.lock():
            pass
    with pytest.raises(IndexNotFoundError, match="cannot write in"):
        IndexDirectory(mount / "new").check_buildable()
