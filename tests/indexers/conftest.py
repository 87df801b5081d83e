"""Fixtures of the indexer tests: search clusters (`make es-up`, `make os-up`) and a read-only mount."""

from __future__ import annotations

import os
import subprocess

import pytest

from shoplens.indexers.lexical.cluster import ELASTICSEARCH, OPENSEARCH

TEST_INDICES = "shoplens-test-*"  # every index the cluster tests create starts so


@pytest.fixture(scope="module")
def drop_test_indices():
    """Remove the cluster indices a test module created, even when a test fails (the clusters outlive the
    test run): on Elasticsearch (SHOPLENS_ES_URL) and OpenSearch (SHOPLENS_OS_URL), where set. A module
    that creates indices names it in `pytestmark = pytest.mark.usefixtures("drop_test_indices")`."""
    yield
    for cluster in (ELASTICSEARCH, OPENSEARCH):
        if os.environ.get(cluster.env):
            cluster.client(os.environ[cluster.env]).indices.delete(
                index=TEST_INDICES, ignore_unavailable=True, allow_no_indices=True)


@pytest.fixture
def read_only_copy(tmp_path):
    """A read-only bind mount of a folder (root in a VM may mount; elsewhere the test is skipped)."""
    source, mount = tmp_path / "source", tmp_path / "ro"
    source.mkdir()
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield source, mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # lazy: files may still be open
