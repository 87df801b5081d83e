"""Request bodies into engine inputs: search bodies into `SearchRequest`s, photos into images,
posted events into a validated inbox file. Every failure is a `QueryError` or `EventsError` with
one line that says what to send instead; nothing here searches or ranks."""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shoplens.common.errors import EventsError, QueryError
from shoplens.common.jsontext import loads_line
from shoplens.engine.query import SearchRequest, check_typed_text
from shoplens.indexers.images import ImageError, within_limits
from shoplens.rerank.events import EventReject, read_events
from shoplens.service.schemas import MAX_EVENTS, MAX_WEIGHT, SearchBody
from shoplens.service.thumbnails import THUMBNAIL_SIZES


class MalformedBody(QueryError):
    """The body cannot be parsed at all (broken JSON, bad multipart): a 400 rather than a 422."""


def body_text(raw: bytes, send: str) -> str:
    """A request body as text: UTF-8, a byte-order mark dropped (as in every file ShopLens reads); any other
    encoding (Latin-1, UTF-16) is a MalformedBody naming the first bad byte, not a JSON parser's complaint
    about "surrogates" at line 1 column 1."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"the body is not UTF-8 text (byte {exc.start + 1} is 0x{raw[exc.start]:02x}); {send} "
                            "encoded as UTF-8") from None
    if "\x00" in text:  # never in JSON text, always in UTF-16 (here without its byte-order mark)
        raise MalformedBody(f"the body is not UTF-8 text (byte {raw.index(0) + 1} is 0x00, as in UTF-16); {send} "
                            "encoded as UTF-8")
    return text


def validation_message(exc: ValidationError | list[dict[str, Any]]) -> str:
    """The first problem of a pydantic validation, as `field: what is wrong`."""
    errors = exc.errors() if isinstance(exc, ValidationError) else exc
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())  # not pydantic's union tags: "tuple[float, float]"
                     if part not in ("body", "query", "path") and "[" not in str(part))
    if where.split(".")[0] == "weights":  # each union branch added its own problems: "(and 2 more problem(s))"
        return weights_message(next((e["input"] for e in errors if isinstance(e.get("input"), list)), first.get("input")))
    message = number_range(where, first) or boolean_rule(first) or length_rule(first) \
        or str(first.get("msg", "invalid value")).replace("\n", " ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else message + more


def weights_message(given: Any) -> str:
    """The one rule of `weights` (a list in JSON, "lexical,dense[,native]" in a query string or form), whichever
    part of it a value breaks: pydantic said "weights.0: Input should be less than or equal to 100 (and 2 more
    problem(s))" for a list, and the same of a NaN."""
    shown = given if isinstance(given, str) else json.dumps(given, default=str)
    shown = shown if len(shown) <= 30 else shown[:27] + "..."
    return (f"weights: must be two or three numbers from 0 to {MAX_WEIGHT:g}, not all 0, lexical,dense[,native], such as "
            f"[1, 0.5] in JSON or 1,0.5 in a query string (got {shown})")


NUMBER_ERRORS = ("int_", "float_", "greater_than", "less_than", "finite_number")


def number_range(field: str, error: dict[str, Any]) -> str | None:
    """A number field's problem (k past 100 or past 2^64, k as "ten", 1.5, "5" or true) as the one rule it
    breaks, `must be a whole number from 1 to 100 (got ...)`, for GET parameters, JSON and form fields alike;
    pydantic's words ("Input should be a valid integer, unable to parse string as an integer") gave the type
    without the range, or the range without the type."""
    if not str(error.get("type", "")).startswith(NUMBER_ERRORS):
        return None
    given = json.dumps(error.get("input"), default=str)
    given = given if len(given) <= 30 else given[:27] + "..."
    if field == "size":  # GET /products/{id}/image?size=abc: the route's own rule, as it words it for size=7
        return f"must be one of {', '.join(map(str, THUMBNAIL_SIZES))} (got {given})"
    info = SearchBody.model_fields.get(field)
    if info is None:
        return None
    whole = info.annotation is int
    low = next((f"from {m.ge}" for m in info.metadata if getattr(m, "ge", None) is not None),
               next((f"above {m.gt} and" for m in info.metadata if getattr(m, "gt", None) is not None), None))
    high = next((m.le for m in info.metadata if getattr(m, "le", None) is not None), None)
    if low is None or high is None:
        return None
    return f"must be {'a whole number' if whole else 'a number'} {low} {'to' if whole else 'at most'} {high} (got {given})"


