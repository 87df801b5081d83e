"""Fixtures of the indexer tests that talk to a search cluster (`make es-up`, `make os-up`)."""

from __future__ import annotations

import os

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
