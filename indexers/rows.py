"""Raw rows out of catalog files (JSONL, CSV, Parquet), and the one check every raw value passes.

This is where catalog bytes enter ShopLens, so every class of damaged input is
turned into a broken row with its line number here (the rest of the file is
still read), or, when the file itself is unusable, into a CatalogError:

- text must be UTF-8; a UTF-8 byte-order mark is ignored; a line that is not
  UTF-8 is rejected on its own (decoding uses `surrogateescape`, so the bad
  bytes are found per line instead of failing the whole file);
- a CSV field may hold at most `MAX_FIELD_CHARS` characters, like every text
  value of any format; a CSV row whose id, title, brand, price or image spans
  lines, or that has fewer cells than the header while spanning lines, is an
  unterminated quote that swallowed the rows after it, and is rejected with the
  lines it covers;
- a compressed file that ends early is an error naming the last line read;
- values (`clean_value`): numbers must be finite and integers fit in 64 bits,
  binary values must be UTF-8 text, dates become ISO-8601 text.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import decimal
import errno
import gzip
import io
import json
import math
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from shoplens.common.errors import CatalogError
from shoplens.common.jsontext import loads_line

SUPPORTED_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")
MAX_FIELD_CHARS = 1_000_000  # one text value (a CSV cell, a JSON string), in characters
INT64 = (-(2 ** 63), 2 ** 63 - 1)
CANONICAL_FIELDS = ("id", "title", "description", "brand", "category", "price", "image")
SHORT_FIELDS = ("id", "title", "brand", "price", "image")  # never legitimately span lines in a CSV
MAX_NESTING = 20

csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))


class BrokenRow:
    """A row that could not be parsed, with the reason (and where it ended, for rows spanning lines)."""

    def __init__(self, reason: str):
        self.reason = reason


class ValueProblem(ValueError):
    """A raw value breaks a rule of `clean_value`; the message names the field, `column` the row's column."""

    column: str | None = None


def iter_raw_rows(path: str | Path, field_map: dict[str, list[str]] | None = None) -> Iterator[tuple[int, Any, str]]:
    """(line number, parsed row or a BrokenRow, raw text) for every row of a catalog file."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"catalog file {path} does not exist; check the path")
    if path.is_dir():
        raise CatalogError(f"{path} is a directory; pass the catalog file (.jsonl, .jsonl.gz, .csv or .parquet)")
    if not path.is_file():
        raise CatalogError(f"{path} is not a regular file (a pipe or a device?); pass a catalog file")
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):  # "use .jsonl" alone led to renaming an array, then to every line rejected
        source = f"gunzip -c {path.name} | jq -c '.[]'" if name.endswith(".gz") else f"jq -c '.[]' {path.name}"
        raise CatalogError(f"cannot read {path.name}: ShopLens reads JSON Lines, one product object a line; convert "
                           f"a JSON array with {source} > products.jsonl, or rename a file that already has one "
                           "object a line to .jsonl")
    if not name.endswith(SUPPORTED_SUFFIXES):
        raise CatalogError(
            f"cannot read {path.name}: unsupported format; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not name.endswith(".parquet"):
        _refuse_wide_text(path)
    last = [0]
    try:
        if name.endswith(".parquet"):
            rows = _parquet_rows(path)
        elif name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):  # the separator is read from the header
            rows = _csv_rows(path, field_map or {})
        else:
            rows = _jsonl_rows(path)
        for row in rows:
            last[0] = row[0]
            yield row
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CatalogError(f"{path.name} ends early or is damaged after line {last[0]} ({exc}); "
                           "nothing was indexed from it; fix or re-create the file") from None
    except OSError as exc:  # "[Errno 13] Permission denied: '<the path again>'" said the path twice and no fix
        fix = "; give this user read access to it (chmod a+r) or copy it where it can" if exc.errno == errno.EACCES else ""
        raise CatalogError(f"cannot read the catalog {path} ({exc.strerror or exc}){fix}") from None


def _columns_of(fields: tuple[str, ...], field_map: dict[str, list[str]]) -> set[str]:
    """The columns that hold `fields`: their own names and the columns a field map reads them from."""
    columns = set(fields)
    for canonical in fields:
        columns.update(field_map.get(canonical, []))
    return columns


WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
             (codecs.BOM_UTF16_BE, "UTF-16"))


def _refuse_wide_text(path: Path) -> None:
    """A text catalog saved as UTF-16 or UTF-32 (a spreadsheet's or PowerShell's "Unicode" export) is one error
    naming the encoding, not every line rejected as "not UTF-8": a byte-order mark, or NUL bytes between the
    characters of its first line."""
    try:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as handle:
            start = handle.read(256)
    except (OSError, EOFError, zlib.error):
        return  # the reader reports a damaged file with its line
    encoding = next((name for bom, name in WIDE_BOMS if start.startswith(bom)), None)
    if encoding is not None and start.count(b"\x00") * 10 < len(start):
        encoding = None  # the mark's bytes, but not wide text (UTF-8 text holds no NUL): a broken first line
    first = start.split(b"\n\x00", 1)[0] if encoding is None else b""
    if encoding is None and len(first) >= 8 and first.count(b"\x00") * 2 >= len(first) - 1:
        encoding = "UTF-16"
    if encoding:
        plain = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
        source = f"gunzip -c {path.name} | iconv -f {encoding}" if plain != path.name else f"iconv -f {encoding} {path.name}"
        raise CatalogError(f"{path.name} is {encoding} text, not UTF-8; save it as UTF-8 (e.g. `{source} -t UTF-8 > "
                           f"utf8-{plain}`), then index that file")


def _open_text(path: Path) -> io.TextIOBase:
    """UTF-8 text (a byte-order mark skipped); bytes that are not UTF-8 become lone surrogates, found per row."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _not_utf8(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any, str]]:
    with _open_text(path) as handle:
        for number, text in enumerate(handle, start=1):
            stripped = text.strip()
            if not stripped:
                continue
            if _not_utf8(stripped):
                yield number, BrokenRow("not UTF-8 text (save the file as UTF-8)"), _printable(stripped)
                continue
            if len(stripped) > 64 * MAX_FIELD_CHARS:
                yield number, BrokenRow(f"line is longer than {64 * MAX_FIELD_CHARS:,} characters"), stripped[:500]
                continue
            try:
                yield number, loads_line(stripped), stripped
            except json.JSONDecodeError as exc:
                yield number, BrokenRow(f"invalid JSON: {exc.msg} at column {exc.colno}"), stripped
            except ValueError as exc:  # a number past Python's digit limit; nesting too deep; a lone surrogate
                yield number, BrokenRow(f"invalid JSON: {str(exc).split(';')[0]}"), stripped[:500]


