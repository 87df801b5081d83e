"""A sweep of bad inputs through every command, by class of input, run as the console script runs.

Each case must end as ONE line on stderr, a non-zero exit, no traceback, and (for a
write) the committed index exactly as it was. The cases run in-process through
`cli.main` (the console-script entry point, which also turns Click's usage errors into
one line) against a private copy of the session's sample index.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from shoplens.cli import main
from tests.helpers import SAMPLE, Hang, bounded, sample_products, write_catalog

IMAGE = SAMPLE.parent / "images" / "1528.jpg"


def committed_state(index: Path):
    """What a failed command must not change: CURRENT, the version folders and the current manifest."""
    current = (index / "CURRENT").read_text().strip()
    versions = sorted(p.name for p in (index / "versions").iterdir())
    manifest = (index / "versions" / f"{int(current):06d}" / "manifest.json").read_bytes()
    return current, versions, manifest


def run_cli(args: list[str], capsys, seconds: float = 120) -> tuple[int, str, str, str | None]:
    """(exit code, stdout, stderr, uncaught exception) of `shoplens ARGS` run by the console-script entry point."""
    saved = sys.argv
    sys.argv = ["shoplens", *args]
    code, crash = 0, None
    try:
        with bounded(seconds):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Hang as exc:
        crash = f"hang: {exc}"
    except BaseException as exc:  # noqa: BLE001 - any escape is the failure this test looks for
        crash = f"{type(exc).__name__}: {exc}"
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err, crash


# -- the bad files, made once -----------------------------------------------------------------


def product(**fields) -> dict:
    row = dict(sample_products(1)[0])
    row["image"] = str(SAMPLE.parent / row["image"])
    row.update(fields)
    return row


def jsonl(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r, allow_nan=True).encode()) + b"\n" for r in rows)


def make_bad_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = jsonl(*sample_products(3))
    files = {
        "empty.jsonl": b"", "blank.jsonl": b"\n \n\n", "binary.jsonl": bytes(range(256)) * 4,
        "corrupt.jsonl.gz": gzip.compress(good)[:40], "notgzip.jsonl.gz": good,
        "utf16.jsonl": json.dumps(sample_products(1)[0]).encode("utf-16"),
        "latin1.jsonl": json.dumps({"id": "x1", "title": "caf\xe9"}, ensure_ascii=False).encode("latin-1") + b"\n",
        "hugeline.jsonl": b'{"id": "h1", "title": "' + b"a" * 3_000_000 + b'"}\n',
        "array.jsonl": b"[1, 2, 3]\n", "string.jsonl": b'"shirt"\n', "null.jsonl": b"null\n",
        "truncated.jsonl": b'{"id": "t1", "title": "Red\n',
        "price-abc.jsonl": jsonl(product(id="bad-1", price="abc")),
        "price-nan.jsonl": b'{"id": "bad-2", "title": "Shirt", "price": NaN}\n',
        "price-inf.jsonl": b'{"id": "bad-3", "title": "Shirt", "price": Infinity}\n',
        "price-negative.jsonl": jsonl(product(id="bad-4", price=-5)),
        "price-huge.jsonl": b'{"id": "bad-5", "title": "Shirt", "price": 1e400}\n',
        "id-null.jsonl": jsonl(product(id=None)), "id-list.jsonl": jsonl(product(id=[1, 2])),
        "id-nested.jsonl": jsonl(product(id={"a": 1})), "id-empty.jsonl": jsonl(product(id="")),
        "id-bool.jsonl": jsonl(product(id=True)), "id-float.jsonl": jsonl(product(id=1.5)),
        "title-number.jsonl": jsonl(product(id="bad-6", title=12345)),
        "title-list.jsonl": jsonl(product(id="bad-7", title=["a", "b"])),
        "no-title.jsonl": jsonl({"id": "bad-8", "price": 10}),
        "duplicate-ids.jsonl": jsonl(product(id="dup", title="One"), product(id="dup", title="Two")),
        "image-text.jsonl": jsonl(product(id="bad-9", image=str(folder / "text.jpg"))),
        "image-missing.jsonl": jsonl(product(id="bad-10", image=str(folder / "nothing.jpg"))),
        "image-url.jsonl": jsonl(product(id="bad-11", image="http://127.0.0.1:9/x.jpg")),
        "image-number.jsonl": jsonl(product(id="bad-12", image=5)),
        "bad.csv": b'id,title,price\n"open,quote,1\n', "empty.csv": b"", "header-only.csv": b"id,title,price\n",
        "bad.parquet": b"PAR1 not really", "data.xml": b"<products/>",
        "text.jpg": b"not an image", "empty.jpg": b"", "truncated.jpg": IMAGE.read_bytes()[:300],
        "ids-binary.txt": bytes(range(256)), "ids-empty.txt": b"", "ids-utf16.txt": "a\nb\n".encode("utf-16"),
        "queries-empty.txt": b"", "queries-binary.txt": bytes(range(256)),
        "queries-utf16.txt": "shirt\n".encode("utf-16"),
        "judgments-array.jsonl": b"[1]\n", "judgments-bad.jsonl": b'{"query": "shirt", "id": "x", "grade": "abc"}\n',
        "judgments-nan.jsonl": b'{"query": "shirt", "id": "x", "grade": NaN}\n',
        "judgments-empty.jsonl": b"",
        "judgments-other-shop.jsonl": jsonl({"query": "shirt", "id": "not-here-1", "grade": 2},
                                            {"query": "shirt", "id": "not-here-2", "grade": 0}),
        "events-array.jsonl": b"[1]\n", "events-binary.jsonl": bytes(range(256)),
        "events-bad.jsonl": b'{"ts": "x", "type": "teleport", "id": null}\n',
        "events-corrupt.jsonl.gz": gzip.compress(b'{"ts": 1, "type": "click", "id": "1"}\n' * 50)[:30],
        "topics.tsv": b"1\tshirt\n", "bad.qrels": b"1 0 x abc\n",
        "heads.safetensors": b"not safetensors",
        # JSON escapes of half a UTF-16 pair: valid JSON to json.loads, text no encoder can write
        "surrogate.jsonl": b'{"id": "s1", "title": "Tee \\ud800"}\n',
        "judgments-surrogate.jsonl": b'{"query": "shirt \\udc00", "id": "x", "grade": 1}\n',
        "queries-surrogate.jsonl": b'{"text": "red \\ud83d"}\n', "ids-surrogate.jsonl": b'{"id": "\\udfff"}\n',
        "queries-nested.jsonl": b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        "changed.jsonl": jsonl(product(title="A title no version of the sample has")),
        # a row as wide as a table (each attribute is a column of the product store), names that are no names
        "attr-wide.jsonl": jsonl(product(id="bad-13", **{f"spec{i}": i for i in range(1500)})),
        "attr-name-empty.jsonl": jsonl(product(id="bad-14", **{"": "x"})),
        "attr-name-newline.jsonl": jsonl(product(id="bad-15", **{"colour\nsize": "x"})),
        "id-newline.jsonl": jsonl(product(id="a\nb")), "id-control.jsonl": jsonl(product(id="a\x1b[31mb")),
        "id-nul.jsonl": jsonl(product(id="a\x00b")),
        "title-control.jsonl": jsonl(product(id="bad-16", title="\x00\x01\x1b")),
        "price-absurd.jsonl": b'{"id": "bad-17", "title": "Shirt", "price": 1e300}\n',
        "duplicate-columns.csv": b"id,title,title,price\nc1,One,Two,10\n",
        "duplicate-keys.jsonl": b'{"id": "bad-18", "title": "One", "title": "Two"}\n',
        "judgments-conflict.jsonl": jsonl({"query": "shirt", "id": "x", "grade": 2},
                                          {"query": "shirt", "id": "x", "grade": 0}),
        "queries-punctuation.txt": b"shirt\n!!!\n", "queries-ok.txt": b"shirt\n", "queries-control.jsonl": b'{"text": "red \\u001b[31m shirt"}\n',
        # JSON that is no object, in a file of JSON lines: was searched as the text "[1, 2]" / "null"
        "queries-array.jsonl": b'{"text": "shirt"}\n[1, 2]\n', "queries-null.jsonl": b'{"text": "shirt"}\nnull\n',
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "dir.jsonl").mkdir(exist_ok=True)
    (folder / "dir.jpg").mkdir(exist_ok=True)
    big = folder / "big.png"
    from tests.fuzzing import png_header

    png_header(big, 30000, 30000)
    (folder / "inbox-file").write_text("x")
    from PIL import Image

    Image.new("RGB", (1, 1)).save(folder / "pixel.png")  # a spacer: was searched as a photo
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_arrays([pa.array(["p1"]), pa.array(["One"]), pa.array(["Two"])],
                                        names=["id", "title", "title"]), folder / "duplicate-columns.parquet")
    # a column of photo bytes: every row was rejected with the same reason
    pq.write_table(pa.table({"id": ["p1", "p2"], "title": ["One", "Two"], "thumb": [IMAGE.read_bytes()[:64]] * 2}),
                   folder / "thumbs.parquet")
    return folder


# -- the cases ------------------------------------------------------------------------------
# {ix} a writable copy of the sample index, {bad} the bad files, {tmp} a fresh folder, {img} a good image.
# Each is (class, argv); every case must fail with one line and leave {ix} as it was.

FILE_KINDS = ["missing.jsonl", "dir.jsonl", "empty.jsonl", "blank.jsonl", "binary.jsonl", "corrupt.jsonl.gz",
              "notgzip.jsonl.gz", "utf16.jsonl", "latin1.jsonl", "bad.csv", "empty.csv", "header-only.csv",
              "bad.parquet", "data.xml", "array.jsonl", "string.jsonl", "null.jsonl", "truncated.jsonl",
              "duplicate-columns.csv", "duplicate-columns.parquet"]
# Accepted by design, so not here: a NaN price (read as no price), a number as id or title (read as text), an
# image that cannot be used (the product is indexed from its text, with a warning).
ROW_KINDS = ["price-abc.jsonl", "price-inf.jsonl", "price-negative.jsonl", "price-huge.jsonl",
             "id-null.jsonl", "id-list.jsonl", "id-nested.jsonl", "id-empty.jsonl", "id-bool.jsonl",
             "title-list.jsonl", "no-title.jsonl", "duplicate-ids.jsonl", "hugeline.jsonl",
             "attr-wide.jsonl", "attr-name-empty.jsonl", "attr-name-newline.jsonl", "id-newline.jsonl",
             "id-control.jsonl", "id-nul.jsonl", "title-control.jsonl", "price-absurd.jsonl", "duplicate-keys.jsonl"]

CASES: list[tuple[str, list[str]]] = []
CASES += [("catalog file", ["update", "{bad}/" + name, "--index", "{ix}"]) for name in FILE_KINDS]
CASES += [("catalog file", ["index", "{bad}/" + name, "--index", "{tmp}/new", "--device", "cpu"])
          for name in ["missing.jsonl", "dir.jsonl", "empty.jsonl", "binary.jsonl", "corrupt.jsonl.gz",
                       "utf16.jsonl", "array.jsonl", "data.xml", "header-only.csv"]]
CASES += [("catalog column", ["update", "{bad}/thumbs.parquet", "--index", "{ix}"])]
CASES += [("catalog row --strict", ["update", "{bad}/" + name, "--index", "{ix}", "--strict"]) for name in ROW_KINDS]
CASES += [("catalog row --strict", ["update", "{bad}/image-number.jsonl", "--index", "{ix}", "--strict"])]
CASES += [("catalog --map", ["update", "{bad}/price-abc.jsonl", "--index", "{ix}", "--map", spec])
          for spec in ["title", "=x", "title=", "nofield=x"]]
CASES += [("catalog --map", ["update", "{bad}/price-abc.jsonl", "--index", "{ix}", *maps]) for maps in [
    ["--map", "id=sku", "--map", "id=name"], ["--map", "id=sku", "--map", "title=sku"], ["--map", "title=name,brand,name",
                                                                                       "--map", "brand=brand"]]]
CASES += [("id list", ["delete", *args, "--index", "{ix}"]) for args in [
    ["--file", "{bad}/missing.txt"], ["--file", "{bad}/dir.jsonl"], ["--file", "{bad}/ids-binary.txt"],
    ["--file", "{bad}/ids-empty.txt"], ["--file", "{bad}/ids-utf16.txt"], ["--ids", ""], ["--ids", ","],
    ["--ids", "no-such-id", "--strict"], [], ["--ids", "1", "--file", "{bad}/ids-empty.txt"]]]
CASES += [("events file", ["events", "{bad}/" + name, "--index", "{ix}", *extra]) for name, extra in [
    ("missing.jsonl", []), ("dir.jsonl", []), ("events-binary.jsonl", []), ("events-corrupt.jsonl.gz", []),
    ("events-array.jsonl", ["--strict"]), ("events-bad.jsonl", ["--strict"]), ("empty.jsonl", []),
    ("utf16.jsonl", [])]]
# `info`, `versions` and `check` describe a damaged index rather than refuse it: see test_a_damaged_index_is_described.
INSPECTORS = ("info", "versions", "check")
INDEX_PATHS = ["{tmp}/missing", "{bad}/inbox-file", "{tmp}/emptydir", "{broken}/truncated-manifest",
               "{broken}/missing-segment", "{broken}/bad-current", "{broken}/no-versions", "{broken}/incomplete-manifest"]
READERS = [["search", "shirt"], ["info"], ["versions"], ["check"], ["eval", "{bad}/judgments-bad.jsonl"],
           ["search", "--queries", "{bad}/topics.tsv"], ["bench", "startup", "--runs", "1"],
           ["bench", "shoppers"], ["bench", "devdata", "--out", "{tmp}/dev"]]
WRITERS = [["update", "{bad}/changed.jsonl"], ["delete", "--ids", "x"], ["events", "{bad}/events-bad.jsonl"], ["compact"],
           ["rollback", "1", "--yes"], ["versions", "--keep", "1"], ["train-ranker", "{bad}/judgments-bad.jsonl"]]
CASES += [("index path", [*cmd, "--index", path]) for path in INDEX_PATHS for cmd in READERS[:4] + WRITERS[:2]
          if not (cmd[0] in INSPECTORS and path.startswith("{broken}"))]
CASES += [("index path", [*cmd, "--index", path]) for path in INDEX_PATHS[:3] for cmd in READERS[4:] + WRITERS[2:]]
CASES += [("search option", ["search", "shirt", "--index", "{ix}", *extra]) for extra in [
    ["-k", "0"], ["-k", "-1"], ["-k", "99999999999"], ["-k", "1000000"], ["--page", "0"], ["--page", "-1"],
    ["--page", "99999999999999999999"], ["--candidates", "0"], ["--candidates", "-5"],
    ["--rrf-k", "nan"], ["--rrf-k", "-1"], ["--rrf-k", "inf"], ["--weights", "-1,1"], ["--weights", "nan,1"],
    ["--weights", "0,0"], ["--weights", "1,2,3,4"], ["--weights", ""], ["--mode", "magic"], ["--fusion", "magic"],
    ["--norm", "magic"], ["--device", "tpu"], ["--model", "nope"], ["--out", "{bad}/dir.jsonl", "--queries", "{bad}/topics.tsv"],
    ["--out", "/proc/nope/x.jsonl", "--queries", "{bad}/topics.tsv"]]]
CASES += [("search query", ["search", *query, "--index", "{ix}"]) for query in [
    [""], ["   "], ["--queries", "{bad}/missing.txt"], ["--queries", "{bad}/dir.jsonl"],
    ["--queries", "{bad}/queries-empty.txt"], ["--queries", "{bad}/queries-binary.txt"],
    ["--queries", "{bad}/queries-utf16.txt"], ["--queries", "{bad}/corrupt.jsonl.gz"],
    # text with nothing to search for, or with control characters (typed, in a queries file)
    ["!!!???..."], ["\u200b"], ["\ufffd\ufffd"], ["red \x1b[31m shirt"], ["a\x00b"],
    ["--queries", "{bad}/queries-punctuation.txt"], ["--queries", "{bad}/queries-control.jsonl"],
    ["--queries", "{bad}/queries-array.jsonl"], ["--queries", "{bad}/queries-null.jsonl"]]]
CASES += [("filter", ["search", "shirt", "--index", "{ix}", "--filter", spec]) for spec in [
    "price<=abc", "nosuchfield=1", "", "brand=", "=Nike", "price<=", "price<=nan", "price>=inf", "price<<3",
    "price<=1e400", "brand~Nike", "price<=-", "price=>3", "brand=Ni\x1bke", "brand=Nike\x00"]]
CASES += [("image", ["search", "--image", path, "--index", "{ix}"]) for path in [
    "{bad}/text.jpg", "{bad}/empty.jpg", "{bad}/truncated.jpg", "{bad}/big.png", "{bad}/nothing.jpg",
    "{bad}/dir.jpg", "/dev/zero", "http://127.0.0.1:9/x.jpg", "https://example.invalid/x.jpg", "{bad}/pixel.png"]]
CASES += [("maintenance option", [*cmd, "--index", "{ix}"]) for cmd in [
    ["rollback", "0", "--yes"], ["rollback", "-1", "--yes"], ["rollback", "999", "--yes"],
    ["rollback", "99999999999999999999999", "--yes"], ["versions", "--keep", "0"], ["versions", "--keep", "-1"],
    ["check", "--version", "999"], ["check", "--version", "-1"], ["check", "--deep", "-1"],
    ["check", "--deep", "99999999999"]]]
CASES += [("watch", ["watch", *args, "--index", "{ix}", "--once"]) for args in [
    ["{tmp}/no-inbox"], ["{bad}/inbox-file"], ["{tmp}/inbox", "--window", "nan"], ["{tmp}/inbox", "--window", "-1"],
    ["{tmp}/inbox", "--poll", "-1"], ["{tmp}/inbox", "--max-rows", "0"],
    ["{tmp}/inbox", "--priority-window", "inf"]]]
CASES += [("ranking", [*cmd, "--index", "{ix}", "--device", "cpu"]) for cmd in [
    ["train-ranker", "{bad}/missing.jsonl"], ["train-ranker", "{bad}/dir.jsonl"],
    ["train-ranker", "{bad}/judgments-empty.jsonl"], ["train-ranker", "{bad}/judgments-array.jsonl"],
    ["train-ranker", "{bad}/judgments-nan.jsonl"], ["train-ranker", "{bad}/binary.jsonl"],
    ["train-ranker", "{bad}/bad.qrels", "--topics", "{bad}/topics.tsv"],
    ["train-ranker", "{bad}/judgments-bad.jsonl", "--trees", "0"],
    ["train-ranker", "{bad}/judgments-bad.jsonl", "--trees", "-1"],
    ["train-ranker", "{bad}/judgments-bad.jsonl", "--depth", "0"],
    ["train-ranker", "--from-events", "{bad}/events-binary.jsonl"],
    ["eval", "{bad}/missing.jsonl"], ["eval", "{bad}/judgments-empty.jsonl"], ["eval", "{bad}/binary.jsonl"],
    ["eval", "{bad}/utf16.jsonl"], ["eval", "{bad}/judgments-array.jsonl"],
    ["eval", "{bad}/bad.qrels", "--topics", "{bad}/missing.tsv"], ["eval", "{bad}/judgments-other-shop.jsonl"],
    ["eval", "{bad}/bad.qrels", "--topics", "{bad}/binary.jsonl"], ["eval", "{bad}/judgments-conflict.jsonl"],
    ["train-ranker", "{bad}/judgments-conflict.jsonl"]]]
CASES += [("train-encoder", ["train-encoder", *args, "--out", "{tmp}/heads.safetensors", "--device", "cpu"])
          for args in [["{bad}/missing.jsonl"], ["{bad}/dir.jsonl"], ["{bad}/empty.jsonl"], ["{bad}/binary.jsonl"],
                       ["{bad}/array.jsonl"], ["{catalog}", "--epochs", "0"], ["{catalog}", "--epochs", "-1"],
                       ["{catalog}", "--holdout", "-1"], ["{catalog}", "--embed-dim", "0"],
                       ["{catalog}", "--head", "magic"], ["{catalog}", "--max-train", "0"]]]
# On the whole sample (enough products to train): out-of-range values are refused before any work; a negative
# --holdout had sliced the held-out products from the end, so training used them.
CASES += [("train-encoder", ["train-encoder", str(SAMPLE), *args, "--out", "{tmp}/heads.safetensors", "--device", "cpu"])
          for args in [["--holdout", "-1"], ["--holdout", "0"], ["--validation", "-5"], ["--validation", "0"],
                       ["--epochs", "0"], ["--epochs", "99999999"], ["--embed-dim", "1"], ["--embed-dim", "99999"]]]
CASES += [("index option", ["index", "{catalog}", "--index", "{tmp}/new", "--device", "cpu", *extra]) for extra in [
    ["--image-weight", "-1"], ["--image-weight", "nan"], ["--image-weight", "2"], ["--keep-versions", "0"],
    ["--keep-versions", "-1"], ["--vector-index", "magic"], ["--lexical", "solr"], ["--vectors", "magic"],
    ["--encoder-runtime", "magic"], ["--model", "nope"], ["--pretrained", "{bad}/heads.safetensors"],
    ["--pretrained", "{bad}/missing.safetensors"], ["--es-shards", "2"]]]
CASES += [("serve option", ["serve", "--index", "{ix}", *extra]) for extra in [
    ["--port", "0"], ["--port", "-1"], ["--port", "70000"], ["--workers", "0"], ["--workers", "-1"],
    ["--follow-seconds", "-1"], ["--follow-seconds", "nan"], ["--host", "not a host!"],
    ["--warm-queries", "{bad}/missing.txt"], ["--events-inbox", "{bad}/inbox-file"], ["--api-key", "k" * 5000],
    ["--api-key", "ключ"]]]
CASES += [("serve index", ["serve", "--index", path]) for path in ["{tmp}/missing", "{bad}/inbox-file", "{tmp}/emptydir"]]
CASES += [("bench option", ["bench", *cmd]) for cmd in [
    ["latency", "--index", "{ix}", "--clients", "0"], ["latency", "--index", "{ix}", "--clients", "-1"],
    ["latency", "--index", "{ix}", "--clients", "a,b"], ["latency", "--index", "{ix}", "-k", "0"],
    ["latency", "--index", "{ix}", "--queries", "{bad}/missing.txt"],
    ["latency", "--index", "{ix}", "--queries", "{bad}/queries-binary.txt"],
    ["latency", "--index", "{ix}", "--queries", "{bad}/queries-array.jsonl"],
    ["latency", "--index", "{ix}", "--threads", "0"], ["latency", "--index", "{ix}", "--cache-size", "-1"],
    ["quality", "--index", "{ix}", "--judgments", "{bad}/missing.jsonl"],
    ["quality", "--index", "{ix}", "--judgments", "{bad}/binary.jsonl"],
    ["quality", "--index", "{ix}", "--limit", "-1", "--judgments", "{bad}/judgments-bad.jsonl"],
    ["shoppers", "--index", "{ix}", "--judgments", "{bad}/binary.jsonl"],
    ["quality", "--index", "{ix}", "--judgments", "{bad}/judgments-other-shop.jsonl", "--no-peers"],
    ["shoppers", "--index", "{ix}", "--judgments", "{bad}/judgments-other-shop.jsonl"],
    ["devdata", "--index", "{ix}", "--queries", "0", "--out", "{tmp}/dev"],
    ["devdata", "--index", "{ix}", "--queries", "-1", "--out", "{tmp}/dev"],
    ["devdata", "--index", "{ix}", "--out", "{bad}/inbox-file"],
    ["devdata", "--index", "{ix}", "--catalog", "{bad}/binary.jsonl", "--out", "{tmp}/dev"],
    ["startup", "--index", "{ix}", "--runs", "0"], ["startup", "--index", "{ix}", "--runs", "-1"],
    ["startup", "--index", "{ix}", "--query", ""], ["startup", "--index", "{ix}", "--runs", "1", "--query", "!!!"],
    ["startup", "--index", "{ix}", "--runs", "1", "--query", "a" * 3000],
    ["recall", "--synthetic", "0"], ["recall", "--synthetic", "-1"], ["recall", "--queries", "0", "--synthetic", "100"],
    ["recall", "--synthetic", "1000", "--dim", "-5"], ["recall", "--synthetic", "1000", "--dim", "100"],
    ["recall", "--synthetic", "1000", "--dim", "100000000"], ["recall", "--synthetic", "99999999999"],
    ["scale", "--index", "{ix}", "--sizes", "a,b"], ["scale", "--index", "{ix}", "--sizes", "0"],
    ["scale", "--index", "{ix}", "--sizes", "-5"], ["scale", "--index", "{ix}", "--queries", "0"],
    ["updates", "--index", "{ix}", "--count", "0"], ["updates", "--index", "{ix}", "--count", "-1"],
    ["updates", "--index", "{ix}", "--cold-rebuild-seconds", "nan"],
    ["updates", "--index", "{ix}", "--cold-rebuild-seconds", "-1"],
    ["updates", "--index", "{ix}", "--events", "{bad}/missing.jsonl"],
    ["serve", "--index", "{ix}", "--clients", "0"], ["serve", "--index", "{ix}", "--requests", "0"],
    ["serve", "--index", "{ix}", "--seconds", "-1"], ["serve", "--index", "{ix}", "--interval", "0"],
    ["serve", "--index", "{ix}", "--clients", "a"], ["latency", "--index", "{tmp}/missing", "--queries", "{bad}/topics.tsv"],
    ["rerank", "--index", "{ix}", "--devdata", "{tmp}/missing-dev"],
    ["rerank", "--index", "{ix}", "--trees", "0", "--devdata", "{tmp}/missing-dev"],
    ["index", "--catalog", "{bad}/missing.jsonl", "--work-dir", "{tmp}/w"],
    ["index", "--catalog", "{bad}/binary.jsonl", "--work-dir", "{tmp}/w"],
    ["index", "--catalog", "{catalog}", "--queries", "-1", "--work-dir", "{tmp}/w"],
    ["textonly", "--catalog", "{bad}/missing.jsonl", "--work-dir", "{tmp}/w"],
    ["textonly", "--catalog", "{catalog}", "--limit", "0", "--work-dir", "{tmp}/w"],
    ["index", "--catalog", "{catalog}", "--save", "{bad}/dir.jsonl", "--work-dir", "{tmp}/w", "--queries", "0"]]]
# a count of threads or clients no machine has: --threads 100000 hung, --clients 100000 started 100,000 threads
CASES += [("bench size", ["bench", *args, "--index", "{ix}"]) for args in [
    ["latency", "--queries", "{bad}/queries-ok.txt", "--clients", "100000"],
    ["latency", "--queries", "{bad}/queries-ok.txt", "--threads", "100000"], ["serve", "--clients", "1,9999"]]]
# an option that only works with another: the results went to the terminal, exit 0, and --out was never written
CASES += [("option without its partner", ["search", "shirt", "--index", "{ix}", "--out", "{tmp}/results.jsonl"])]
CASES += [("shell", ["shell", "--index", path]) for path in ["{tmp}/missing", "{bad}/inbox-file"]]
# Where `index` builds: a folder of other files, a path under a file, a place nothing can be written.
CASES += [("index directory", ["index", "{catalog}", "--index", path, "--device", "cpu"])
          for path in ["{bad}", "{bad}/inbox-file/index", "/proc/shoplens-index"]]
# Files a command writes (--save, --out, --plot, --history): refused before any work, never a traceback after it.
CASES += [("output file", args) for args in [
    ["search", "--queries", "{bad}/topics.tsv", "--out", "{bad}/inbox-file/results.jsonl", "--index", "{ix}"],
    ["search", "--queries", "{bad}/topics.tsv", "--out", "/dev/null", "--index", "{ix}"],
    ["bench", "startup", "--index", "{ix}", "--runs", "1", "--save", "{bad}/inbox-file/report.json"],
    ["bench", "startup", "--index", "{ix}", "--runs", "1", "--save", "/proc/report.json"],
    ["bench", "textonly", "--catalog", "{catalog}", "--save", "{bad}/dir.jsonl", "--work-dir", "{tmp}/w"],
    ["bench", "recall", "--synthetic", "1000", "--plot", "{bad}/dir.jsonl"],
    ["bench", "shoppers", "--index", "{ix}", "--write-judgments", "{bad}/inbox-file/j.jsonl"],
    ["train-encoder", "{catalog}", "--out", "{bad}/dir.jsonl", "--device", "cpu"],
    ["train-encoder", "{catalog}", "--out", "{bad}/inbox-file/heads.safetensors", "--device", "cpu"],
    ["shell", "--index", "{ix}", "--history", "{bad}/dir.jsonl"]]]
# Folders a command writes in (--work-dir, --cache-dir, --run-dir, --events-inbox): the same, for folders.
CASES += [("output folder", args) for args in [
    ["bench", "textonly", "--catalog", "{catalog}", "--work-dir", "{bad}/inbox-file/w"],
    ["bench", "index", "--catalog", "{catalog}", "--work-dir", "/proc/shoplens-w"],
    ["train-encoder", "{catalog}", "--cache-dir", "{bad}/inbox-file", "--device", "cpu"],
    ["eval", "{bad}/judgments-other-shop.jsonl", "--index", "{ix}", "--run-dir", "/proc/runs", "--device", "cpu"],
    ["serve", "--index", "{ix}", "--events-inbox", "{bad}/inbox-file/inbox"]]]
# A user's value echoed in the error: a newline or Rich markup in it must not break the one line (or crash it).
CASES += [("value echoed", args) for args in [
    ["search", "shirt", "--index", "{tmp}/[/]missing"], ["update", "{tmp}/a\nb.jsonl", "--index", "{ix}"],
    ["update", "{tmp}/[/bold].jsonl", "--index", "{ix}"], ["delete", "--ids", "[/]\n[bold]x", "--index", "{ix}", "--strict"],
    ["search", "--image", "{tmp}/[/]\r.jpg", "--index", "{ix}"]]]
# Arguments that are not UTF-8 (Python keeps their bytes as lone surrogates), and JSON escapes that make them.
CASES += [("not UTF-8 text", args) for args in [
    ["search", "red \udcff shirt", "--index", "{ix}"], ["delete", "--ids", "\udcff", "--index", "{ix}"],
    ["search", "shirt", "--filter", "brand=\udce9", "--index", "{ix}"],
    ["update", "{bad}/surrogate.jsonl", "--index", "{ix}"], ["update", "{bad}/surrogate.jsonl", "--index", "{ix}", "--strict"],
    ["eval", "{bad}/judgments-surrogate.jsonl", "--index", "{ix}", "--device", "cpu"],
    ["search", "--queries", "{bad}/queries-surrogate.jsonl", "--index", "{ix}"],
    ["search", "--queries", "{bad}/queries-nested.jsonl", "--index", "{ix}"],
    ["delete", "--file", "{bad}/ids-surrogate.jsonl", "--index", "{ix}"]]]
CASES += [("shell", ["shell", "--index", "{ix}", *extra]) for extra in [["-k", "0"], ["-k", "-1"], ["--thumbs", "magic"]]]
CASES += [("usage", args) for args in [["nope"], ["search"], ["update"], ["rollback", "abc"], ["search", "x", "-k"],
                                       ["events"], ["bench", "nope"], ["--nope"]]]


@pytest.fixture(scope="module")
def world(sample_index, tmp_path_factory):
    """A private writable copy of the sample index, the bad files and a few broken indexes."""
    root = tmp_path_factory.mktemp("badin")
    index = root / "index"
    shutil.copytree(sample_index, index)
    bad = make_bad_files(root / "bad")
    broken = root / "broken"
    for name in ("truncated-manifest", "missing-segment", "bad-current", "no-versions", "incomplete-manifest"):
        shutil.copytree(sample_index, broken / name)
    version = lambda name: broken / name / "versions" / f"{int((broken / name / 'CURRENT').read_text()):06d}"  # noqa: E731
    manifest = version("truncated-manifest") / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:50])
    shutil.rmtree(version("missing-segment") / "lexical")
    for folder in (version("missing-segment") / "vectors").iterdir():
        folder.unlink() if folder.is_file() else shutil.rmtree(folder)
    (broken / "bad-current" / "CURRENT").write_text("banana")
    (version("incomplete-manifest") / "manifest.json").write_text('{"format": 1}')  # JSON, but not a manifest
    shutil.rmtree(broken / "no-versions" / "versions")
    catalog = write_catalog(root / "catalog.jsonl", sample_products(5))
    return {"ix": index, "bad": bad, "broken": broken, "catalog": catalog, "root": root}


@pytest.mark.parametrize("category, args", CASES, ids=[f"{c}:{' '.join(a)}"[:120] for c, a in CASES])
def test_bad_input_is_one_line(world, category, args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bench writes .bench/ under the working directory
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "inbox").mkdir()
    values = {"ix": world["ix"], "bad": world["bad"], "broken": world["broken"], "catalog": world["catalog"],
              "tmp": tmp_path}
    argv = [a.format(**values) for a in args]
    before = committed_state(world["ix"])
    code, stdout, stderr, crash = run_cli(argv, capsys)
    assert crash is None, f"{crash}\nstderr: {stderr[-2000:]}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0, f"exit 0 on bad input; stdout: {stdout[-500:]} stderr: {stderr[-500:]}"
    assert "Traceback" not in stderr + stdout
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith("error:") or lines[0] in ("aborted", "interrupted"), lines[0]
    assert committed_state(world["ix"]) == before, "a failed command changed the committed index"
    assert not (tmp_path / "missing").exists(), "a mistyped --index created a directory"


def test_writers_build_nothing_on_a_manifest_that_is_not_whole(world, capsys):
    """A manifest that is JSON but lacks what a version records: every writer refuses in one line and the
    damaged index keeps its files (`versions --keep 1` had committed a version on it and pruned the data)."""
    broken = world["broken"] / "incomplete-manifest"
    before = committed_state(broken)
    for args in (["versions", "--keep", "1"], ["compact"], ["rollback", "1", "--yes"], ["delete", "--ids", "x"],
                 ["update", str(world["bad"] / "changed.jsonl")]):
        code, stdout, stderr, crash = run_cli([*args, "--index", str(broken)], capsys)
        assert crash is None and code == 2, (args, crash, stderr)
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error:"), stderr
        assert committed_state(broken) == before, args


def test_a_value_echoed_in_an_error_is_shown_as_typed(world, tmp_path, capsys):
    """Rich markup and control characters in a user's value are printed literally, escaped, on one line."""
    code, _, stderr, crash = run_cli(["search", "shirt", "--index", str(tmp_path / "[red]shop\nx")], capsys)
    assert crash is None and code == 2
    assert stderr.strip().splitlines() == [f"error: no index at {tmp_path}/[red]shop\\nx; build one with "
                                           "`shoplens index CATALOG` or pass --index DIR"]