def boolean_rule(error: dict[str, Any]) -> str | None:
    """A yes/no field (rerank, explain) given something else: "must be true or false (got "maybe")", where
    pydantic said "Input should be a valid boolean, unable to interpret input"."""
    if not str(error.get("type", "")).startswith("bool_"):
        return None
    given = json.dumps(error.get("input"), default=str)
    return f"must be true or false (got {given if len(given) <= 30 else given[:27] + '...'})"


def length_rule(error: dict[str, Any]) -> str | None:
    """Text or a list past its length (a 1 MB q, 30 filters): "must be at most 1,000 characters (got 1,000,000)",
    where pydantic said "String should have at most 1000 characters" without the length sent."""
    kind, context, given = str(error.get("type", "")), error.get("ctx") or {}, error.get("input")
    if kind not in ("string_too_long", "too_long") or not isinstance(given, (str, list)) or "max_length" not in context:
        return None
    unit = "characters" if isinstance(given, str) else "items"
    return f"must be at most {context['max_length']:,} {unit} (got {len(given):,})"


def parse_body(data: dict[str, Any], strict: bool = False) -> SearchBody:
    """A search body. `strict` for a JSON body: its values arrive typed, so `"k": true`, `"k": "5"` or
    `"explain": "yes"` are wrong types (422), not coerced; query strings and form fields are text and are."""
    try:
        if strict:
            import orjson

            return SearchBody.model_validate_json(orjson.dumps(data), strict=True)
        return SearchBody.model_validate(data)
    except ValidationError as exc:
        raise QueryError(validation_message(exc)) from None


def parse_weights(text: str | None) -> tuple[float, ...] | None:
    """"lexical,dense[,native]" as the CLI's --weights takes it; None (or empty): the index's plan."""
    if text is None or not str(text).strip():
        return None
    try:
        weights = tuple(float(part) for part in str(text).split(","))
    except ValueError:
        weights = ()
    if len(weights) not in (2, 3) or not all(0 <= weight <= MAX_WEIGHT for weight in weights) or not any(weights):
        raise QueryError(weights_message(str(text)))
    return weights


def check_query_parameters(items: list[tuple[str, str]], known: tuple[str, ...], repeatable: tuple[str, ...] = ()) -> None:
    """A GET's query string as a JSON body is checked: a parameter the endpoint does not take, or one given
    twice that is not a list, is a 422 (FastAPI would ignore the first and keep the last, silently)."""
    seen: set[str] = set()
    for name, _ in items:
        if name not in known:
            raise QueryError(f"unknown query parameter {name!r}; " + (f"use {', '.join(known)}" if known else
                                                                     "this endpoint takes none"))
        if name in seen and name not in repeatable:
            raise QueryError(f"query parameter {name!r} is given more than once; give it once"
                             + (f" (only {', '.join(repeatable)} repeats)" if repeatable else ""))
        seen.add(name)


