"""A one-shot search served by ONNX Runtime imports neither torch nor what the query does not need
(pandas included: pyarrow's `to_numpy` and `pa.array`/`pa.scalar` import it, so the engine reads Arrow
buffers with numpy instead)."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
engine = SearchEngine(sys.argv[1], device="cpu")
response = engine.search(SearchRequest(text="red dress", k=3))
heavy = ["torch", "open_clip", "transformers", "xgboost", "matplotlib", "txtai", "pandas"]
print(json.dumps({"runtime": engine.encoder_runtime, "results": len(response.results),
                  "imported": [name for name in heavy if name in sys.modules]}))
"""


def test_onnx_search_imports_no_torch(sample_index):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(sample_index)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"runtime": "onnx", "results": 3, "imported": []}


def test_cli_search_command_module_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, shoplens.cli; "
                           "print(sorted(m for m in ('torch', 'xgboost', 'pandas', 'onnxruntime') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
