"""Concurrent clients as processes, each with its own engine on the index (`bench latency --client-processes`)."""

import pytest

from shoplens.benchmarks.client_processes import replay_processes
from shoplens.common.errors import ConfigError
from shoplens.engine.query import SearchRequest

QUERIES = ["red dress", "blue jeans for men", "running shoes", "black watch", "white shirt", "kids bag",
           "wallet", "sunglasses", "saree", "sports shoes"]


def test_each_process_answers_its_share(sample_index):
    requests = [SearchRequest(text=text) for text in QUERIES]
    result = replay_processes(sample_index, requests, clients=2, k=5, device="cpu")
    assert result["clients"] == 2 and result["n"] == len(QUERIES)  # every query answered once, by one process
    assert result["qps"] > 0 and result["total"]["p50"] > 0


def test_a_process_that_cannot_open_the_index_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match="a client process did not open the index or answer: .*index"):
        replay_processes(tmp_path / "no-index", [SearchRequest(text="red dress")], clients=1, device="cpu")