def decode_base64_image(text: str) -> bytes:
    """URL-safe base64 (standard base64 and data: URLs too) into bytes."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    payload = "".join(payload.split()).replace("+", "-").replace("/", "_")
    try:
        return base64.b64decode(payload.rstrip("=") + "=" * (-len(payload.rstrip("=")) % 4), altchars=b"-_",
                                validate=True)
    except (binascii.Error, ValueError):
        raise QueryError("image is not valid base64; send the photo's bytes as URL-safe base64") from None


def open_image_bytes(data: bytes, name: str = "<upload>"):
    """Decode a query photo; anything that is not a readable image of a sane size is a QueryError."""
    if not data:
        raise QueryError("image is empty; send a JPEG, PNG or WebP photo")
    try:
        with within_limits(io.BytesIO(data), "") as image:
            image.load()
            opened = image.convert("RGB")
    except ImageError as exc:
        raise QueryError(" ".join(str(exc).split())) from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise QueryError("image is not a readable picture; send a JPEG, PNG or WebP photo") from None
    opened.filename = name
    return opened


def search_request(body: SearchBody, image=None) -> SearchRequest:
    """The engine request for a validated body; `image` is an opened photo (upload) if any."""
    if image is None and body.image:
        image = open_image_bytes(decode_base64_image(body.image), "<base64>")
    check_typed_text(body.q)
    if body.offset % body.k:
        raise QueryError(f"offset must be a multiple of k (pages of k results); got offset {body.offset}, k {body.k}")
    request = SearchRequest(text=body.q, image=image, k=body.k, page=body.offset // body.k + 1,
                            filters=list(body.filters), mode=body.mode, fusion=body.fusion, rrf_k=body.rrf_k,
                            weights=None if body.weights is None else tuple(body.weights),
                            normalization=body.normalization,
                            candidates=body.candidates, rerank=body.rerank, explain=body.explain)
    request.validate()
    return request


# -- events ------------------------------------------------------------------------------


def event_lines(raw: bytes, content_type: str) -> list[str]:
    """Posted events as JSONL lines: a JSON array or object, or NDJSON (`content_type`, the media type the
    route accepted: application/json, or an NDJSON one such as application/x-ndjson)."""
    text = body_text(raw, "send the events")
    if "ndjson" in content_type or "jsonl" in content_type:
        # lines end at "\n" (a "\r" before it is blank space to JSON); not str.splitlines(), which also ends
        # one at U+2028 or U+0085, characters a JSON string may hold as they are
        lines = [line for line in text.split("\n") if line.strip()]
    else:
        try:
            data = loads_line(text)
        except ValueError as exc:
            raise MalformedBody(f"malformed JSON: {str(exc).splitlines()[0].split(';')[0]}; send a JSON array of events") from None
        items = data if isinstance(data, list) else [data]
        lines = [json.dumps(item, ensure_ascii=False) for item in items]
    if not lines:
        raise EventsError("no events; send a JSON array of {ts, type, id, query?, position?} objects")
    if len(lines) > MAX_EVENTS:
        raise EventsError(f"{len(lines):,} events in one request; the limit is {MAX_EVENTS:,}, send them in parts")
    return lines


def validate_events(lines: list[str], known_ids: set[str] | dict) -> list[EventReject]:
    """Validate with `read_events`, the code `shoplens events` uses; returns the bad lines."""
    with tempfile.TemporaryDirectory(prefix="shoplens-events-") as folder:
        path = Path(folder) / "posted.events.jsonl"
        path.write_text("".join(line.replace("\n", " ") + "\n" for line in lines), encoding="utf-8")
        return read_events(path, known_ids=known_ids).rejects


def append_to_inbox(inbox: Path, lines: list[str]) -> Path:
    """Write events as one new `*.events.jsonl` file in the inbox, atomically (a watcher never sees half)."""
    name = f"api-{time.time_ns()}-{os.getpid()}.events.jsonl"
    partial = inbox / (name + ".tmp")
    try:
        inbox.mkdir(parents=True, exist_ok=True)
        with open(partial, "w", encoding="utf-8") as handle:
            handle.writelines(line.replace("\n", " ") + "\n" for line in lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, inbox / name)
    except OSError as exc:  # a read-only or full disk: the server's fault, not the request's; nothing half-written
        if partial.parent.is_dir():
            partial.unlink(missing_ok=True)
        raise InboxError(f"cannot write to the event inbox {inbox} ({exc.strerror or exc}); nothing was written: "
                         "start the server with --events-inbox in a writable folder") from None
    return inbox / name


class InboxError(Exception):
    """The event inbox cannot be written (the server's storage, not the request): a 503."""
