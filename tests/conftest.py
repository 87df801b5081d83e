"""Shared fixtures. Tests always run on the CPU, with real models, FAISS and tantivy."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # force CPU, also for subprocesses
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

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


