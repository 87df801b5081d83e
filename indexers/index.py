"""The index directory: numbered versions, each a complete set of stores.

Layout::

    INDEX/
      CURRENT                  the committed version number (replaced atomically)
      LOCK                     held (flock) by the one writer
      versions/000007/         one directory per committed version
        manifest.json          model, dimensions, backends, counts, software versions, build time, change
        products/ vectors/ lexical/ behaviour/ ranker/
      cache/                   content-hash embedding cache, shared by all versions

A write builds `versions/NNNNNN.tmp-PID/`, sharing unchanged immutable files
with the parent version through hard links, fsyncs it, renames it into place
and only then replaces CURRENT. That rename of CURRENT is the commit: a
process killed at any earlier moment leaves CURRENT on the last committed
version, and the next writer removes the leftovers.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from shoplens.common.errors import (ConcurrentWriteError, ConfigError, IndexCorruptError, IndexLockedError,
                                    IndexNotFoundError, ShopLensError)
from shoplens.common.outputs import unwritable_folder
from shoplens.indexers.lexical import lexical_store_class
from shoplens.indexers.storage import atomic_write_bytes, atomic_write_json, fsync_dir, fsync_tree, link_tree, read_json

FORMAT_VERSION = 1
COMPONENTS = ("products", "vectors", "textvec", "lexical", "spelling", "behaviour", "ranker")
DEFAULT_KEEP_VERSIONS = 10
RANKER_MODEL = ("ranker", "model.json")  # a version's reranker model, under its folder
RANKER_CACHE = "ranker"  # cache/ranker: what the reranker derives from a model (compiled trees, ONNX trees)
_RANKER_CACHED = re.compile(r"ranker-([0-9a-f]+)(?:-([0-9a-f]+))?\.(?:so|onnx)")  # ranker-MODEL-KEY.ext (old: ranker-KEY)
log = logging.getLogger("shoplens.index")


def model_digest(path: Path) -> str:
    """A short digest of a model file's content: files in `cache/ranker/` derived from it start with it."""
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=8).hexdigest()


def crash_point(name: str) -> None:
    """Die here, as `kill -9` would, when SHOPLENS_CRASH_AT names this point (crash-safety tests)."""
    if os.environ.get("SHOPLENS_CRASH_AT") == name:
        os._exit(137)


