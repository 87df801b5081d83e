"""Seeded generators of bad files and arguments for the end-to-end CLI fuzz test (`tests/test_cli_fuzz.py`).

Every case is (category, argv, index_path_that_must_not_appear_or_None). Files a case
needs are written into `work` as the case is generated. Deterministic for a seed.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NASTY_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "9" * 400, "9" * 5000, "-1", "0", "1e20", "100", "2",
                 "0.5", "-0", "1.7976931348623157e308", "12345678901234567890123"]
NASTY_TEXT = ["", " ", "\x00", "a" * 3000, "🙂", "\ufeff", "NA", "null", "a > b", "x|y", '"', "\\", "\u2028", "é"]


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels, with almost no pixel data (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def nasty_images(folder: Path) -> dict[str, Path]:
    """Image paths the issue names: a decompression bomb, pixel counts over the limit, a FIFO, /dev/zero,
    a text file, a directory, a truncated JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / "pipe.jpg"
    if not fifo.exists():
        os.mkfifo(fifo)
    (folder / "text.jpg").write_text("not an image")
    (folder / "dir.jpg").mkdir(exist_ok=True)
    sample = Path(__file__).resolve().parent.parent / "data" / "myntra-sample" / "images" / "1528.jpg"
    (folder / "truncated.jpg").write_bytes(sample.read_bytes()[:300])
    return {"bomb": png_header(folder / "bomb.png", 15000, 15000), "big": png_header(folder / "big.png", 10000, 10000),
            "over": png_header(folder / "over.png", 7000, 7000), "fifo": fifo, "zero": Path("/dev/zero"),
            "text": folder / "text.jpg", "dir": folder / "dir.jpg", "truncated": folder / "truncated.jpg"}


