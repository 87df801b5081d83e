"""FAISS vector store: exact for small catalogs, HNSW or IVF above a threshold, CPU or GPU.

Files of one version (`vectors/`)::

    state.json             dimension, index kind and parameters, segments, base index
    text-SEG.npy           text embeddings of the rows a segment added
    image-SEG.npy          image embeddings (zeros where has_image is false)
    hasimg-SEG.npy         which rows have an image embedding
    fused-SEG.npy          the rows' searched vectors (text and image fused), so opening computes nothing
    faiss-VER.index        FAISS index over the fused vectors of rows [0, base_rows)

FAISS ids are docnos: rows are added in docno order and never removed, so the
i-th vector added is row i. Rows after `base_rows` (recent small updates) are
not in the FAISS index: they are searched exactly beside it and the two lists
merged, so the base index a reader holds never changes and the next version
reuses it as it is (opening a version after a small update costs only its new
rows). Once pending rows grow past a share of the base, a commit writes a new
base file. Dead rows stay in the index and are excluded with an ID selector
until compaction rewrites the store.

The index is always written in CPU format, so it opens on any machine; with a
GPU and `device` allowing it, exact and IVF indexes are copied to the GPU for
unfiltered searches.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from shoplens.common.errors import ConfigError, IndexCorruptError
from shoplens.indexers.storage import atomic_write_json, link_or_copy, read_json
from shoplens.indexers.vector.base import VectorStore, fuse_vectors, ivf_lists, normalize_rows, top_k

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")
DEFAULTS: dict[str, Any] = {
    "kind": "auto",
    "auto_threshold": 20_000,  # rows above which "auto" picks HNSW
    "image_weight": 0.5,  # share of the image embedding in a product's vector
    "hnsw_m": 32,
    "ef_construction": 80,
    "ef_search": 128,
    "nlist": None,  # IVF lists; default 4*sqrt(rows)
    "nprobe": 16,
    "pq_m": None,  # IVF-PQ sub-quantizers; default dim/8
    "exact_below": 20_000,  # filtered searches over at most this many rows are exact
    "rebase_share": 0.1,  # write a new base index when unindexed rows exceed this share
}


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ConfigError("FAISS is not installed; run `pip install faiss-cpu` (or faiss-gpu-cu12 on a GPU machine)") from exc
    return faiss


@contextmanager
def faiss_threads(count: int | None) -> Iterator[None]:
    """Run FAISS with `count` OpenMP threads (None: all cores) and restore afterwards."""
    faiss = _faiss()
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count or os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _quiet_clustering(index) -> None:
    """No "WARNING clustering N points to K centroids" from FAISS on stderr (a small catalog: its lists and PQ
    codebooks train on fewer points than FAISS's rule of thumb; the command says what it built)."""
    index.cp.min_points_per_centroid = 1
    if hasattr(index, "pq"):
        index.pq.cp.min_points_per_centroid = 1


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def resolve_kind(kind: str, rows: int, threshold: int) -> str:
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown vector index kind {kind!r}; use one of {', '.join(INDEX_KINDS)}")
    if kind != "auto":
        return kind
    return "flat" if rows < threshold else "hnsw"


PQ_CENTROIDS = 256  # an IVF-PQ codebook of 8 bits: k-means to 256 centroids needs at least 256 vectors


def build_faiss_index(vectors: np.ndarray, kind: str, params: dict[str, Any]):
    """A new CPU FAISS index of the given kind holding `vectors` (ids 0..n-1)."""
    faiss = _faiss()
    rows, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(params["hnsw_m"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params["ef_construction"])
        index.hnsw.efSearch = int(params["ef_search"])
    elif kind in ("ivf", "ivfpq"):
        nlist = int(params.get("nlist") or ivf_lists(rows))
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            pq_m = int(params.get("pq_m") or max(1, dim // 8))
            if dim % pq_m:
                raise ConfigError(f"pq_m={pq_m} must divide the dimension {dim}")
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        if rows == 0:
            raise ConfigError("an IVF index needs vectors to train on; use kind flat for an empty store")
        if kind == "ivfpq" and rows < PQ_CENTROIDS:  # FAISS's own check is a RuntimeError from its k-means
            raise ConfigError(f"a FAISS ivfpq vector index needs at least {PQ_CENTROIDS} products to train its "
                              f"codebooks, got {rows:,}; index with --vector-index auto, flat, hnsw or ivf")
        sample = 64 * nlist  # k-means on a sample: enough points per list, bounded time on large catalogs
        train = vectors if rows <= sample else vectors[np.random.default_rng(0).choice(rows, sample, replace=False)]
        _quiet_clustering(index)
        index.train(np.ascontiguousarray(train))
        index.nprobe = int(params["nprobe"])
        params["nlist"] = nlist
    else:
        raise ConfigError(f"unknown vector index kind {kind!r}; use one of {', '.join(INDEX_KINDS[1:])}")
    if rows:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class FaissStore(VectorStore):
    """FAISS over fused product vectors, with the raw text and image embeddings kept beside it."""

    name = "faiss"

    def __init__(self, state: dict[str, Any], index, device: str, rows: "RowBuffer",
                 gpu_from: "FaissStore | None" = None):
        self.state = state
        count = int(state["rows"])
        self._rows = rows
        self._files: dict[str, tuple[int, ...]] = {}  # segment file -> (device, inode, size, mtime): links share them
        # views of this version's rows: later versions may append to the buffer, never change these
        self.text, self.image, self.has_image, self.fused = rows.view(count)
        self.kind = state["kind"]
        self.params = dict(state["params"])
        self.base_rows = int(state["base_rows"])
        self.cpu_index = index  # rows [0, base_rows); never modified once opened, so versions share it
        self.gpu_index = None
        self.device = "cpu"
        if gpu_from is not None and gpu_from.gpu_index is not None:
            self._gpu_resources, self.gpu_index, self.device = gpu_from._gpu_resources, gpu_from.gpu_index, "cuda"
        elif device in ("auto", "cuda") and self.kind in ("flat", "ivf", "ivfpq") and gpu_available():
            faiss = _faiss()
            self._gpu_resources = faiss.StandardGpuResources()
            self.gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
            self.device = "cuda"
        elif device == "cuda" and not gpu_available():
            raise ConfigError("--device cuda was asked for but FAISS sees no GPU; use --device auto or cpu")

    # -- writing -----------------------------------------------------------------

    @classmethod
    def write(cls, target, parent, text, image, has_image, segment_name, config):
        target.mkdir(parents=True, exist_ok=True)
        text = normalize_rows(text)
        image = normalize_rows(image)
        has_image = np.asarray(has_image, dtype=bool)
        if parent is not None:
            state = read_json(parent / "state.json")
            for segment in state["segments"]:
                for prefix in ("text", "image", "hasimg", "fused"):
                    source = parent / f"{prefix}-{segment['name']}.npy"
                    if prefix != "fused" or source.exists():  # stores written before fused files lack them
                        link_or_copy(source, target / f"{prefix}-{segment['name']}.npy")
            link_or_copy(parent / state["base_file"], target / state["base_file"])
            if text.shape[0] and text.shape[1] != state["dim"]:
                raise IndexCorruptError(f"new vectors have dimension {text.shape[1]}, the store has {state['dim']}")
        else:
            params = dict(DEFAULTS)
            params.update({k: v for k, v in (config or {}).items() if k in DEFAULTS and v is not None})
            state = {"dim": int(text.shape[1]), "segments": [], "rows": 0, "base_file": None, "base_rows": 0,
                     "params": params, "kind": None}
        if len(text):
            np.save(target / f"text-{segment_name}.npy", text.astype(np.float32))
            np.save(target / f"image-{segment_name}.npy", image.astype(np.float32))
            np.save(target / f"hasimg-{segment_name}.npy", has_image)
            np.save(target / f"fused-{segment_name}.npy",
                    fuse_vectors(text, image, has_image, float(state["params"]["image_weight"])))
            state["segments"].append({"name": segment_name, "rows": int(len(text))})
            state["rows"] += int(len(text))

        pending = state["rows"] - state["base_rows"]
        if state["base_file"] is None or pending > max(1000, state["params"]["rebase_share"] * state["base_rows"]):
            all_text, all_image, all_has = _load_segments(target, state)
            fused = fuse_vectors(all_text, all_image, all_has, float(state["params"]["image_weight"]))
            with faiss_threads(None):
                if state["base_file"] is None:
                    state["kind"] = resolve_kind(state["params"]["kind"], len(fused), state["params"]["auto_threshold"])
                    index = build_faiss_index(fused, state["kind"], state["params"])
                else:
                    index = _read_index(target / state["base_file"])
                    index.add(np.ascontiguousarray(fused[state["base_rows"]:]))
            base_file = f"faiss-{segment_name}.index"
            if state["base_file"]:
                (target / state["base_file"]).unlink(missing_ok=True)
            _faiss().write_index(index, str(target / base_file))
            state["base_file"] = base_file
            state["base_rows"] = state["rows"]
        atomic_write_json(target / "state.json", state)
        return state

    # -- reading -----------------------------------------------------------------

    @classmethod
    def read_rows(cls, directory):
        return _load_segments(directory, read_json(directory / "state.json"))

    @classmethod
    def image_flags(cls, directory):
        state = read_json(directory / "state.json")
        flags = [np.load(directory / f"hasimg-{segment['name']}.npy") for segment in state["segments"]]
        return np.concatenate(flags) if flags else np.zeros(0, bool)

    @classmethod
    def set_search_threads(cls, threads):
        _faiss().omp_set_num_threads(threads)

    @classmethod
    def open(cls, directory, device="auto", previous: "FaissStore | None" = None):
        """Open a version; `previous` (an open earlier version of the same store) lends what did not change.

        Segments are immutable files, so when the previous version's segments
        are a prefix of this one's only the new segments are read, and when
        the base index file is the same its loaded FAISS index is shared.
        """
        state = read_json(directory / "state.json")
        files = _segment_files(directory, state)
        reuse = previous is not None and _extends(previous.state, state) \
            and all(files.get(name) == identity for name, identity in previous._files.items())
        weight = float(state["params"]["image_weight"])
        if reuse:
            known = len(previous.state["segments"])
            text, image, has_image = _load_segments(directory, {**state, "segments": state["segments"][known:]})
            if previous.num_rows + len(text) != int(state["rows"]):
                raise IndexCorruptError(f"vector segments of {directory} hold {previous.num_rows + len(text)} rows, "
                                        f"state says {state['rows']}; run `shoplens check`")
            rows = previous._rows.extended(previous.num_rows, text, image, has_image,
                                           fuse_vectors(text, image, has_image, weight))
        else:
            rows = RowBuffer.load(directory, state, weight)
        same_base = reuse and previous.state["base_file"] == state["base_file"] \
            and previous.state["base_rows"] == state["base_rows"]
        index = previous.cpu_index if same_base else _read_index(directory / state["base_file"])
        if index.ntotal != state["base_rows"]:
            raise IndexCorruptError(
                f"FAISS index holds {index.ntotal} vectors, state says {state['base_rows']}; run `shoplens check`"
            )
        store = cls(state, index, device, rows, gpu_from=previous if same_base else None)
        store._files = files
        return store

    @classmethod
    def summarize(cls, state: dict[str, Any]) -> dict[str, Any]:
        """The settings that matter for a state's index kind (for manifests and `info`)."""
        keys = {"flat": (), "hnsw": ("hnsw_m", "ef_construction", "ef_search"), "ivf": ("nlist", "nprobe"),
                "ivfpq": ("nlist", "nprobe", "pq_m")}[state["kind"]]
        return {"backend": cls.name, "kind": state["kind"], "dim": state["dim"],
                "image_weight": state["params"]["image_weight"], **{key: state["params"][key] for key in keys}}

    def describe(self) -> dict[str, Any]:
        summary = self.summarize(self.state)
        summary.update({key: self.params[key] for key in ("ef_search", "nprobe") if key in summary})
        return {**summary, "device": self.device, "rows": self.num_rows}

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Trade recall for speed at query time (benchmarks sweep these)."""
        if ef_search is not None:
            self.params["ef_search"] = int(ef_search)
        if nprobe is not None:
            self.params["nprobe"] = int(nprobe)

    def _search_params(self, selector=None):
        faiss = _faiss()
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=int(self.params["ef_search"]))
        if self.kind in ("ivf", "ivfpq"):
            return faiss.SearchParametersIVF(sel=selector, nprobe=int(self.params["nprobe"]))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def search(self, query, limit, allowed=None, filters=None):
        query = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.dim:
            raise IndexCorruptError(f"query vector has dimension {query.shape[1]}, the index {self.dim}")
        limit = int(min(limit, self.num_rows))
        if limit <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if allowed is None:
            index = self.gpu_index if self.gpu_index is not None else self.cpu_index
            params = None if self.gpu_index is not None else self._search_params()
            ids, scores = self._index_search(index, query, limit, params)
            return self._with_pending(query[0], ids, scores, None, limit)
        allowed = np.asarray(allowed, dtype=bool)
        if len(allowed) < self.num_rows:  # rows newer than the mask are not allowed
            allowed = np.concatenate([allowed, np.zeros(self.num_rows - len(allowed), bool)])
        allowed = allowed[: self.num_rows]
        candidates = np.flatnonzero(allowed)
        if len(candidates) <= max(limit, int(self.params["exact_below"])) or self.kind == "flat":
            return self._exact(query[0], candidates, limit)
        base_allowed = allowed[: self.base_rows]
        pending = allowed[self.base_rows:]
        faiss = _faiss()
        bits = np.packbits(base_allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(base_allowed), faiss.swig_ptr(bits))
        ids, scores = self._index_search(self.cpu_index, query, limit, self._search_params(selector))
        if len(ids) < min(limit, len(candidates) - int(pending.sum())):  # the graph ran out of allowed neighbours
            return self._exact(query[0], candidates, limit)
        return self._with_pending(query[0], ids, scores, pending, limit)

    def _index_search(self, index, query, limit, params):
        limit = min(limit, index.ntotal)
        if limit <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores, ids = index.search(query, limit, params=params) if params else index.search(query, limit)
        keep = ids[0] >= 0
        ids, scores = ids[0][keep].astype(np.int64), scores[0][keep]
        if self.kind == "ivfpq" and len(ids):  # PQ scores are approximate: rescore the hits with the stored vectors
            exact = self.fused[ids] @ query[0]
            order = np.lexsort((ids, -exact))
            ids, scores = ids[order], exact[order].astype(np.float32)
        return ids, scores

    def _with_pending(self, query: np.ndarray, ids, scores, pending: np.ndarray | None, limit: int):
        """Merge the index's hits with an exact search over rows newer than the base index.

        `pending` masks those rows (None: all of them); they are scored as one
        contiguous slice, which is much faster than gathering them.
        """
        if self.num_rows == self.base_rows:
            return ids, scores
        extra = self.fused[self.base_rows:self.num_rows] @ query
        rows = np.arange(self.base_rows, self.num_rows)
        if pending is not None:
            rows, extra = rows[pending], extra[pending]
            if len(rows) == 0:
                return ids, scores
        extra_ids, extra_scores = top_k(extra, rows, limit)
        return top_k(np.concatenate([scores, extra_scores]), np.concatenate([ids, extra_ids]), limit)

    def _exact(self, query: np.ndarray, candidates: np.ndarray, limit: int):
        scores = self.fused[candidates] @ query
        return top_k(scores, candidates, limit)

    def vectors(self, docnos, parts=None):
        docnos = np.asarray(docnos, dtype=np.int64)
        return {part: getattr(self, part)[docnos] for part in parts or ("text", "image", "fused", "has_image")}


def _read_index(path: Path):
    if not path.is_file():
        raise IndexCorruptError(f"FAISS index file {path} is missing; run `shoplens check`")
    return _faiss().read_index(str(path))


class RowBuffer:
    """Per-row vectors with spare capacity, shared by consecutive versions of a store.

    Rows are append-only, so a newer version appends its rows after an older
    one's and each version reads its own prefix: following an update copies
    only the new rows. A version that is not the buffer's newest (or that does
    not fit) gets a buffer of its own. A buffer may start with a `head`, a
    memory-mapped store's rows (read-only), which it reads in place: its own
    arrays hold the rows after them, so following a freshly opened store does
    not copy the store's rows either.
    """

    def __init__(self, dim: int, capacity: int, head: "RowBuffer | None" = None):
        self.head = head
        self.first = 0 if head is None else head.filled  # the row this buffer's own arrays start at
        self.text = np.empty((capacity, dim), np.float32)
        self.image = np.empty((capacity, dim), np.float32)
        self.fused = np.empty((capacity, dim), np.float32)
        self.has_image = np.empty(capacity, bool)
        self.filled = self.first
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path, state: dict[str, Any], weight: float) -> "RowBuffer":
        """Every segment of a store. One segment with its fused file (a fresh index) is mapped, not read:
        opening costs no copy and no arithmetic; otherwise the segments are read into a new buffer."""
        segments = state["segments"]
        if len(segments) == 1 and (directory / f"fused-{segments[0]['name']}.npy").exists():
            return cls.mapped(directory, segments[0]["name"], int(state["rows"]))
        buffer = cls(int(state["dim"]), _capacity(int(state["rows"])))
        start = 0
        for segment in segments:
            name = segment["name"]
            text = np.load(directory / f"text-{name}.npy", mmap_mode="r")
            image = np.load(directory / f"image-{name}.npy", mmap_mode="r")
            flags = np.load(directory / f"hasimg-{name}.npy")
            fused_file = directory / f"fused-{name}.npy"
            fused = np.load(fused_file, mmap_mode="r") if fused_file.exists() else None
            for offset in range(0, len(text), 65536):  # fused in slices: bounded temporary memory
                chunk = slice(offset, offset + 65536)
                buffer._put(start + offset, text[chunk], image[chunk], flags[chunk],
                            fused[chunk] if fused is not None else
                            fuse_vectors(text[chunk], image[chunk], flags[chunk], weight))
            start += len(text)
        if start != int(state["rows"]):
            raise IndexCorruptError(f"vector segments hold {start} rows, state says {state['rows']}; run `shoplens check`")
        return buffer

    @classmethod
    def mapped(cls, directory: Path, name: str, rows: int) -> "RowBuffer":
        """A full buffer over one segment's files, memory-mapped read-only (extending it makes a new buffer
        that reads these rows in place)."""
        buffer = cls.__new__(cls)
        buffer.head, buffer.first = None, 0
        buffer.text = np.load(directory / f"text-{name}.npy", mmap_mode="r")
        buffer.image = np.load(directory / f"image-{name}.npy", mmap_mode="r")
        buffer.fused = np.load(directory / f"fused-{name}.npy", mmap_mode="r")
        buffer.has_image = np.load(directory / f"hasimg-{name}.npy")
        buffer.filled = len(buffer.text)
        buffer._lock = threading.Lock()
        if buffer.filled != rows or len(buffer.fused) != rows:
            raise IndexCorruptError(f"vector segment {name} holds {buffer.filled} rows, state says {rows}; "
                                    "run `shoplens check`")
        return buffer

    def view(self, rows: int) -> tuple[Any, Any, Any, Any]:
        """(text, image, has_image, fused) of the first `rows` rows: array views, or `StackedRows` over the
        head's rows and this buffer's when they reach past the head."""
        if self.head is None:
            return self.text[:rows], self.image[:rows], self.has_image[:rows], self.fused[:rows]
        if rows <= self.first:
            return self.head.view(rows)
        own = rows - self.first
        return tuple(StackedRows(getattr(self.head, name), getattr(self, name)[:own])
                     for name in ("text", "image", "has_image", "fused"))

    def _put(self, start: int, text, image, has_image, fused) -> None:
        stop = start + len(text)
        local = slice(start - self.first, stop - self.first)
        self.text[local], self.image[local] = text, image
        self.has_image[local], self.fused[local] = has_image, fused
        self.filled = stop

    def extended(self, rows: int, text, image, has_image, fused) -> "RowBuffer":
        """This buffer with rows appended after the first `rows`, or a new buffer when that would overwrite rows
        (or write into a read-only mapped buffer, whose rows the new buffer then reads in place)."""
        with self._lock:
            if not len(text) and self.filled >= rows:
                return self  # nothing added (an update that only deleted or re-weighted): the same rows serve
            if self.filled == rows and rows + len(text) <= self.first + len(self.text) and self.text.flags.writeable:
                self._put(rows, text, image, has_image, fused)
                return self
        dim = self.text.shape[1]
        if not self.text.flags.writeable and self.head is None and rows == self.filled:  # a mapped store
            buffer = RowBuffer(dim, _capacity(len(text)), head=self)
        elif self.head is not None and rows >= self.first:  # the head stays; this buffer's own rows are copied
            buffer = RowBuffer(dim, _capacity(rows - self.first + len(text)), head=self.head)
            buffer._put(self.first, self.text[:rows - self.first], self.image[:rows - self.first],
                        self.has_image[:rows - self.first], self.fused[:rows - self.first])
        else:
            buffer = RowBuffer(dim, _capacity(rows + len(text)))
            buffer._put(0, *(np.asarray(part) for part in self.view(rows)))  # (text, image, has_image, fused)
        buffer._put(rows, text, image, has_image, fused)
        return buffer


class StackedRows:
    """A buffer's rows read as one array where they sit in two (a mapped head, then the buffer's own rows),
    for the ways the store reads them: a slice, row numbers, or the whole (`np.asarray`, a copy)."""

    def __init__(self, head: np.ndarray, tail: np.ndarray):
        self.head, self.tail, self.split = head, tail, len(head)
        self.shape = (len(head) + len(tail),) + tuple(head.shape[1:])
        self.dtype = head.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.concatenate([self.head, self.tail])
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1 and stop <= self.split:
                return self.head[start:stop]
            if step == 1 and start >= self.split:
                return self.tail[start - self.split:stop - self.split]
            return np.asarray(self)[key]
        rows = np.asarray(key)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.ndim == 0:
            return self.head[rows] if rows < self.split else self.tail[rows - self.split]
        in_head = rows < self.split
        if in_head.all():
            return self.head[rows]
        if not in_head.any():
            return self.tail[rows - self.split]
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        out[in_head], out[~in_head] = self.head[rows[in_head]], self.tail[rows[~in_head] - self.split]
        return out


def _capacity(rows: int) -> int:
    """Rows a new buffer has room for: as many again, so following updates appends for a long while
    before a version copies every row again (untouched room is only address space: no memory)."""
    return rows + max(4096, rows)


def _extends(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether state `new` is `old` plus appended segments, with the same settings."""
    count = len(old["segments"])
    return (old["dim"] == new["dim"] and old["kind"] == new["kind"] and old["params"] == new["params"]
            and new["segments"][:count] == old["segments"])


def _segment_files(directory: Path, state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """(device, inode, size, mtime) of each segment's text file: a later version's hard links have the same, a rebuild does not."""
    out = {}
    for segment in state["segments"]:
        try:
            info = os.stat(directory / f"text-{segment['name']}.npy")
        except OSError:
            continue
        out[segment["name"]] = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return out


def _load_segments(directory: Path, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    texts, images, flags = [], [], []
    for segment in state["segments"]:
        name = segment["name"]
        texts.append(np.load(directory / f"text-{name}.npy", mmap_mode="r"))
        images.append(np.load(directory / f"image-{name}.npy", mmap_mode="r"))
        flags.append(np.load(directory / f"hasimg-{name}.npy"))
    dim = state["dim"]
    if not texts:
        empty = np.zeros((0, dim), np.float32)
        return empty, empty.copy(), np.zeros(0, bool)
    return (np.ascontiguousarray(np.concatenate(texts)), np.ascontiguousarray(np.concatenate(images)),
            np.concatenate(flags))
