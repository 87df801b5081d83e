"""An XGBoost tree ensemble compiled to a shared library, so serving predicts with native code.

tl2cgen writes the trees as C (one nested `if` per tree, thresholds as float32 constants, a missing value
going the way XGBoost's `default_left` says), split into units of a few trees; a small batch function added
here fills tl2cgen's per-row input (NaN is missing) and runs every row through one unit before the next, so
the unit's code stays in cache (row by row, 350 trees' code is walked per row and it is slower than ONNX
Runtime). The system's C compiler (gcc, cc or clang, or $CC) builds both into `ranker-KEY.so` in the
index's cache, KEY being the model file's content, this layout, tl2cgen's version and the machine, so a
version that carries the ranker over, or a copy of the index, finds it. Compiling takes seconds to a minute (350 trees: about 11 s of CPU), so it is
done by `train-ranker` and by `warm_rows` (serving, benchmarks), never on a query; until a library exists
the ranker predicts with ONNX Runtime. Scores equal XGBoost's up to float32 summation order (about 1e-7).

Loading a library runs its code: it is only ever read from the index's own cache, where train-ranker or the
warm-up wrote it (nothing is fetched).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from shoplens.indexers.index import model_digest

BATCH_SOURCE = r"""
#include <math.h>
#include <stdlib.h>
#include "header.h"

typedef void (*unit_fn)(union Entry*, float*);
static const unit_fn UNITS[] = {%(units)s};
#define N_UNITS (sizeof(UNITS) / sizeof(UNITS[0]))

/* Every row of a row-major float32 matrix (NaN: missing) through the compiled trees, out[r] = margin.
   Unit by unit (a few trees each), every row through one unit before the next: that unit's code stays in
   the instruction cache, where row by row the whole ensemble's code would be walked for each row. */
void shoplens_predict_rows(const float* rows, long count, int width, float* out) {
  if (count <= 0) return;
  union Entry* entries = (union Entry*)malloc(sizeof(union Entry) * (size_t)count * (size_t)width);
  if (entries == NULL) { for (long r = 0; r < count; ++r) out[r] = NAN; return; }
  for (long i = 0; i < count * (long)width; ++i) {
    if (isnan(rows[i])) { entries[i].missing = -1; } else { entries[i].fvalue = rows[i]; }
  }
  float whole[1] = {0.0f}, parts[1] = {0.0f};  /* the base score tl2cgen's predict() adds after its units */
  predict(entries, 1, whole);
  for (size_t u = 0; u < N_UNITS; ++u) UNITS[u](entries, parts);
  const float base = whole[0] - parts[0];
  for (long r = 0; r < count; ++r) out[r] = 0.0f;
  for (size_t u = 0; u < N_UNITS; ++u) {
    for (long r = 0; r < count; ++r) UNITS[u](entries + r * (long)width, out + r);
  }
  for (long r = 0; r < count; ++r) out[r] += base;
  free(entries);
}
"""
TREES_PER_UNIT = 6  # tl2cgen's `parallel_comp` units: small enough for one unit's code to stay in L1/L2 cache
LIBRARY_FORMAT = 2  # the batch function's layout: part of the library's key
COMPILE_FLAGS = ("-O1", "-shared", "-fPIC", "-std=c99")
COMPILE_TIMEOUT_S = 1800


class CompileError(Exception):
    """The trees could not be compiled (no compiler, tl2cgen missing, an unsupported model)."""


def compiler() -> str | None:
    """The C compiler to build with: $CC, else gcc, cc or clang on the PATH; None when there is none."""
    named = os.environ.get("CC")
    if named:
        return shutil.which(named)
    return next((found for found in map(shutil.which, ("gcc", "cc", "clang")) if found), None)


def library_path(model_path: Path, cache_dir: Path) -> Path:
    """Where the compiled library of a model file lives in an index's cache (by content, not file identity)."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update(f"{LIBRARY_FORMAT}|{TREES_PER_UNIT}|{_tl2cgen_version()}|{sys.platform}|{platform.machine()}".encode())
    # the model's digest first: `IndexDirectory.prune` deletes the files of models no version keeps
    return cache_dir / f"ranker-{model_digest(model_path)}-{digest.hexdigest()}.so"


