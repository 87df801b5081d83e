"""The reranker's trees compiled to native code (tl2cgen + the C compiler) score as XGBoost does."""

import shutil

import numpy as np
import pytest

from shoplens.rerank.features import FEATURE_NAMES
from shoplens.rerank.model import Ranker, compile_saved_trees
from shoplens.rerank.tree_compile import CompiledTrees, compiler, library_path, load_compiled
from tests.helpers import fast_ranker, trained_copy
from tests.rerank.test_tree_onnx import trained_model

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler on this machine")


def test_compiled_trees_score_as_xgboost(tmp_path):
    booster, path, rng = trained_model(tmp_path)
    compiled, note = load_compiled(path, tmp_path / "cache", len(FEATURE_NAMES), build=True)
    assert isinstance(compiled, CompiledTrees), note
    rows = rng.normal(size=(300, len(FEATURE_NAMES))).astype(np.float32) * 2
    rows[rng.random(rows.shape) < 0.4] = np.nan  # missing values take XGBoost's default direction
    expected = booster.inplace_predict(rows, validate_features=False)
    np.testing.assert_allclose(compiled.predict(rows), expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.5  # the trees do split these rows
    assert compiled.path == library_path(path, tmp_path / "cache")  # named by the model's content
    again, _ = load_compiled(path, tmp_path / "cache", len(FEATURE_NAMES))  # read from the cache, not rebuilt
    np.testing.assert_array_equal(again.predict(rows), compiled.predict(rows))
    with pytest.raises(ValueError, match="features"):
        compiled.predict(rows[:, :10])


def test_no_compiler_or_a_broken_library_falls_back(tmp_path, monkeypatch):
    _, path, _ = trained_model(tmp_path, rounds=5)
    with monkeypatch.context() as patch:
        patch.setenv("CC", "no-such-compiler-here")
        compiled, note = load_compiled(path, tmp_path / "cache", len(FEATURE_NAMES), build=True)
    assert compiled is None and "no C compiler" in note
    target = library_path(path, tmp_path / "cache")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a shared library")
    compiled, note = load_compiled(path, tmp_path / "cache", len(FEATURE_NAMES), build=True)
    assert compiled is None and "failed to load" in note


@pytest.fixture(scope="module")
def trained(sample_index, tmp_path_factory):
    return trained_copy(sample_index, tmp_path_factory.mktemp("compiled"), fast_ranker(), queries=160, sessions=3000,
                        seed=3, photo_queries=0, text_photo_queries=0)


def test_the_sample_ranker_is_compiled_at_training_and_scores_as_xgboost(trained, encoder):
    from shoplens.engine.query import SearchRequest
    from shoplens.engine.search import SearchEngine

    index, _, report = trained
    assert report.predictor.startswith("native: compiled"), report.predictor
    engine = SearchEngine(index, encoder=encoder)
    ranker = engine.ranker(engine.snapshot)
    assert isinstance(ranker.predictor, CompiledTrees) and ranker.predictor_note.startswith("native")
    for text in ("red dress for women", "men running shoes under 2000", "blue jeans"):
        candidates = engine.retrieve(SearchRequest(text=text, k=10), {}, for_rerank=True)[1]
        features = ranker.features(engine.snapshot, text, candidates)
        expected = ranker.booster.inplace_predict(features, validate_features=False)
        np.testing.assert_allclose(ranker.score(features), expected, rtol=0, atol=1e-5)
    engine.close()


def test_a_model_without_a_library_predicts_with_onnx_until_warmed(trained, encoder, tmp_path):
    from shoplens.engine.query import SearchRequest
    from shoplens.engine.search import SearchEngine
    from shoplens.rerank import model

    index = tmp_path / "index"
    shutil.copytree(trained[0], index)
    for library in (index / "cache" / "ranker").glob("ranker-*.so"):
        library.unlink()  # as an index trained before the trees were compiled
    model._PREDICTORS.clear()
    engine = SearchEngine(index, encoder=encoder)
    ranker = engine.ranker(engine.snapshot)
    assert not isinstance(ranker.predictor, CompiledTrees) and "not compiled yet" in ranker.predictor_note
    request = SearchRequest(text="red dress for women", k=10)
    before = [r.id for r in engine.search(request).results]
    engine.warm_rows()  # serving's warm-up compiles them
    assert isinstance(ranker.predictor, CompiledTrees) and ranker.predictor_note.startswith("native")
    assert [r.id for r in engine.search(request).results] == before
    engine.close()
    assert compile_saved_trees(index, engine.snapshot.version).startswith("native: compiled")
    assert isinstance(Ranker.load(engine.snapshot.path / "ranker", engine.snapshot).predictor, CompiledTrees)


def test_bench_latency_compares_compiled_trees_with_onnx_in_one_run(trained, tmp_path):
    from shoplens.benchmarks import latency

    queries = tmp_path / "queries.txt"
    queries.write_text("red dress for women\nblue jeans\nmen running shoes\n")
    report = latency.run(trained[0], queries, clients=[1], device="cpu", compare_trees=True)
    names = report.extra["summary"]["runtimes"]
    assert len(names) == 2 and names[1].endswith(latency.ONNX_TREES)
    assert any("native: compiled" in note for note in report.notes)
    assert any(note.startswith(names[1]) and "onnx runtime (asked for)" in note for note in report.notes)
    assert report.extra["summary"][f"text ({names[1]})"]["stages"]["rerank"]["p50"] > 0


def test_pruning_versions_deletes_the_cached_trees_of_models_no_version_keeps(trained, tmp_path):
    from shoplens.indexers.index import IndexDirectory, model_digest

    index = tmp_path / "index"
    shutil.copytree(trained[0], index)
    directory = IndexDirectory(index)
    cache = index / "cache" / "ranker"
    model = directory.version_path(directory.current_version()) / "ranker" / "model.json"
    current = [path for path in cache.iterdir() if path.name.startswith(f"ranker-{model_digest(model)}-")]
    assert any(path.suffix == ".so" for path in current)  # the trained model's library, named by its model
    gone = cache / "ranker-0123456789abcdef-00112233445566778899.so"  # a replaced model's (no version has it)
    older = cache / "ranker-0f04fc538c9afca7f89e.onnx"  # the naming before models led the name
    unrelated = cache / ".ranker-x.so.123.tmp"  # another process's file being written
    for path in (gone, older, unrelated):
        path.write_bytes(b"x")
    assert len(directory.committed_versions()) > 1
    assert directory.prune(1)
    assert not gone.exists() and not older.exists() and unrelated.exists()
    assert all(path.exists() for path in current)
    assert directory.prune(1) == [] and unrelated.exists()  # nothing pruned: nothing trimmed
    assert compile_saved_trees(index, directory.current_version()).startswith("native: compiled")