def csv_delimiter(header_line: str) -> str:
    """The header's separator: a comma, or else whichever of ; tab | it uses most (a CSV saved in a locale
    whose decimal mark is the comma is separated by semicolons)."""
    if "," in header_line:
        return ","
    counts = {sep: header_line.count(sep) for sep in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _csv_rows(path: Path, field_map: dict[str, list[str]]) -> Iterator[tuple[int, Any, str]]:
    short_columns, canonical = _columns_of(SHORT_FIELDS, field_map), _columns_of(CANONICAL_FIELDS, field_map)
    with _open_text(path) as handle:
        delimiter = csv_delimiter(handle.readline())
    with _open_text(path) as handle:
        read = [0]  # physical lines handed to the CSV reader so far
        # "id, title, price": a space after each separator, as people type a CSV, is no part of the value (it was
        # a column " title" no row has, and a quoted cell after a space was cut at its commas)
        reader = csv.DictReader(_counted(handle, read), delimiter=delimiter, strict=True, skipinitialspace=True)
        try:
            header = reader.fieldnames
        except csv.Error as exc:
            raise CatalogError(f"{path.name}: cannot read the CSV header: {exc}") from None
        if header is None:
            return
        header = reader.fieldnames = [name.strip() for name in header]
        if not any(name.strip() for name in header):  # every row would be "row has N cells, header has 0"
            raise CatalogError(f"{path.name}: the CSV header (line 1) names no columns; the first line must "
                               "name them, e.g. id,title,price (remove blank lines above it)")
        if any(_not_utf8(name) for name in header):
            raise CatalogError(f"{path.name}: the CSV header is not UTF-8 text; save the file as UTF-8")
        _check_unique_columns(path, header, "the CSV header")
        start = 2
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = str(exc)
                if "unexpected end of data" in reason:
                    reason = (f"a quoted field opened on line {start} is never closed (unterminated quote); "
                              f"lines {start}-{read[0]} were swallowed by it")
                yield start, BrokenRow(f"bad CSV: {reason}"), ""
                start = read[0] + 1
                continue
            end = read[0]
            checked = _check_csv_row(row, header, short_columns, start, end)
            yield start, _json_cells(checked, canonical), ",".join(
                _printable(str(v)) for v in row.values() if not isinstance(v, list))[:2000]
            start = end + 1


def _check_unique_columns(path: Path, names: list[str], where: str) -> None:
    """A column name given twice: a row as a dict would keep the last column of that name and drop the
    others unseen, so the file is refused with the names to fix."""
    counts = Counter(name for name in names if name.strip())
    twice = sorted(name for name, count in counts.items() if count > 1)
    if twice:
        raise CatalogError(f"{path.name}: {where} names column(s) {', '.join(map(repr, twice[:5]))} "
                           "more than once; rename them so each column has its own name")


def _counted(lines, count: list[int]) -> Iterator[str]:
    for line in lines:
        count[0] += 1
        yield line


def _check_csv_row(row: dict, header: list[str], short_columns: set[str], start: int, end: int) -> Any:
    if None in row:  # more cells than header columns
        return BrokenRow(f"row has {len(row) - 1 + len(row[None])} cells, header has {len(row) - 1}")
    values = list(row.values())
    if any(isinstance(v, str) and _not_utf8(v) for v in values):
        return BrokenRow("not UTF-8 text (save the file as UTF-8)")
    if end > start:
        spanning = [k for k, v in row.items() if k in short_columns and isinstance(v, str) and "\n" in v]
        if spanning or any(v is None for v in values):
            which = f"field {spanning[0]!r}" if spanning else "a field"
            return BrokenRow(f"{which} runs from line {start} to line {end}: probably an unterminated quote "
                             f"that swallowed the rows after it; fix the quote and re-run")
    return {key: value for key, value in row.items() if value not in ("", None)}


def _json_cells(row: Any, canonical: set[str]) -> Any:
    """An attribute cell holding a JSON object or array ('[{"size": "M"}]', '{"colour": "red"}') is that value, as
    the same field of a JSON Lines or Parquet catalog is, so it is flattened the same way (variants.size); a cell
    that only looks like one ('[new] in', a Python repr) stays text, and canonical fields stay as written."""
    if not isinstance(row, dict):
        return row
    for key, value in row.items():
        text = value.strip() if isinstance(value, str) and key not in canonical else ""
        if (text[:1], text[-1:]) in (("{", "}"), ("[", "]")):
            try:
                row[key] = loads_line(text)
            except ValueError:
                pass
    return row


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any, str]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise CatalogError(f"cannot read Parquet file {path}: {exc}") from None
    _check_unique_columns(path, parquet.schema_arrow.names, "the Parquet schema")
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=4096):
            for row in batch.to_pylist(maps_as_pydicts="strict"):  # a map column is an object, as in JSON
                number += 1
                yield number, row, ""
    except Exception as exc:  # a damaged row group or a type pyarrow cannot convert to Python
        raise CatalogError(f"cannot read Parquet file {path} after row {number}: {exc}") from None