def pause_point(name: str) -> None:
    """Wait here when SHOPLENS_PAUSE_AT names this point (tests that interleave writers).

    The process touches `$SHOPLENS_PAUSE_FILE.reached`, then waits (at most 120 s) until
    `$SHOPLENS_PAUSE_FILE` exists. Every writer passes `base-read` right after it has read the
    version it builds on, so a test can run other writers at exactly that moment.
    """
    if os.environ.get("SHOPLENS_PAUSE_AT") != name or not os.environ.get("SHOPLENS_PAUSE_FILE"):
        return
    release = Path(os.environ["SHOPLENS_PAUSE_FILE"])
    Path(f"{release}.reached").touch()
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def software_versions() -> dict[str, str]:
    """Versions of the libraries whose file formats an index depends on."""
    from importlib import metadata

    versions = {}
    for package in ("shoplens", "faiss-cpu", "faiss-gpu-cu12", "tantivy", "torch", "open-clip-torch", "xgboost", "pyarrow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _lexical_backend(version_folder: Path) -> str:
    """The lexical backend a version (or a version being written) used, from its store's state file."""
    try:
        state = read_json(version_folder / "lexical" / "state.json")
    except (OSError, ValueError):
        return "tantivy"
    return str(state.get("backend") or "tantivy") if isinstance(state, dict) else "tantivy"


def _format_version(number: int) -> str:
    return f"{number:06d}"


# What every reader of a manifest takes for granted: (path of keys, type). A manifest that parses as a JSON
# object but lacks one of these (hand-edited, or written by a tool that is not ShopLens) would otherwise end
# an update, a compact or `info` in a KeyError; it is refused where manifests are read, like a truncated one.
MANIFEST_FIELDS: tuple[tuple[tuple[str, ...], type], ...] = (
    (("format",), int), (("version",), int), (("kind",), str), (("created_at",), str), (("model",), dict),
    (("model", "name"), str), (("model", "dim"), int), (("counts",), dict), (("counts", "products"), int),
    (("counts", "rows"), int), (("backends",), dict), (("backends", "lexical"), dict),
    (("backends", "vector"), dict),
)


def manifest_damage(manifest: dict[str, Any]) -> str | None:
    """What a parsed manifest lacks, as the end of a sentence ("has no model.name"), or None when whole."""
    if "format" in manifest and manifest["format"] != FORMAT_VERSION:
        return (f"is in index format {manifest['format']!r}, this ShopLens reads {FORMAT_VERSION} (rebuild the index "
                "with `shoplens index`)")
    for keys, kind in MANIFEST_FIELDS:
        value: Any = manifest
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        name = ".".join(keys)
        if value is None:
            return f"has no {name}"
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"holds {type(value).__name__} for {name}, not {kind.__name__}"
    return None


# What a build leaves in its directory (a killed first build leaves LOCK and versions/ without CURRENT).
BUILD_NAMES = frozenset({"CURRENT", "LOCK", "versions", "cache", "encoders"})


class IndexDirectory:
    """Locates versions of one index and hands out write transactions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_depth = 0  # lock() is re-entrant through this object

    @property
    def versions_dir(self) -> Path:
        return self.path / "versions"

    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    def exists(self) -> bool:
        return self.path.is_dir() and (self.path / "CURRENT").is_file()

    def require(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise IndexNotFoundError(f"{self.path} is a file, not an index directory; pass --index with the index directory")
        if not self.exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise IndexNotFoundError(
                    f"{self.path} is not a ShopLens index (no CURRENT file); pass --index with the right directory"
                )
            raise IndexNotFoundError(
                f"no index at {self.path}; build one with `shoplens index CATALOG` or pass --index DIR"
            )
        if not self.versions_dir.is_dir():
            raise IndexCorruptError(f"{self.path} has a CURRENT file but no versions/ folder; restore the index from "
                                    "a backup or rebuild it with `shoplens index`")

    def check_buildable(self) -> None:
        """Before a build reads anything: the directory is an index, an empty folder or one a build can make.
        A folder of other files is refused (a build would mix its versions into them), and so is a place no
        folder can be made (a parent that is a file, a read-only mount)."""
        if self.path.exists() and not self.path.is_dir():
            raise IndexNotFoundError(f"{self.path} is a file, not an index directory; pass another --index")
        if self.path.is_dir():
            others = sorted(entry.name for entry in self.path.iterdir()
                            if entry.name not in BUILD_NAMES and not entry.name.startswith("."))
            if others and not self.exists():
                raise IndexNotFoundError(f"{self.path} holds other files ({', '.join(others[:3])}) and is not a "
                                         "ShopLens index; pass --index with a new or empty directory")
            return
        problem = unwritable_folder(self.path.absolute().parent)
        if problem:
            raise IndexNotFoundError(f"cannot create the index directory {self.path}: {problem}; pass --index with a "
                                     "path in a writable folder")

    def current_version(self) -> int:
        self.require()
        text = (self.path / "CURRENT").read_text().strip()
        try:
            return int(text)
        except ValueError:
            raise IndexCorruptError(f"{self.path}/CURRENT holds {text!r}, not a version number") from None

    def version_path(self, version: int) -> Path:
        return self.versions_dir / _format_version(version)

    def manifest(self, version: int | None = None) -> dict[str, Any]:
        version = self.current_version() if version is None else version
        path = self.version_path(version) / "manifest.json"
        if not path.is_file():
            raise IndexCorruptError(f"version {version} of {self.path} has no manifest; run `shoplens check`")
        try:
            manifest = read_json(path)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"the manifest of version {version} of {self.path} is unreadable ({exc}); "
                                    "run `shoplens check`, or `shoplens rollback` to a good version") from None
        if not isinstance(manifest, dict):
            raise IndexCorruptError(f"the manifest of version {version} of {self.path} is not a JSON object")
        damage = manifest_damage(manifest)
        if damage:
            raise IndexCorruptError(f"the manifest of version {version} of {self.path} {damage}; run `shoplens check`, "
                                    "or `shoplens rollback` to a good version")
        return manifest

    def committed_versions(self) -> list[int]:
        """Version numbers on disk that were committed (not newer than CURRENT), oldest first."""
        if not self.exists():
            return []
        current = self.current_version()
        numbers = []
        for entry in self.versions_dir.iterdir():
            if entry.is_dir() and entry.name.isdigit() and int(entry.name) <= current:
                numbers.append(int(entry.name))
        return sorted(numbers)

    @contextmanager
    def lock(self, create: bool = False) -> Iterator[None]:
        """Hold the single-writer lock; a second writer gets a clear error instead of waiting.

        Every writer takes it before it reads the version it builds on, so no write can
        commit on a stale base. Re-entrant through the same object (a delta's commit and the
        compaction after it run under the lock its reader took); another object, like another
        process, is refused. Only a build (`create`) may make the directory.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        if create:
            self.check_buildable()  # a file, a folder of other files, a place no folder can be made
        created = create and not self.path.exists()  # a first build: what it made goes if it never commits
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        else:
            self.require()
        try:
            handle = open(self.path / "LOCK", "a+")
        except OSError as exc:  # a read-only mount, a full disk: no writer can start, none has
            raise ConfigError(f"cannot write to the index {self.path} ({exc.strerror or exc}); writes need the index "
                              "in a writable folder (copy it to one, or remount it read-write)") from None
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexLockedError(
                    f"another shoplens process is writing to {self.path}; wait for it to finish and retry"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            self._remove_uncommitted()
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
        finally:
            if created and not (self.path / "CURRENT").exists():  # still holding the lock
                shutil.rmtree(self.path, ignore_errors=True)
            handle.close()

    def _remove_uncommitted(self) -> None:
        """Delete what a killed writer left: temporary dirs and versions never made current."""
        if not self.versions_dir.exists():
            return
        current = self.current_version() if self.exists() else 0
        for entry in self.versions_dir.iterdir():
            if ".tmp" in entry.name or (entry.name.isdigit() and int(entry.name) > current):
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.path.iterdir():
            if entry.name.startswith(".CURRENT.tmp"):
                entry.unlink(missing_ok=True)

    def begin(self, kind: str, parent: int | None = "current", damaged_parent: bool = False) -> "Transaction":
        """Start a new version. Must be called while holding `lock()`. With `damaged_parent` (a rollback, which
        takes nothing from it) a parent version whose folder or manifest is gone or damaged is no refusal."""
        if parent == "current":
            parent = self.current_version() if self.exists() else None
        return Transaction(self, kind, parent, damaged_parent)

    def prune(self, keep: int) -> list[int]:
        """Remove the oldest committed versions beyond `keep`; never the current one.

        What a removed version holds outside the folder (an Elasticsearch index, or the documents only
        it still saw) is freed first; a version whose server cannot be reached now is kept for the next prune.
        """
        versions = self.committed_versions()
        current = self.current_version()
        doomed = [number for number in (versions[:-keep] if keep > 0 else []) if number != current]
        if not doomed:
            return []
        kept = [number for number in versions if number not in doomed]
        removed = []
        for number in self.release_external([self.version_path(n) for n in doomed], kept):
            shutil.rmtree(number, ignore_errors=True)
            removed.append(int(number.name))
        if removed:
            self.trim_ranker_cache()
        return removed

    def trim_ranker_cache(self) -> list[Path]:
        """Delete what `cache/ranker/` holds for models no committed version has any more (a file there is
        named `ranker-MODEL-KEY.so|onnx`, MODEL being `model_digest` of the model it serves; a file of the older
        `ranker-KEY` naming is never looked up again). Returns the files deleted."""
        folder = self.cache_dir / RANKER_CACHE
        if not folder.is_dir():
            return []
        models, wanted = {}, set()
        for number in self.committed_versions():
            path = self.version_path(number).joinpath(*RANKER_MODEL)
            try:
                info = path.stat()
            except OSError:
                continue
            identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)  # versions hard-link one model
            if identity not in models:
                models[identity] = model_digest(path)
            wanted.add(models[identity])
        removed = []
        for file in folder.iterdir():
            match = _RANKER_CACHED.fullmatch(file.name)
            if match and (match.group(2) is None or match.group(1) not in wanted):
                file.unlink(missing_ok=True)
                removed.append(file)
        return removed

    def release_external(self, doomed: list[Path], kept: list[int]) -> list[Path]:
        """Free what the version folders in `doomed` hold outside the index that no `kept` version needs
        (see `LexicalStore.release`). Returns the folders it could free (the others keep their data)."""
        by_backend: dict[str, list[Path]] = {}
        for folder in doomed:
            by_backend.setdefault(_lexical_backend(folder), []).append(folder)
        freed = []
        for backend, folders in by_backend.items():
            kept_dirs = [self.version_path(n) / "lexical" for n in kept
                         if _lexical_backend(self.version_path(n)) == backend]
            try:
                store = lexical_store_class(backend)
            except ShopLensError:  # a backend this ShopLens does not know holds nothing it could free
                freed.extend(folders)
                continue
            try:
                store.release([folder / "lexical" for folder in folders], kept_dirs)
            except ShopLensError as exc:
                log.warning("%s", exc)
                continue
            freed.extend(folders)
        return freed


class Transaction:
    """A version being written. Components write into `component_dir(name)`."""

    def __init__(self, index: IndexDirectory, kind: str, parent: int | None, damaged_parent: bool = False):
        self.index = index
        self.kind = kind
        self.parent = parent
        # the parent's manifest first: a damaged one refuses the write before anything is created
        self.parent_manifest = None
        try:
            self.parent_manifest = index.manifest(parent) if parent is not None else None
        except IndexCorruptError:
            if not damaged_parent:
                raise
        index.versions_dir.mkdir(parents=True, exist_ok=True)
        existing = [int(e.name) for e in index.versions_dir.iterdir() if e.name.isdigit()]
        self.version = max(existing + [parent or 0]) + 1
        self.tmp = index.versions_dir / f"{_format_version(self.version)}.tmp-{os.getpid()}"
        self.tmp.mkdir()

    def component_dir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def parent_dir(self, name: str) -> Path | None:
        if self.parent is None:
            return None
        path = self.index.version_path(self.parent) / name
        return path if path.exists() else None

    def carry_over(self, name: str, copy_names: tuple[str, ...] = ()) -> None:
        """Keep a component unchanged from the parent version (hard links, no copying)."""
        source = self.parent_dir(name)
        if source is not None:
            link_tree(source, self.tmp / name, copy_names)

    def commit(self, manifest: dict[str, Any], keep: int = DEFAULT_KEEP_VERSIONS) -> int:
        """Make the version durable and current. Returns its number."""
        manifest = dict(manifest)
        manifest.update(
            format=FORMAT_VERSION,
            version=self.version,
            parent=self.parent,
            kind=self.kind,
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            software=software_versions(),
        )
        atomic_write_json(self.tmp / "manifest.json", manifest)
        fsync_tree(self.tmp)
        self._verify_base()
        crash_point("manifest-written")
        final = self.index.version_path(self.version)
        os.replace(self.tmp, final)
        fsync_dir(self.index.versions_dir)
        crash_point("version-renamed")
        # the commit point: CURRENT names the new version
        atomic_write_bytes(self.index.path / "CURRENT", f"{_format_version(self.version)}\n".encode())
        crash_point("current-replaced")
        self.index.prune(keep)
        return self.version

    def _verify_base(self) -> None:
        """Refuse to commit when CURRENT moved since this version's parent was read (a writer that
        bypassed the lock, or a copied index written twice): committing would drop its changes."""
        now = self.index.current_version() if self.index.exists() else None
        if now != self.parent:
            raise ConcurrentWriteError(
                f"{self.index.path} moved from version {self.parent} to {now} while this write ran; "
                "nothing was committed; run the command again"
            )

    def abort(self) -> None:
        """Drop the version being written, and what its stores wrote outside the index (best effort)."""
        if self.tmp.exists():
            try:
                self.index.release_external([self.tmp], self.index.committed_versions())
            except (ShopLensError, OSError) as exc:  # the write's own error is the one to report
                log.warning("could not free what the aborted write held: %s", exc)
        shutil.rmtree(self.tmp, ignore_errors=True)