@pytest.mark.parametrize("name", ["truncated-manifest", "missing-segment", "bad-current", "no-versions",
                                  "incomplete-manifest"])
@pytest.mark.parametrize("command", INSPECTORS)
def test_a_damaged_index_is_described(world, command, name, capsys):
    """info and versions may describe what they can read; check names the damage; never a traceback."""
    code, stdout, stderr, crash = run_cli([command, "--index", str(world["broken"] / name)], capsys)
    assert crash is None, crash
    assert "Traceback" not in stdout + stderr
    if command == "check":
        assert code == 1 or code == 2, (code, stdout, stderr)
        assert all(line.startswith(("problem:", "error:", "warning:")) for line in stderr.splitlines() if line.strip())


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_ctrl_c_during_an_update_leaves_the_index_as_it_was(world, tmp_path, capsys, delay):
    """Ctrl-C (KeyboardInterrupt from a timer) in the middle of an update: 'interrupted', exit 130, the committed
    index unchanged and no version folder left half-written; or, if the write won the race, a whole new version."""
    from shoplens.indexers.maintenance import check_index

    rows = [dict(row, title=f"{row['title']} edition {delay}") for row in sample_products(300)]
    delta = write_catalog(tmp_path / "delta.jsonl", rows)
    before = committed_state(world["ix"])

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, delay)
    saved = sys.argv
    sys.argv = ["shoplens", "update", str(delta), "--index", str(world["ix"]), "--device", "cpu"]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = saved
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    leftovers = [p.name for p in (world["ix"] / "versions").iterdir() if not p.name.isdigit()]
    assert not leftovers, leftovers
    if code == 130:
        assert stderr.strip() == "interrupted"
        assert committed_state(world["ix"]) == before
    else:
        assert code == 0 and committed_state(world["ix"]) != before
    assert check_index(world["ix"]).ok


