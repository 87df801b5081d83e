"""Shared fixtures. Tests always run on the CPU, with real models, FAISS and tantivy."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # force CPU, also for subprocesses
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests: a quick profile for every run, a long one for `make fuzz` (SHOPLENS_FUZZ_PROFILE=fuzz).
# The deadline bounds the time of one example (a hang fails the test through tests.helpers.bounded).
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("SHOPLENS_FUZZ_PROFILE", "ci"))

from tests.helpers import SAMPLE, write_catalog, sample_products  # noqa: E402,F401


@pytest.fixture(scope="session")
def encoder():
    from shoplens.indexers.encoders import create_encoder

    return create_encoder(device="cpu")


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, encoder) -> Path:
    """The whole bundled sample (1,500 products), indexed once per test session. Treat as read-only."""
    from shoplens.indexers.writer import WriteOptions, build_index

    path = tmp_path_factory.mktemp("sample") / "index"
    prebuilt = os.environ.get("SHOPLENS_TEST_SAMPLE_INDEX")  # a sample index built by this same checkout
    if prebuilt:
        import shutil

        shutil.copytree(prebuilt, path)
        return path
    build_index(SAMPLE, path, WriteOptions(device="cpu"), encoder=encoder)
    return path


@pytest.fixture
def small_catalog(tmp_path) -> Path:
    """60 real products from the sample, in a catalog file of their own."""
    return write_catalog(tmp_path / "small.jsonl", sample_products(60))


@pytest.fixture
def small_index(tmp_path, small_catalog, encoder) -> Path:
    """A writable index of the 60-product catalog."""
    from shoplens.indexers.writer import WriteOptions, build_index

    path = tmp_path / "index"
    build_index(small_catalog, path, WriteOptions(device="cpu"), encoder=encoder)
    return path




@pytest.fixture
def unwritable_index(small_index) -> Path:
    """A copy of the 60-product index that the test's user may read but not write (chmod a-w; open it inside
    `tests.helpers.as_a_user_who_cannot_write`). It lives in a folder of its own that `nobody` can reach
    (pytest's tmp_path is private to root)."""
    import shutil
    import tempfile

    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.snapshot import Snapshot
    from tests.helpers import set_modes

    Snapshot.open(IndexDirectory(small_index), device="cpu")  # every module opening needs, imported while root
    folder = Path(tempfile.mkdtemp(prefix="shoplens-unwritable-"))
    folder.chmod(0o755)
    copy = shutil.copytree(small_index, folder / "ix")
    set_modes(copy, writable=False)
    try:
        yield copy
    finally:
        set_modes(copy, writable=True)
        shutil.rmtree(folder)
