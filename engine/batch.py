"""Many queries in one process: `shoplens search --queries FILE`.

A queries file has one query a line: plain text, or a JSON object with
`text`, `image` (a path, relative to the file), `filters` (a list or one
expression), and optionally `id`, `k`, `page`, `mode`, `fusion`. The whole
file is read and checked before the first query runs; a query that fails when
it runs (an unknown filter field, an unreadable photo) gives an error line in
the output and the others still run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from shoplens.common.errors import QueryError, ShopLensError
from shoplens.common.jsontext import loads_line
from shoplens.common.textfile import text_lines
from shoplens.engine.query import SearchRequest, check_typed_text

JSON_KEYS = {"id", "text", "query", "image", "filters", "k", "page", "mode", "fusion"}


@dataclass
class BatchQuery:
    """One line of a queries file, as a request (the command's options fill what the line leaves out)."""

    line: int
    request: SearchRequest
    query_id: str | None = None


def read_queries(path: str | Path, defaults: SearchRequest) -> list[BatchQuery]:
    """Every query of a queries file; a line that cannot be read is a QueryError naming its number."""
    path = Path(path)
    queries = []
    for number, line, is_object in query_lines(path, QueryError, "give one query a line as UTF-8 text"):
        query = _json_query(path, number, line, defaults) if is_object \
            else BatchQuery(number, replace(defaults, text=line))
        try:
            check_typed_text(query.request.text)
        except QueryError as exc:
            raise QueryError(f"{path.name} line {number}: {exc}") from None
        queries.append(query)
    if not queries:
        raise QueryError(f"{path} holds no queries; give one query a line")
    return queries


OBJECT_LINE = '{"text": "red dress", "image": "photo.jpg"}'


def query_lines(path: Path, error: type[ShopLensError], hint: str, what: str = "queries file"
                ) -> list[tuple[int, str, bool]]:
    """(number, line, is_object) for each non-blank line of a queries file, as every reader of one takes them
    (`search --queries`, `bench latency / warmup --queries`, `serve --warm-queries`): a line opening with "{"
    is a JSON object for the caller to parse; any other line is plain query text, except JSON that is no
    object: an array ([1, 2]) always, and a number, true, false or null in a file of JSON object lines, are
    an error naming the line (they were searched as the text "[1, 2]" or "null"); a JSON string
    ("red dress") is the text it holds. "42" in a file of plain lines stays a query (a size, a model number).
    A path that is missing, or no regular file (a folder was "not found"; a pipe would block), is an error."""
    if not path.exists():
        raise error(f"{what} {path} not found; check the path, and give a text file with one query a line")
    if not path.is_file():
        raise error(f"{what} {path} is not a regular file (a directory, pipe or device); give a text file with "
                    "one query a line")
    lines = [(number, raw.strip()) for number, raw in text_lines(path, error, hint) if raw.strip()]
    objects = any(line.startswith("{") for _, line in lines)
    read = []
    for number, line in lines:
        if line.startswith("{"):
            read.append((number, line, True))
            continue
        try:
            value = loads_line(line)
        except ValueError:
            value = line  # plain text
        if isinstance(value, list) or (objects and (value is None or isinstance(value, (bool, int, float)))):
            shown = line if len(line) <= 40 else line[:37] + "..."
            raise error(f"{path.name} line {number}: {shown} is JSON but not an object; write each query as "
                        f"plain text or as one JSON object a line, such as {OBJECT_LINE}")
        read.append((number, value if isinstance(value, str) else line, False))
    return read


def _json_query(path: Path, number: int, line: str, defaults: SearchRequest) -> BatchQuery:
    where = f"{path.name} line {number}"
    try:
        data = loads_line(line)
    except ValueError as exc:
        raise QueryError(f"{where}: not valid JSON ({getattr(exc, 'msg', exc)}); write one query a line or one JSON object a line") from None
    if not isinstance(data, dict):
        raise QueryError(f"{where}: a JSON line must be an object such as {{\"text\": \"red dress\"}}")
    unknown = sorted(set(data) - JSON_KEYS)
    if unknown:
        raise QueryError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(sorted(JSON_KEYS))}")
    _check_json_types(where, data)
    filters = data.get("filters") or []
    if isinstance(filters, str):
        filters = [filters]
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise QueryError(f"{where}: filters is a list of expressions such as [\"price<=3000\", \"brand=Nike\"]")
    image = data.get("image")
    if image is not None:
        image = Path(str(image)).expanduser()
        image = str(image if image.is_absolute() else path.parent / image)
    changes: dict[str, Any] = {"text": data.get("text", data.get("query")), "image": image,
                               "filters": list(defaults.filters) + filters}
    for key in ("k", "page"):
        if key in data:
            if not isinstance(data[key], int) or isinstance(data[key], bool):
                raise QueryError(f"{where}: {key} must be a whole number")
            changes[key] = data[key]
    for key in ("mode", "fusion"):
        if key in data:
            changes[key] = str(data[key])
    query_id = None if data.get("id") is None else str(data["id"])
    return BatchQuery(number, replace(defaults, **changes), query_id)


def _check_json_types(where: str, data: dict[str, Any]) -> None:
    """Text keys hold text: a number or list was turned into text by str() ("image": ["x.jpg"] looked for a
    file named "['x.jpg']", "mode": null asked for mode 'None', "image": "" opened the file's folder), and
    a line naming both "text" and "query" searched one of them silently."""
    if "text" in data and "query" in data:
        raise QueryError(f"{where}: give the query text once, as \"text\" (\"query\" is another name for it)")
    for key in ("text", "query", "image", "mode", "fusion", "id"):
        value = data.get(key)
        if key not in data or (value is None and key in ("text", "query", "image", "id")):
            continue
        if key == "id" and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, str) or (key == "image" and not value.strip()):
            got = {bool: "true/false", list: "a list", dict: "an object", str: "empty text"}.get(type(value))
            want = {"image": "a photo path", "id": "text or a whole number"}.get(key, "text")
            raise QueryError(f"{where}: {key} must be {want}, "
                             f"got {got or (repr(value) if value is not None else 'null')}")


def run_batch(engine, queries: list[BatchQuery]) -> Iterator[dict[str, Any]]:
    """Answer each query in turn: its `search --json` object with `line` (and `id`), or an `error` line."""
    for query in queries:
        head: dict[str, Any] = {"line": query.line}
        if query.query_id is not None:
            head["id"] = query.query_id
        asked = {"text": query.request.text, "image": query.request.image, "filters": list(query.request.filters)}
        try:
            yield {**head, **engine.search(replace(query.request)).to_json()}
        except ShopLensError as exc:
            yield {**head, "query": asked, "error": str(exc)}