@pytest.mark.parametrize("url", ["not a url", "http://[::1", "ftp://search.internal", "http://127.0.0.1:99999",
                                 "http://127.0.0.1:abc", ","])
@pytest.mark.parametrize("variable, backend", [("SHOPLENS_ES_URL", "elasticsearch"), ("SHOPLENS_OS_URL", "opensearch")])
def test_a_cluster_address_that_is_no_address_is_one_line(world, tmp_path, capsys, monkeypatch, variable, backend, url):
    """A search cluster's address comes from the environment: one that cannot be parsed (the client library
    raised a ValueError or urllib3's LocationParseError through the CLI) is one line naming the variable."""
    monkeypatch.setenv(variable, url)
    code, _, stderr, crash = run_cli(["index", str(world["catalog"]), "--index", str(tmp_path / "new"),
                                      "--lexical", backend, "--device", "cpu"], capsys)
    assert crash is None, crash
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and stderr.startswith("error:"), stderr
    assert variable in stderr and "Traceback" not in stderr
    assert not (tmp_path / "new").exists()


def test_a_password_in_a_cluster_address_is_not_echoed(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SHOPLENS_ES_URL", "http://shop:s3cret@127.0.0.1:9")  # nothing listens on port 9
    code, _, stderr, crash = run_cli(["index", str(world["catalog"]), "--index", str(tmp_path / "new"),
                                      "--lexical", "elasticsearch", "--device", "cpu"], capsys)
    assert crash is None and code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "s3cret" not in stderr and "shop:***@" in stderr


def test_watch_skips_links_it_cannot_follow(world, tmp_path, capsys):
    """A link loop or a dangling link in the inbox (stat() raises) is skipped, never a traceback."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "loop.jsonl").symlink_to(inbox / "loop.jsonl")
    (inbox / "gone.jsonl").symlink_to(tmp_path / "nothing.jsonl")
    before = committed_state(world["ix"])
    code, _, stderr, crash = run_cli(["watch", str(inbox), "--index", str(world["ix"]), "--once"], capsys)
    assert crash is None, crash
    assert code == 0 and "Traceback" not in stderr, stderr
    assert committed_state(world["ix"]) == before


@pytest.mark.parametrize("side", [10_000, 12_000])  # 100 and 144 megapixels: PIL warns (89M-179M), not raises
def test_a_photo_in_pils_warning_band_is_one_line_from_a_real_process(world, tmp_path, side):
    """In a process of its own PIL's DecompressionBombWarning reached stderr before ShopLens's error (the
    in-process cases above never show it: the first warning of a location is shown once, and pytest captures
    it). Now the header check turns it into the one error line."""
    import subprocess

    from tests.fuzzing import png_header

    photo = png_header(tmp_path / "wide.png", side, side)
    done = subprocess.run([sys.executable, "-m", "shoplens", "search", "--image", str(photo), "--index",
                           str(world["ix"])], capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error:") and "more than 40,000,000 pixels" in lines[0]


# -- what this user may not read or write -------------------------------------------------------
# Run as a user that file modes bind (`nobody` when the tests run as root, see tests.helpers).
# An unreadable file: Click's own check where the real user is bound, the reader's line where only the
# effective one is (these tests, as root).
UNREADABLE = ("'{dir}/secret.jsonl' is not readable", "cannot read the catalog {dir}/secret.jsonl (Permission denied); "
              "give this user read access to it")
PERMISSION_CASES = [  # (argv, what the line says, or the ways it may say it)
    (["update", "{dir}/secret.jsonl", "--index", "{own}"], UNREADABLE),
    (["index", "{dir}/secret.jsonl", "--index", "{own}", "--device", "cpu"], UNREADABLE),
    (["update", "{dir}/delta.jsonl", "--index", "{ro}"], "cannot write to the index {ro} (Permission denied)"),
    (["index", "{dir}/delta.jsonl", "--index", "{ro}", "--device", "cpu"], "cannot write to the index {ro} (Permission"),
    (["delete", "--ids", "{id}", "--index", "{ro}"], "cannot write to the index {ro} (Permission denied)"),
    (["index", "{dir}/delta.jsonl", "--index", "{dir}/new", "--device", "cpu"], "cannot write in {dir} (Permission"),
    # the index may be written, the folder it sits in (and so the rejects file beside it) may not
    (["update", "{dir}/half-bad.jsonl", "--index", "{own}"], "cannot write the rejects file {own}.rejects.jsonl"),
    (["index", "{dir}/half-bad.jsonl", "--index", "{own}", "--device", "cpu"], "cannot write the rejects file {own}."),
    (["delete", "--ids", "no-such-id,{id}", "--index", "{own}"], "cannot write the rejects file {own}.rejects.jsonl"),
    (["events", "{dir}/half-bad.events.jsonl", "--index", "{own}"], "cannot write the rejects file {own}.rejects.jsonl"),
    (["search", "--queries", "{dir}/q.txt", "--out", "{dir}/out.jsonl", "--index", "{own}"],
     "'--out': {dir}/out.jsonl: cannot write in {dir} (Permission denied)"),
    (["watch", "{dir}/inbox", "--index", "{own}", "--once"], "cannot write in the inbox folder {dir}/inbox (Permission"),
]


@pytest.fixture
def locked_folder(unwritable_index):
    """The unwritable index's folder, made unwritable too, holding: a catalog no one may read, a good delta, a
    delta and an events file with one bad line each, a queries file, an index this user may write (`own`,
    whose rejects file would go in the folder) and an inbox holding a delta that this user may not write."""
    import subprocess

    folder = unwritable_index.parent
    own = shutil.copytree(unwritable_index, folder / "own")
    from tests.helpers import NOBODY, set_modes

    set_modes(own, writable=True)
    rows = sample_products(2)
    write_catalog(folder / "delta.jsonl", [dict(row, title=row["title"] + " (new)") for row in rows])
    write_catalog(folder / "half-bad.jsonl", [dict(rows[0], title="A new title"), {"id": "no-title"}])
    (folder / "half-bad.events.jsonl").write_text(json.dumps({"ts": 1, "type": "click", "id": rows[0]["id"]})
                                                  + "\n" + json.dumps({"ts": 1, "type": "teleport"}) + "\n")
    (folder / "q.txt").write_text("shirt\n")
    (folder / "inbox").mkdir()
    shutil.copy(folder / "delta.jsonl", folder / "inbox" / "delta.jsonl")
    write_catalog(folder / "secret.jsonl", rows).chmod(0o000)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(own)], check=True)
    for path in (folder / "inbox", folder):
        path.chmod(0o555)
    try:
        yield {"dir": folder, "ro": unwritable_index, "own": own, "id": rows[0]["id"]}
    finally:
        for path in (folder, folder / "inbox"):
            path.chmod(0o755)


@pytest.mark.parametrize("args, message", PERMISSION_CASES, ids=[" ".join(a[:2]) + f" {str(m)[:30]}" for a, m in PERMISSION_CASES])
def test_what_this_user_may_not_read_or_write_is_one_line_naming_it(locked_folder, args, message, capsys):
    """An unreadable catalog, an index (or the folder a new one goes in) this user cannot write, a rejects file
    it cannot write beside a writable index (a PermissionError traceback after the rows were read), an --out in
    a folder it cannot write, an inbox it cannot write (a traceback from the watcher): one line naming the
    path and the problem, exit 2, and nothing written: both indexes, the inbox and the folder as they were."""
    from tests.helpers import as_a_user_who_cannot_write

    values = {key: str(value) for key, value in locked_folder.items()}
    before = [committed_state(locked_folder[key]) for key in ("ro", "own")]
    listing = sorted(p.name for p in locked_folder["dir"].rglob("*") if "own" not in p.parts and "ix" not in p.parts)
    with as_a_user_who_cannot_write():
        code, _, stderr, crash = run_cli([a.format(**values) for a in args], capsys)
    assert crash is None, f"{crash}\nstderr: {stderr[-2000:]}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert any(way.format(**values) in lines[0] for way in ((message,) if isinstance(message, str) else message)), lines[0]
    assert [committed_state(locked_folder[key]) for key in ("ro", "own")] == before
    assert sorted(p.name for p in locked_folder["dir"].rglob("*") if "own" not in p.parts and "ix" not in p.parts) == listing


@pytest.mark.parametrize("args, message", [
    (["--file", "{tmp}/ids.txt"], "error: ids.txt holds no ids (empty, or only blank and # comment lines); nothing "
                                  "was deleted; write one product id a line"),
    (["--ids", " , "], "error: --ids ' , ' names no ids; nothing was deleted; give them comma-separated, e.g. "
                       "--ids 1528,1529"),
])
def test_a_delete_naming_no_ids_says_so(world, tmp_path, capsys, args, message):
    """An ids file of comments and blank lines (or an --ids of commas) 'changes nothing (0 row(s) rejected)', as if
    ids had been looked for and none rejected; it now says the file holds no ids, as `watch` does."""
    (tmp_path / "ids.txt").write_text("# ids to delete after the sale\n\n#\n")
    before = committed_state(world["ix"])
    code, _, stderr, crash = run_cli(["delete", *[a.format(tmp=tmp_path) for a in args], "--index", str(world["ix"])],
                                     capsys)
    assert (crash, code, stderr.strip()) == (None, 2, message)
    assert committed_state(world["ix"]) == before
