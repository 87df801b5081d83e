# Two entry points: `make demo` (install, index the bundled sample, search it) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.shoplens-installed
DEMO_INDEX ?= .demo/shoplens-index

.PHONY: install browser demo test test-es8 fuzz bench-full clean es-up es-down es8-up es8-down os-up os-down

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# an editable install leaves ShopLens's own modules uncompiled; compile them once so a one-shot
	# `shoplens search` does not (where PYTHONDONTWRITEBYTECODE is set, it would on every call)
	$(BIN)/python -m compileall -q -j 0 cli.py __init__.py __main__.py benchmarks commands common engine indexers rerank service training tui
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf .demo
	$(BIN)/shoplens index data/myntra-sample/products.jsonl --index $(DEMO_INDEX)
	$(BIN)/shoplens info --index $(DEMO_INDEX)
	$(BIN)/shoplens search "navy blue casual shirt for men" --index $(DEMO_INDEX) -k 5
	$(BIN)/shoplens search "running shoes" --filter "price<=3000" --index $(DEMO_INDEX) -k 5
	$(BIN)/shoplens search --image data/myntra-sample/images/10183.jpg --index $(DEMO_INDEX) -k 5
	@echo "--- a reranker, trained on text, photo and text+photo queries derived from the sample and simulated behaviour (not real data) ---"
	$(BIN)/shoplens bench devdata --index $(DEMO_INDEX) --catalog data/myntra-sample/products.jsonl --out .demo/devdata --queries 300 --sessions 4000
	$(BIN)/shoplens events .demo/devdata/events.simulated.jsonl --index $(DEMO_INDEX)
	$(BIN)/shoplens train-ranker .demo/devdata/judgments.train.jsonl --validation .demo/devdata/judgments.validation.jsonl --index $(DEMO_INDEX)
	$(BIN)/shoplens eval .demo/devdata/judgments.test.jsonl --index $(DEMO_INDEX)
	$(BIN)/shoplens search "black leather wallet" --image data/myntra-sample/images/41259.jpg --filter "price<=1500" --index $(DEMO_INDEX) -k 3 --explain
	@echo "--- stated intent: a price ceiling and a colour read from the query (a preference; --strict-intent filters) ---"
	$(BIN)/shoplens search "white sneakers under 2000" --index $(DEMO_INDEX) -k 5
	@echo "--- a photo search after training (the reranker covers the photo kinds it passed the held-out check on): the exact product (id 10183) is #1 ---"
	$(BIN)/shoplens search --image data/myntra-sample/images/10183.jpg --index $(DEMO_INDEX) -k 5

# Debian's chromium for the workbench's browser test (Playwright drives it; no browser download).
# Without root or apt the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium: the browser test will skip"; \
	else echo "chromium is not installed and apt-get needs root: the browser test will skip"; fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The Elasticsearch suites again, against the Elasticsearch 8 cluster SHOPLENS_ES8_URL names (make es8-up):
# BM25, filters, versions, updates, faults and dense_vector HNSW vectors on 8.x (.ci/run runs it after make test).
ES_SUITES := tests/indexers/test_lexical.py tests/indexers/test_elasticsearch.py \
	tests/indexers/test_elasticsearch_vectors.py tests/indexers/test_cluster_vectors.py \
	tests/indexers/test_elasticsearch_lifecycle.py tests/indexers/test_cluster_faults.py
test-es8: $(STAMP)
	@test -n "$(SHOPLENS_ES8_URL)" || { echo "SHOPLENS_ES8_URL is not set: run make es8-up first" >&2; exit 2; }
	SHOPLENS_ES_URL=$(SHOPLENS_ES8_URL) SHOPLENS_OS_URL= $(BIN)/python -m pytest -q -p no:cacheprovider $(ES_SUITES)

# A longer fuzzing run than CI's: FUZZ_CASES generated bad inputs through the CLI (seed FUZZ_SEED) and
# hypothesis's "fuzz" profile (1,000 examples per property) for every reader, the filters and the options.
FUZZ_CASES ?= 500
FUZZ_SEED ?= 1
fuzz: $(STAMP)
	SHOPLENS_FUZZ_CASES=$(FUZZ_CASES) SHOPLENS_FUZZ_SEED=$(FUZZ_SEED) SHOPLENS_FUZZ_PROFILE=fuzz \
	  $(BIN)/python -m pytest -q -s -p no:cacheprovider --hypothesis-show-statistics \
	  tests/test_cli_fuzz.py tests/indexers/test_catalog_fuzz.py tests/rerank/test_events_fuzz.py \
	  tests/rerank/test_judgments_fuzz.py tests/engine/test_filters_fuzz.py tests/engine/test_query_fuzz.py

clean:
	rm -rf .demo .pytest_cache

# A local 3-node Elasticsearch cluster (tests and local trials, not production): Java 17 + Maven.
# es-up's last line is SHOPLENS_ES_URL=http://127.0.0.1:PORT; es-down stops it and removes .es/.
es-up:
	@deploy/elasticsearch/es.sh up

es-down:
	@deploy/elasticsearch/es.sh down

# A local 3-node Elasticsearch 8.19 cluster (dense_vector HNSW; tests and local trials, not production): Java 17
# + Maven; under root its JVM runs as `nobody`. es8-up's last line is SHOPLENS_ES8_URL=http://127.0.0.1:PORT;
# es8-down stops it and removes .es8/.
es8-up:
	@deploy/elasticsearch8/es8.sh up

es8-down:
	@deploy/elasticsearch8/es8.sh down

# A local 3-node OpenSearch 2.19 cluster with the k-NN plugin (HNSW vectors; tests and local trials, not
# production): Java 17 + Maven. os-up's last line is SHOPLENS_OS_URL=http://127.0.0.1:PORT; os-down stops
# it and removes .os/.
os-up:
	@deploy/opensearch/os.sh up

os-down:
	@deploy/opensearch/os.sh down

# Every benchmark of the README's Performance section, in order, on the Myntra catalog in ../shared
# (about two hours on 2 CPU cores; reports land in .bench/reports/).
BENCH := .bench
bench-full: $(STAMP)
	$(BIN)/shoplens bench index --save $(BENCH)/reports/index.json
	$(BIN)/shoplens bench devdata --index $(BENCH)/index/index --out $(BENCH)/devdata
	$(BIN)/shoplens bench rerank --index $(BENCH)/index/index --devdata $(BENCH)/devdata --save $(BENCH)/reports/rerank.json
	$(BIN)/shoplens bench latency --index $(BENCH)/rerank/with-behaviour --queries $(BENCH)/devdata/queries.latency.jsonl --save $(BENCH)/reports/latency.json
	$(BIN)/shoplens bench quality --index $(BENCH)/rerank/with-behaviour --judgments $(BENCH)/devdata/judgments.test.jsonl --save $(BENCH)/reports/quality.json
	$(BIN)/shoplens bench recall --index $(BENCH)/index/index --save $(BENCH)/reports/recall.json
	$(BIN)/shoplens bench scale --index $(BENCH)/index/index --save $(BENCH)/reports/scale.json
	$(BIN)/shoplens bench updates --index $(BENCH)/rerank/with-behaviour --events $(BENCH)/devdata/events.simulated.jsonl --catalog $(BENCH)/myntra/products.jsonl.gz --map category=master_category,sub_category,article_type --cold-rebuild-from $(BENCH)/reports/index.json --save $(BENCH)/reports/updates.json
	$(BIN)/shoplens bench serve --index $(BENCH)/rerank/with-behaviour --save $(BENCH)/reports/serve.json