class CaseMaker:
    """Makes fuzz cases against one index, whose product ids are `ids`."""

    def __init__(self, seed: int, work: Path, index: Path, ids: list[str], images: dict[str, Path]):
        self.rng = random.Random(seed)
        self.work = work
        self.index = index
        self.ids = ids
        self.images = images  # name -> path of a nasty image (bomb, fifo, /dev/zero, text, directory)
        self.count = 0
        self._missing: Path | None = None

    # -- values --------------------------------------------------------------------------

    def number_text(self) -> str:
        return self.rng.choice(NASTY_NUMBERS + [str(self.rng.randint(-5, 5)), f"{self.rng.uniform(-1e3, 1e3):g}"])

    def json_value(self, depth: int = 0):
        kind = self.rng.randrange(9 if depth < 2 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return self.rng.choice([True, False])
        if kind == 2:
            return self.rng.choice([0, -1, 2 ** 70, 10 ** 300, 3, 1.5])
        if kind == 3:
            return self.rng.choice(NASTY_TEXT)
        if kind == 4:
            return "".join(chr(self.rng.randrange(1, 0x3000)) for _ in range(self.rng.randrange(0, 12)))
        if kind == 5:
            return str(self.rng.choice(list(self.images.values())))
        if kind == 6:
            return [self.json_value(depth + 1) for _ in range(self.rng.randrange(0, 3))]
        if kind == 7:
            return {self.rng.choice(["a", "b", "", "x.y"]): self.json_value(depth + 1) for _ in range(2)}
        return self.rng.choice([float("nan"), float("inf"), -float("inf")])

    def raw_number(self) -> str:
        return self.rng.choice(NASTY_NUMBERS)

    # -- files ---------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        self.count += 1
        folder = self.work / f"case-{self.count:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def product_line(self) -> bytes:
        row = {}
        for key in self.rng.sample(["id", "title", "price", "brand", "category", "image", "description", "colour"],
                                   self.rng.randrange(0, 6)):
            row[key] = self.json_value()
        if self.rng.random() < 0.5:
            row["id"] = self.rng.choice(self.ids + ["new-" + str(self.rng.randrange(50))])
        if self.rng.random() < 0.3:  # a raw number JSON cannot express with json.dumps
            text = json.dumps(row, allow_nan=True, default=str)[:-1]
            return (text + (", " if row else "") + f'"price": {self.raw_number()}}}').encode()
        return json.dumps(row, allow_nan=True, default=str).encode()

    def garbage_line(self) -> bytes:
        return self.rng.choice([b"{", b"[1]", b"\xff\xfe\x00", b"{" * 3000, b"\xef\xbb\xbf{}", b"null",
                                bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 30)))])

    def lines(self, make, count: int) -> bytes:
        out = []
        for _ in range(count):
            line = make() if self.rng.random() < 0.8 else self.garbage_line()
            out.append(line.replace(b"\n", b" ").replace(b"\r", b" "))
        return b"\n".join(out) + b"\n"

    def catalog_file(self) -> Path:
        kind = self.rng.choice(["jsonl", "jsonl", "csv", "parquet", "gz", "bom", "binary"])
        if kind in ("jsonl", "bom"):
            path = self.path("delta.jsonl")
            path.write_bytes((b"\xef\xbb\xbf" if kind == "bom" else b"") + self.lines(self.product_line, self.rng.randrange(1, 6)))
        elif kind == "gz":
            path = self.path("delta.jsonl.gz")
            data = gzip.compress(self.lines(self.product_line, self.rng.randrange(1, 40)))
            path.write_bytes(data[:self.rng.randrange(1, len(data) + 1)])
        elif kind == "csv":
            path = self.path("delta.csv")
            cells = ['"', '"open', 'a"b', "x" * self.rng.choice([10, 140_000]), "1,299", "\xff", "Red shirt",
                     self.rng.choice(self.ids), self.raw_number()]
            header = "id,title,price\n" if self.rng.random() < 0.8 else "\ufeffid,title\n"
            body = "\n".join(",".join(self.rng.choice(cells) for _ in range(self.rng.randrange(1, 5)))
                             for _ in range(self.rng.randrange(1, 5)))
            path.write_bytes((header + body + "\n").encode("utf-8", "surrogateescape"))
        elif kind == "parquet":
            path = self.path("delta.parquet")
            count = self.rng.randrange(1, 4)
            table = {"id": pa.array([self.rng.choice(self.ids + [None, "p"]) for _ in range(count)], pa.string()),
                     "title": pa.array([self.rng.choice([b"ok", b"\xff\xfe", None]) for _ in range(count)], pa.binary()),
                     "blob": pa.array([bytes([self.rng.randrange(256)]) for _ in range(count)], pa.binary()),
                     "price": pa.array([self.rng.choice([1.0, float("nan"), float("inf"), None]) for _ in range(count)])}
            pq.write_table(pa.table(table), path)
        else:
            path = self.path(self.rng.choice(["delta.jsonl", "delta.csv", "delta.parquet"]))
            path.write_bytes(bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(0, 200))))
        return path

    def event_line(self) -> bytes:
        event = {"ts": self.rng.choice([1, 1e300, "nan", "inf", "9999-12-31T23:59:59", "2026-01-01T00:00:00Z",
                                        self.json_value()]),
                 "type": self.rng.choice(["click", "impression", "order", ["click"], None, "purchase"]),
                 "id": self.rng.choice(self.ids + [None, True, [1], "unknown"]),
                 "query": self.rng.choice(["shirt", None, 5, "a" * 20_000]),
                 "position": self.rng.choice([1, 3, 0, -1, 10 ** 30, True, None, "2"])}
        event = {k: v for k, v in event.items() if self.rng.random() < 0.9}
        return json.dumps(event, allow_nan=True, default=str).encode()

    def events_file(self) -> Path:
        path = self.path("e.events.jsonl.gz" if self.rng.random() < 0.2 else "e.events.jsonl")
        data = self.lines(self.event_line, self.rng.randrange(1, 8))
        if path.name.endswith(".gz"):
            data = gzip.compress(data)
            data = data[:self.rng.randrange(1, len(data) + 1)]
        path.write_bytes(data)
        return path

    def judgment_line(self) -> bytes:
        row = {"query": self.rng.choice(["shirt", "shoes", "", None, 5, "a" * 3000]),
               "id": self.rng.choice(self.ids[:5] + ["nope", None, True]),
               "grade": self.rng.choice([0, 1, 2, 3, "abc", None, True, 1e20, 100])}
        row = {k: v for k, v in row.items() if self.rng.random() < 0.9}
        text = json.dumps(row, default=str)
        if self.rng.random() < 0.2:
            text = text.replace('"grade": 0', f'"grade": {self.rng.choice(["NaN", "Infinity", "1e999"])}')
        return text.encode()

    def judgments_file(self) -> Path:
        if self.rng.random() < 0.25:
            path = self.path("j.qrels")
            path.write_text("\n".join(f"{self.rng.choice(['1', '2', 'x'])} 0 {self.rng.choice(self.ids[:3])} "
                                      f"{self.rng.choice(['1', 'abc', 'nan', '-1', '1e400'])}"
                                      for _ in range(self.rng.randrange(1, 4))) + "\n")
            topics = path.with_name("t.tsv")
            topics.write_bytes(self.rng.choice([b"1\tshirt\n2\tshoes\n", b"1 shirt\n", b"\xff\tx\n", b'{"qid": 1}\n']))
            return path
        path = self.path("j.jsonl")
        path.write_bytes(self.lines(self.judgment_line, self.rng.randrange(1, 6)))
        return path

    # -- cases ---------------------------------------------------------------------------

    def case(self) -> tuple[str, list[str], Path | None]:
        category = self.rng.choices(
            ["update", "index", "events", "delete", "search", "train", "eval", "paths", "maintenance", "watch"],
            weights=[20, 3, 12, 8, 25, 4, 3, 10, 8, 4])[0]
        return category, getattr(self, f"_{category}")(), None if category != "paths" else self._missing

    def _index_args(self) -> list[str]:
        return ["--index", str(self.index)]

    def _update(self) -> list[str]:
        return ["update", str(self.catalog_file()), *self._index_args(), *self._maybe("--strict", "--json")]

    def _index(self) -> list[str]:
        return ["index", str(self.catalog_file()), "--index", str(self.path("new-index")), "--device", "cpu",
                *self._maybe("--strict", "--json")]

    def _events(self) -> list[str]:
        return ["events", str(self.events_file()), *self._index_args(), *self._maybe("--strict", "--json")]

    def _delete(self) -> list[str]:
        if self.rng.random() < 0.5:
            path = self.path(self.rng.choice(["ids.txt", "ids.jsonl"]))
            path.write_bytes(self.rng.choice([b"\x00\xff\xfe", b'{"id": [1]}\n', b'{"x": 1}\n', b"\n\n",
                                              ("\n".join(self.rng.sample(self.ids, 2)) + "\nunknown\n").encode(),
                                              bytes(self.rng.randrange(256) for _ in range(40))]))
            source = ["--file", str(path)]
        else:
            source = ["--ids", self.rng.choice([",", "unknown", self.rng.choice(self.ids), "a" * 600, ""])]
        return ["delete", *source, *self._index_args(), *self._maybe("--strict", "--json")]

    def _search(self) -> list[str]:
        args = ["search", self.rng.choice(["shirt", "", " ", "\x00", "AND", '"', "a" * 2500, "red shoes", "🙂"]),
                *self._index_args(), "--json"]
        options = {"-k": ["0", "1", "5", "1001", "9" * 22, "-3"], "--page": ["1", "2", "0", "9" * 22, "99999"],
                   "--rrf-k": ["nan", "inf", "-1", "60", "1e400", "0"], "--weights": ["inf,1", "nan,1", "1,1", "0,0",
                                                                                     "1", "a,b", "1e999,1", "0.3,0.7"],
                   "--candidates": ["0", "20", "100000", "-1"], "--mode": ["dense", "lexical", "vector"],
                   "--fusion": ["wsum", "rrf", "max"], "--norm": ["zscore", "minmax", "l2"],
                   "--filter": ["price<=nan", "price<<3", "brand=Nike", "nothing=1", "price>=" + "9" * 5000, "=",
                                "category=Shoes|Sandals", "price<=inf", "year>2000"],
                   "--image": [str(p) for p in self.images.values()] + ["/nonexistent.jpg"]}
        for option in self.rng.sample(sorted(options), self.rng.randrange(0, 4)):
            args += [option, self.rng.choice(options[option])]
        return args + self._maybe("--no-rerank", "--explain")

    def _train(self) -> list[str]:
        source = ([str(self.judgments_file())] if self.rng.random() < 0.7 else ["--from-events", str(self.events_file())])
        if source[0].endswith(".qrels"):
            source += ["--topics", str(Path(source[0]).with_name("t.tsv"))]
        return ["train-ranker", *source, *self._index_args(), "--trees", self.rng.choice(["0", "3", "-1", "9" * 22]),
                "--depth", self.rng.choice(["0", "20", "2000"]), "--device", "cpu", *self._maybe("--json")]

    def _eval(self) -> list[str]:
        path = self.judgments_file()
        run_dir = self.rng.choice([str(path), str(path.with_name("runs")), "/dev/null/x"])
        extra = ["--topics", str(path.with_name("t.tsv"))] if path.name.endswith(".qrels") else []
        return ["eval", str(path), *extra, *self._index_args(), "--run-dir", run_dir, "--device", "cpu", "--json"]

    def _paths(self) -> list[str]:
        target = self.rng.choice(["file", "missing"])
        if target == "file":
            path = self.path("not-an-index")
            path.write_text("x")
            self._missing = None
        else:
            path = self.path("typo") / "index"
            self._missing = path
        command = self.rng.choice([["rollback", "1"], ["compact"], ["versions"], ["check"], ["info"],
                                   ["search", "shirt"], ["delete", "--ids", "1"], ["versions", "--keep", "3"],
                                   ["events", str(self.events_file())], ["update", str(self.catalog_file())]])
        return [*command, "--index", str(path)]

    def _maintenance(self) -> list[str]:
        command = self.rng.choice([["rollback", self.rng.choice(["0", "1", "2", "-1", "9" * 22])],
                                   ["versions", "--keep", self.rng.choice(["0", "-1", "3", "9" * 22])],
                                   ["check", "--deep", self.rng.choice(["-1", "0", "2"])],
                                   ["check", "--version", self.rng.choice(["0", "1", "9" * 22])],
                                   ["compact"], ["versions"], ["info"]])
        return [*command, *self._index_args(), *self._maybe("--json")]

    def _watch(self) -> list[str]:
        inbox = self.path("inbox").parent / "inbox"
        inbox.mkdir(exist_ok=True)
        name = self.rng.choice(["a.jsonl", "b.delete.txt", "c.events.jsonl", "d.csv"])
        source = {"a.jsonl": self.catalog_file, "b.delete.txt": lambda: self.path("x"),
                  "c.events.jsonl": self.events_file, "d.csv": self.catalog_file}[name]()
        if source.exists():
            os.replace(source, inbox / name)
        past = 1_000_000_000
        for entry in inbox.iterdir():
            if entry.is_file():
                os.utime(entry, (past, past))  # settled long ago: --once picks it up at once
        return ["watch", str(inbox), *self._index_args(), "--once", "--json",
                "--window", self.rng.choice(["0", "nan", "-1", "inf", "1"]),
                "--max-rows", self.rng.choice(["0", "5", "9" * 22])]

    def _maybe(self, *flags: str) -> list[str]:
        return [flag for flag in flags if self.rng.random() < 0.3]