def clean_row(row: dict) -> dict[str, Any]:
    """Every value of a raw row through `clean_value`; a ValueProblem says which column it came from."""
    cleaned: dict[str, Any] = {}
    for key, value in row.items():
        try:
            cleaned[str(key)] = clean_value(str(key), value)
        except ValueProblem as exc:
            exc.column = str(key)
            raise
    return cleaned


def clean_value(name: str, value: Any, depth: int = 0) -> Any:
    """A raw value in the types the rest of ShopLens handles, or ValueProblem naming the field.

    None, bool, finite floats (NaN is missing), integers within 64 bits, text of at most
    MAX_FIELD_CHARS characters (binary values must be UTF-8), lists and objects of those;
    dates and times become ISO-8601 text, decimals become floats.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValueProblem(f"field {name!r}: number {str(value)[:20]}... does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not math.isfinite(value):
            raise ValueProblem(f"field {name!r}: {value} is not a finite number")
        return value
    if isinstance(value, decimal.Decimal):
        return clean_value(name, float(value), depth)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueProblem(f"field {name!r} holds binary data, not UTF-8 text") from None
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise ValueProblem(f"field {name!r} is longer than {MAX_FIELD_CHARS:,} characters")
        return value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):  # a Parquet duration: "which a catalog cannot hold" named no fix
        raise ValueProblem(f"field {name!r} holds a duration ({value}); store a duration as a number of seconds")
    if depth >= MAX_NESTING:
        raise ValueProblem(f"field {name!r} is nested more than {MAX_NESTING} levels deep")
    if isinstance(value, dict):
        return {str(key): clean_value(f"{name}.{key}", item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_value(name, item, depth + 1) for item in value]
    raise ValueProblem(f"field {name!r} has a value of type {type(value).__name__}, which a catalog cannot hold")
