# Two entry points: `make demo` (install, index the bundled sample, search it) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.shoplens-installed
DEMO_INDEX ?= .demo/shoplens-index

.PHONY: install demo test bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/shoplens index data/myntra-sample/products.jsonl --index $(DEMO_INDEX)
	$(BIN)/shoplens info --index $(DEMO_INDEX)
	$(BIN)/shoplens search "navy blue casual shirt for men" --index $(DEMO_INDEX) -k 5
	$(BIN)/shoplens search "running shoes" --filter "price<=3000" --index $(DEMO_INDEX) -k 5
	$(BIN)/shoplens search --image data/myntra-sample/images/10183.jpg --index $(DEMO_INDEX) -k 5
	$(BIN)/shoplens search "leather wallet" --image data/myntra-sample/images/10183.jpg --index $(DEMO_INDEX) -k 5 --explain

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf .demo .pytest_cache
