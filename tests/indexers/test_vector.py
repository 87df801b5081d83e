import numpy as np
import pytest

from shoplens.common.errors import ConfigError
from shoplens.indexers.vector import vector_store_class
from shoplens.indexers.vector.base import fuse_vectors, normalize_rows, top_k
from shoplens.indexers.vector.faiss_store import FaissStore, StackedRows, resolve_kind

DIM = 32


def random_vectors(n, seed):
    return normalize_rows(np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32))


def write(tmp_path, name, n, kind, parent=None, seed=0, config=None, has_image=None):
    text, image = random_vectors(n, seed), random_vectors(n, seed + 1000)
    flags = np.ones(n, bool) if has_image is None else has_image
    FaissStore.write(tmp_path / name, parent, text, image, flags, name, {"kind": kind, **(config or {})})
    return text, image, flags


def exact(text, image, flags, query, k, weight=0.5):
    fused = fuse_vectors(text, image, flags, weight)
    return top_k(fused @ query, np.arange(len(fused)), k)


def test_fused_vector_is_weighted_and_text_only_without_image():
    text = np.array([[1, 0], [1, 0]], np.float32)
    image = np.array([[0, 1], [0, 1]], np.float32)
    fused = fuse_vectors(text, image, np.array([True, False]), 0.5)
    np.testing.assert_allclose(fused[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(fused[1], [1, 0])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_each_kind_finds_the_nearest_rows(tmp_path, kind):
    text, image, flags = write(tmp_path, "v1", 3000, kind, config={"nprobe": 64, "ef_search": 256})
    store = FaissStore.open(tmp_path / "v1", device="cpu")
    assert store.kind == kind and store.num_rows == 3000 and store.dim == DIM
    queries = random_vectors(20, 99)
    recalls = []
    for query in queries:
        expected, _ = exact(text, image, flags, query, 10)
        found, scores = store.search(query, 10)
        assert len(found) == 10
        assert np.all(np.diff(scores) <= 1e-5)
        recalls.append(len(set(found) & set(expected)) / 10)
    assert np.mean(recalls) >= {"flat": 1.0, "hnsw": 0.95, "ivf": 0.9, "ivfpq": 0.4}[kind]


def test_auto_kind_uses_exact_search_below_the_threshold():
    assert resolve_kind("auto", 19_999, 20_000) == "flat"
    assert resolve_kind("auto", 20_000, 20_000) == "hnsw"
    with pytest.raises(ConfigError, match="flat, hnsw"):
        resolve_kind("lsh", 10, 20_000)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_allowed_mask_is_respected_and_fills_k(tmp_path, kind):
    text, image, flags = write(tmp_path, "v1", 2000, kind, config={"exact_below": 50})
    store = FaissStore.open(tmp_path / "v1", device="cpu")
    query = random_vectors(1, 5)[0]
    allowed = np.zeros(2000, bool)
    allowed[::3] = True
    found, _ = store.search(query, 15, allowed)
    assert len(found) == 15 and all(d % 3 == 0 for d in found)
    few = np.zeros(2000, bool)
    few[[7, 1500, 1999]] = True  # far fewer rows than k: all of them come back
    found, _ = store.search(query, 10, few)
    assert sorted(found.tolist()) == [7, 1500, 1999]


def test_incremental_rows_keep_docnos_and_the_parent_version(tmp_path):
    text1, image1, flags1 = write(tmp_path, "v1", 500, "hnsw")
    text2, image2, flags2 = write(tmp_path, "v2", 30, "hnsw", parent=tmp_path / "v1", seed=7)
    old = FaissStore.open(tmp_path / "v1", device="cpu")
    new = FaissStore.open(tmp_path / "v2", device="cpu")
    assert old.num_rows == 500 and new.num_rows == 530
    # a new row is found by its own vector, under docno 500 + i
    fused_new = fuse_vectors(text2, image2, flags2, 0.5)
    found, scores = new.search(fused_new[4], 1)
    assert found[0] == 504 and scores[0] == pytest.approx(1.0, abs=1e-4)
    assert new.state["base_rows"] == 500  # small updates do not rewrite the base index
    np.testing.assert_allclose(new.vectors([504])["text"][0], text2[4], rtol=1e-6)


def test_large_update_writes_a_new_base_index(tmp_path):
    write(tmp_path, "v1", 500, "flat")
    write(tmp_path, "v2", 1200, "flat", parent=tmp_path / "v1", seed=3)
    store = FaissStore.open(tmp_path / "v2", device="cpu")
    assert store.state["base_rows"] == 1700 and store.cpu_index.ntotal == 1700
    assert (tmp_path / "v1" / FaissStore.open(tmp_path / "v1", "cpu").state["base_file"]).exists()


def test_rows_without_image_use_the_text_embedding(tmp_path):
    flags = np.zeros(50, bool)
    text, image, _ = write(tmp_path, "v1", 50, "flat", has_image=flags)
    store = FaissStore.open(tmp_path / "v1", device="cpu")
    found, scores = store.search(text[10], 1)
    assert found[0] == 10 and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_saved_index_is_cpu_format_and_describes_itself(tmp_path):
    write(tmp_path, "v1", 100, "flat")
    store = vector_store_class("faiss").open(tmp_path / "v1", device="cpu")
    info = store.describe()
    assert info["backend"] == "faiss" and info["kind"] == "flat" and info["device"] == "cpu"
    with pytest.raises(ConfigError, match="no GPU"):
        FaissStore.open(tmp_path / "v1", device="cuda")


def test_unknown_backend():
    with pytest.raises(ConfigError, match="faiss"):
        vector_store_class("annoy")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_opening_a_newer_version_reuses_the_previous_one(tmp_path, kind):
    text1, image1, flags1 = write(tmp_path, "v1", 2000, kind)
    text2, image2, flags2 = write(tmp_path, "v2", 40, kind, parent=tmp_path / "v1", seed=5)
    old = FaissStore.open(tmp_path / "v1", device="cpu")
    fresh = FaissStore.open(tmp_path / "v2", device="cpu")
    reused = FaissStore.open(tmp_path / "v2", device="cpu", previous=old)
    assert reused.cpu_index is old.cpu_index and old.cpu_index.ntotal == 2000  # shared, and never grown
    np.testing.assert_array_equal(reused.fused, fresh.fused)
    np.testing.assert_array_equal(reused.text, fresh.text)
    np.testing.assert_array_equal(reused.has_image, fresh.has_image)
    # a fresh one-segment store is mapped from its files (opening computes and copies nothing) ...
    assert isinstance(old.fused, np.memmap) and len(old.fused) == 2000
    np.testing.assert_allclose(old.fused, fuse_vectors(text1, image1, flags1, 0.5), atol=1e-6)
    # ... newer versions read those rows in place and put their own rows after them in a growable buffer,
    # where later versions append in place
    assert isinstance(reused.fused, StackedRows) and np.shares_memory(reused.fused.head, old.fused)
    write(tmp_path, "v3", 30, kind, parent=tmp_path / "v2", seed=9)
    newer = FaissStore.open(tmp_path / "v3", device="cpu", previous=reused)
    assert np.shares_memory(newer.fused.tail, reused.fused.tail) and len(newer.fused) == 2070
    assert np.shares_memory(newer.fused.head, old.fused)
    np.testing.assert_array_equal(newer.fused, FaissStore.open(tmp_path / "v3", device="cpu").fused)
    rows = np.array([2069, 5, 2000, 1999, 2040])  # gathered across both parts, in the order asked
    np.testing.assert_array_equal(newer.fused[rows], np.asarray(newer.fused)[rows])
    np.testing.assert_array_equal(newer.text[1990:2050], np.asarray(newer.text)[1990:2050])
    # another version branching from v1 must not overwrite the rows v2 reads
    write(tmp_path, "v2b", 40, kind, parent=tmp_path / "v1", seed=77)
    branch = FaissStore.open(tmp_path / "v2b", device="cpu", previous=old)
    assert not np.shares_memory(branch.fused.tail, reused.fused.tail)
    np.testing.assert_array_equal(reused.fused, fresh.fused)
    np.testing.assert_array_equal(branch.fused, FaissStore.open(tmp_path / "v2b", device="cpu").fused)
    all_text, all_image = np.concatenate([text1, text2]), np.concatenate([image1, image2])
    all_flags = np.concatenate([flags1, flags2])
    for row in (3, 2010, 2039):  # base rows and pending rows, found with and without a mask
        query = fuse_vectors(all_text, all_image, all_flags, 0.5)[row]
        assert reused.search(query, 5)[0][0] == row
        mask = np.ones(2040, bool)
        mask[row] = False
        assert row not in reused.search(query, 5, mask)[0]
    # pending rows merged with the index's hits give the exact top-k
    query = random_vectors(1, 99)[0]
    expected, _ = exact(all_text, all_image, all_flags, query, 10)
    found, _ = reused.search(query, 10)
    assert len(set(found) & set(expected)) >= (10 if kind == "flat" else 9)


def test_a_rewritten_store_is_read_again(tmp_path):
    write(tmp_path, "v1", 500, "flat")
    write(tmp_path, "v2", 1200, "flat", parent=tmp_path / "v1", seed=3)  # large: a new base file
    old = FaissStore.open(tmp_path / "v1", device="cpu")
    reused = FaissStore.open(tmp_path / "v2", device="cpu", previous=old)
    assert reused.cpu_index is not old.cpu_index and reused.cpu_index.ntotal == 1700
    write(tmp_path, "other", 600, "flat", seed=8)  # not an extension of v1: nothing is borrowed
    other = FaissStore.open(tmp_path / "other", device="cpu", previous=old)
    assert other.num_rows == 600 and other.cpu_index is not old.cpu_index


def test_a_store_rebuilt_under_the_same_names_is_not_taken_for_the_old_one(tmp_path):
    import shutil

    write(tmp_path, "v1", 300, "flat")
    old = FaissStore.open(tmp_path / "v1", device="cpu")
    shutil.rmtree(tmp_path / "v1")
    write(tmp_path, "v1", 300, "flat", seed=9)  # same segment names and sizes, other vectors
    reopened = FaissStore.open(tmp_path / "v1", device="cpu", previous=old)
    np.testing.assert_array_equal(reopened.fused, FaissStore.open(tmp_path / "v1", device="cpu").fused)
    assert not np.shares_memory(reopened.fused, old.fused)


def test_pq_hits_carry_exact_scores_and_merge_with_newer_rows(tmp_path):
    write(tmp_path, "v1", 3000, "ivfpq", config={"nprobe": 64})
    text2, image2, flags2 = write(tmp_path, "v2", 50, "ivfpq", parent=tmp_path / "v1", seed=4)
    store = FaissStore.open(tmp_path / "v2", device="cpu")
    assert store.base_rows == 3000 and store.num_rows == 3050
    query = fuse_vectors(text2, image2, flags2, 0.5)[7]
    found, scores = store.search(query, 20)
    np.testing.assert_allclose(scores, store.fused[found] @ query, rtol=1e-5)  # one scale for both kinds of row
    assert found[0] == 3007 and list(scores) == sorted(scores, reverse=True)


def test_ivfpq_on_fewer_vectors_than_its_codebook_is_a_config_error(tmp_path):
    """`shoplens index` of a 30-product catalog with --vector-index ivfpq ended in FAISS's RuntimeError
    ("Number of training points (30) should be at least as large as number of clusters") and a traceback;
    an 8-bit PQ codebook needs 256 vectors, and fewer are now one ConfigError naming the kinds that work."""
    with pytest.raises(ConfigError, match=r"ivfpq vector index needs at least 256 products .* got 255; index with"):
        write(tmp_path, "v1", 255, "ivfpq")
    assert not (tmp_path / "v1" / "state.json").exists()
    write(tmp_path, "v2", 256, "ivfpq")
    assert FaissStore.open(tmp_path / "v2", device="cpu").kind == "ivfpq"


@pytest.mark.parametrize("kind, rows", [("ivf", 20), ("ivf", 500), ("ivfpq", 300)])
def test_ivf_on_a_small_catalog_trains_without_faiss_warnings(capfd, kind, rows):
    """FAISS prints "WARNING clustering N points to K centroids" on stderr when lists or PQ codebooks train on
    fewer points than its rule of thumb; a small catalog is not a warning the user can act on."""
    from shoplens.indexers.vector.faiss_store import DEFAULTS, build_faiss_index

    vectors = np.random.default_rng(0).normal(size=(rows, 32)).astype(np.float32)
    index = build_faiss_index(vectors, kind, {**DEFAULTS, "nlist": 8 if rows >= 300 else None})
    assert index.ntotal == rows and index.is_trained
    assert "WARNING" not in capfd.readouterr().err


def test_ivf_lists_grow_with_the_square_root_and_keep_39_rows_a_list():
    """One rule for FAISS IVF and the Elasticsearch IVF lists."""
    from shoplens.indexers.vector.base import ivf_lists

    assert [ivf_lists(n) for n in (0, 20, 100, 1500, 44_441, 1_000_000)] == [1, 1, 2, 38, 843, 4000]


@pytest.mark.parametrize("rows", [0, 20, 400])
def test_the_elasticsearch_ivf_store_writes_its_lists_without_a_cluster(tmp_path, rows):
    """The IVF store's files and its rows' list numbers (what its documents carry), for any number of rows: none
    (a compaction of an emptied index) gives one list that later rows join."""
    from shoplens.indexers.vector.base import ivf_lists
    from shoplens.indexers.vector.elasticsearch_store import CENTROIDS_KEY, ElasticsearchVectorStore, nearest_lists

    rng = np.random.default_rng(rows)
    text, image = rng.normal(size=(rows, 16)).astype(np.float32), rng.normal(size=(rows, 16)).astype(np.float32)
    first = ElasticsearchVectorStore.write(tmp_path / "v1", None, text, image, np.ones(rows, bool), "000001",
                                           {"kind": "ivf"})
    assert first["params"]["nlist"] == ivf_lists(rows) == len(first[CENTROIDS_KEY])
    assert (tmp_path / "v1" / first["params"]["centroids"]).is_file() and CENTROIDS_KEY not in \
        (tmp_path / "v1" / "state.json").read_text()
    more = rng.normal(size=(5, 16)).astype(np.float32)
    second = ElasticsearchVectorStore.write(tmp_path / "v2", tmp_path / "v1", more, more, np.ones(5, bool), "000002",
                                            {"kind": "ivf"})
    np.testing.assert_array_equal(second[CENTROIDS_KEY], first[CENTROIDS_KEY])  # updates join the same lists
    fields = ElasticsearchVectorStore.lexical_fields(second, more, more, np.ones(5, bool))
    np.testing.assert_array_equal(fields["vec_list"], nearest_lists(fields["vec"], first[CENTROIDS_KEY], 1)[:, 0])
    assert fields["vec_list"].min() >= 0 and fields["vec_list"].max() < len(first[CENTROIDS_KEY])