def compile_library(model_path: Path, target: Path) -> Path:
    """Generate the model's C code with tl2cgen and compile it into `target` (written atomically).
    Raises CompileError when there is no compiler, tl2cgen is missing or the model cannot be converted."""
    cc = compiler()
    if cc is None:
        raise CompileError("no C compiler found (gcc, cc or clang; or set CC)")
    try:
        import tl2cgen
        import treelite
    except ImportError as exc:
        raise CompileError(f"tl2cgen is not installed ({exc.name}): pip install tl2cgen") from None
    with tempfile.TemporaryDirectory(prefix="shoplens-trees-") as work:
        source = Path(work) / "src"
        try:
            with warnings.catch_warnings():  # XGBoost's newer JSON keys ("cats") that treelite skips
                warnings.simplefilter("ignore")
                model = treelite.frontend.from_xgboost_json(model_path.read_bytes(), allow_unknown_field=True)
            units = max(1, -(-model.num_tree // TREES_PER_UNIT))
            with contextlib.redirect_stdout(io.StringIO()):  # tl2cgen prints its log lines
                tl2cgen.generate_c_code(model, dirpath=str(source), params={"parallel_comp": units})
        except Exception as exc:  # noqa: BLE001 - treelite/tl2cgen raise their own error types
            raise CompileError(f"tl2cgen could not convert the model: {str(exc).splitlines()[0][:200]}") from None
        names = re.findall(r"void (predict_unit\d+)\(union Entry\* data, float\* result\);",
                           (source / "header.h").read_text(encoding="utf-8"))
        if not names:
            raise CompileError("tl2cgen wrote no prediction units (an unexpected tl2cgen version)")
        (source / "batch.c").write_text(BATCH_SOURCE % {"units": ", ".join(names)}, encoding="utf-8")
        built = Path(work) / "ranker.so"
        command = [cc, *COMPILE_FLAGS, "-o", str(built), *sorted(map(str, source.glob("*.c"))), "-lm"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
        if result.returncode != 0:
            raise CompileError(f"{Path(cc).name} failed: {(result.stderr or '').strip().splitlines()[-1:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(built, partial)
        os.replace(partial, target)
    return target


class CompiledTrees:
    """A compiled ensemble loaded with ctypes; `predict` releases the GIL and is safe from several threads
    (the library keeps no state)."""

    def __init__(self, path: Path, features: int):
        self.path = path
        library = ctypes.CDLL(str(path))
        library.get_num_feature.restype = ctypes.c_int32
        if library.get_num_feature() != features:
            raise OSError(f"{path.name} reads {library.get_num_feature()} features, the model has {features}")
        self._predict = library.shoplens_predict_rows
        self._predict.restype = None
        self._predict.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_void_p]
        self.features = features

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The margin of each row of a (rows x features) matrix, NaN where a value is missing."""
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.features:
            raise ValueError(f"expected rows of {self.features} features, got shape {rows.shape}")
        out = np.empty(len(rows), dtype=np.float32)
        self._predict(rows.ctypes.data, len(rows), self.features, out.ctypes.data)
        return out


def load_compiled(model_path: Path, cache_dir: Path, features: int, build: bool = False) -> tuple[CompiledTrees | None, str]:
    """The model's compiled trees from the index's cache, compiling them first when `build` (off the query
    path only); (None, why) when there is no library or it cannot be built or loaded."""
    target = library_path(model_path, cache_dir)
    if not target.is_file():
        if not build:
            return None, "not compiled yet: train-ranker and serving's warm-up compile them"
        try:
            compile_library(model_path, target)
        except (CompileError, OSError, subprocess.SubprocessError) as exc:
            return None, f"not compiled: {exc}"
    try:
        return CompiledTrees(target, features), f"compiled ({target.name})"
    except (OSError, AttributeError) as exc:
        return None, f"compiled library failed to load: {exc}"


def _tl2cgen_version() -> str:
    try:
        from importlib.metadata import version

        return version("tl2cgen")
    except Exception:  # noqa: BLE001 - not installed: the key still names the model
        return "none"
