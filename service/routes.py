"""The endpoints. Each parses its input, calls the engine (or the indexers and rerank code the CLI
calls) and returns plain JSON; searches return `SearchResponse.to_json()` unchanged."""

from __future__ import annotations

import os
import time
from importlib import resources
from typing import Any, Callable, List, Optional

from fastapi import Depends, FastAPI, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from shoplens.common.errors import QueryError
from shoplens.common.jsontext import loads_line
from shoplens.engine.query import SearchRequest
from shoplens.service import inputs
from shoplens.service.limits import BodyTooLarge
from shoplens.service.schemas import (MAX_CANDIDATES, MAX_FILTERS, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS, ErrorModel,
                                      EventsAccepted, Health, Mode, Fusion, Normalization, Ready, SearchResponseModel)
from shoplens.service.state import JSON, ServiceState, error
from shoplens.service.thumbnails import PLACEHOLDER_HEADER, THUMBNAIL_SIZES, placeholder_png, thumbnail_jpeg

STATIC = resources.files("shoplens.service") / "static"
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorModel} for status in (400, 401, 404, 413, 415, 422, 503)}
VERSION_HEADER = "X-ShopLens-Version"
TIMING_HEADER = "Server-Timing"
SEARCH_BODIES = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SearchBody"}},
    "multipart/form-data": {"schema": {"$ref": "#/components/schemas/SearchForm"}},
}}}


def add_routes(app: FastAPI, state: ServiceState, write_key: Callable, search_key: Callable) -> None:
    """Register every endpoint on `app`."""
    _add_pages(app, state)
    _add_search(app, state, search_key)
    _add_products(app, state)
    _add_events(app, state, write_key)


def _add_pages(app: FastAPI, state: ServiceState) -> None:
    @app.get("/", include_in_schema=False)
    def workbench():
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/health", response_model=Health, summary="Liveness: the process answers")
    def health():
        return {"status": "ok"}

    @app.get("/ready", response_model=Ready, responses={503: {"model": Ready}},
             summary="Readiness: the index is open and warm")
    def ready():
        if state.engine is None:
            return JSON({"status": "failed" if state.problem else "opening", "reason": state.problem,
                         "worker": os.getpid()}, status_code=503, headers={"Retry-After": "2"})
        if state.warming:
            return JSON({"status": "warming", "reason": state.warming, "version": state.engine.snapshot.version,
                         "worker": os.getpid()}, status_code=503, headers={"Retry-After": "2"})
        return {"status": "ready", "version": state.engine.snapshot.version, "worker": os.getpid()}

    @app.get("/info", summary="The index: model, backends, counts, versions, reranker; and the serving state",
             responses=ERRORS)
    def info() -> dict[str, Any]:
        from shoplens.indexers.describe import describe_index

        engine = state.require()
        details = describe_index(state.settings.index)
        details["serving"] = {"version": engine.snapshot.version, "follow_error": engine.follow_error,
                              "limits": {"k": MAX_K, "offset": MAX_OFFSET, "candidates": MAX_CANDIDATES,
                                         "filters": MAX_FILTERS, "body_bytes": state.settings.max_body_bytes},
                              "events_inbox": str(state.settings.inbox), "warm_up": state.warmed}
        return details


async def _answer(state: ServiceState, request: SearchRequest) -> JSON:
    """The search's JSON; the `Server-Timing` header splits the server's time into the wait for a worker
    thread (`queue`) and the engine's own `took_ms` (`engine`), so a slow answer says where it waited."""
    engine = state.require()
    submitted = time.perf_counter()
    started: list[float] = []

    def search():
        started.append(time.perf_counter())
        return engine.search(request)

    response = await run_in_threadpool(search)
    queued = (started[0] - submitted) * 1000
    return JSON(response.to_json(), headers={VERSION_HEADER: str(response.version),
                                             TIMING_HEADER: f"queue;dur={queued:.2f}, engine;dur={response.took_ms:.2f}"})


SEARCH_PARAMETERS = ("q", "k", "offset", "filter", "mode", "fusion", "rrf_k", "weights", "norm", "candidates", "rerank",
                     "explain")


def _add_search(app: FastAPI, state: ServiceState, search_key: Callable) -> None:
    @app.get("/search", response_model=SearchResponseModel, responses=ERRORS, dependencies=[Depends(search_key)],
             summary="Search by text (the shape `shoplens search --json` prints)")
    async def search_get(
        request: Request,
        q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="Query text."),
        k: int = Query(10, ge=1, le=MAX_K), offset: int = Query(0, ge=0, le=MAX_OFFSET, description="A multiple of k."),
        filters: List[str] = Query([], alias="filter", max_length=MAX_FILTERS, description='Repeatable: "price<=3000".'),
        mode: Mode = Query("hybrid"), fusion: Optional[Fusion] = Query(None),
        rrf_k: Optional[float] = Query(None, gt=0, le=10_000),
        weights: Optional[str] = Query(None, description="lexical,dense[,native]"),
        norm: Optional[Normalization] = Query(None),
        candidates: int = Query(200, ge=1, le=MAX_CANDIDATES), rerank: Optional[bool] = Query(None),
        explain: bool = Query(False),
    ):
        inputs.check_query_parameters(request.query_params.multi_items(), SEARCH_PARAMETERS, ("filter",))
        body = inputs.parse_body(dict(q=q, k=k, offset=offset, filters=filters, mode=mode, fusion=fusion, rrf_k=rrf_k,
                                      weights=inputs.parse_weights(weights), normalization=norm,
                                      candidates=candidates, rerank=rerank, explain=explain))
        return await _answer(state, inputs.search_request(body))

    @app.post("/search", response_model=SearchResponseModel, responses=ERRORS, dependencies=[Depends(search_key)],
              openapi_extra=SEARCH_BODIES, summary="Search by text, photo or both (JSON or multipart upload)")
    async def search_post(request: Request):
        if request.query_params:  # FastAPI would ignore them: "POST /search?k=5" answered with k=10
            raise QueryError(f"POST /search takes its options in the body, not the query string (got "
                             f"{next(iter(request.query_params))!r}); send them as JSON or form fields, "
                             "or use GET /search?q=...")
        if media_type(request, SEARCH_TYPES) == "multipart/form-data":
            body, image = await _form_body(request)
        else:
            body, image = inputs.parse_body(_json_object(await request.body()), strict=True), None
        search_request = await run_in_threadpool(inputs.search_request, body, image)
        return await _answer(state, search_request)


SEARCH_TYPES = ("application/json", "multipart/form-data")
EVENT_TYPES = ("application/json", "application/x-ndjson", "application/ndjson", "application/jsonl")


def media_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The body's media type (`Content-Type` without its parameters; none is read as JSON), or a 415
    that names the accepted ones: a body is never parsed as a type it was not declared as."""
    declared = request.headers.get("content-type", accepted[0]).split(";")[0].strip().lower()
    if declared not in accepted:
        raise HTTPException(415, f"unsupported content type {declared or '(empty)'!r}; "
                                 f"send {', '.join(accepted[:-1])} or {accepted[-1]}")
    return declared


def _json_object(raw: bytes) -> dict[str, Any]:
    import orjson

    text = inputs.body_text(raw, "send the JSON")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise inputs.MalformedBody(f"malformed JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise QueryError("the body must be a JSON object such as {\"q\": \"red dress\", \"k\": 10}")
    try:  # orjson keeps the last of two equal keys ({"q": "shirt", "q": "shoes"}); user JSON refuses them
        loads_line(text)
    except ValueError as exc:
        raise QueryError(f"{str(exc).split(';')[0]}; send each field once") from None
    return data


async def _form_body(request: Request):
    try:
        form = await request.form(max_files=1, max_fields=60)
    except (HTTPException, BodyTooLarge):
        raise
    except Exception as exc:  # noqa: BLE001 - the multipart parser's own errors
        raise inputs.MalformedBody(f"malformed multipart body: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}") from None
    fields: dict[str, Any] = {}
    image = None
    seen: set[str] = set()
    for name, value in form.multi_items():
        if name in seen and name not in ("filter", "filters"):  # the last one was kept, silently
            raise QueryError(f"form field {name!r} is given more than once; give it once (only filter repeats)")
        seen.add(name)
        if isinstance(value, UploadFile):
            if name != "image":
                raise QueryError(f"unexpected file field {name!r}; send the photo as the field `image`")
            image = inputs.open_image_bytes(await value.read(), value.filename or "<upload>")
        elif name in ("filter", "filters"):
            fields.setdefault("filters", []).append(value)
        elif name == "weights":
            fields["weights"] = inputs.parse_weights(value)
        elif value != "":
            fields[name] = value
    return inputs.parse_body(fields), image


def _add_products(app: FastAPI, state: ServiceState) -> None:
    """`/products/{id}` and `/products/{id}/image`. An id may hold "/" (`/products/a/b` is the product "a/b"):
    the image route is matched first, so an id that itself ends in "/image" is addressed with its last "/"
    percent-encoded (`/products/x%2Fimage` is the record of "x/image", `/products/x/image` x's photo)."""
    def record(product_id: str):
        snapshot = state.require().snapshot
        docno = snapshot.products.docno_by_id.get(product_id)
        if docno is None:
            raise HTTPException(404, f"no product {product_id!r} in version {snapshot.version} of the index")
        return snapshot, snapshot.products.records([docno])[0]

    def product_json(product_id: str) -> JSON:
        snapshot, found = record(product_id)
        return JSON({"version": snapshot.version, "product": found}, headers={VERSION_HEADER: str(snapshot.version)})

    @app.get("/products/{product_id:path}/image", responses={**ERRORS, 200: {"content": {"image/jpeg": {}, "image/png": {}}}},
             response_class=Response, summary="The product's photo as a JPEG thumbnail (a PNG placeholder without one)")
    def product_image(request: Request, product_id: str = PathParam(..., min_length=1, max_length=500),
                      size: int = Query(256, description=f"One of {', '.join(map(str, THUMBNAIL_SIZES))} pixels.")):
        """The photo fitted into size x size pixels. A known product without a readable photo gets a
        generated size x size PNG placeholder (200, header `X-ShopLens-Placeholder: no-image` or
        `unreadable-image`), so a results grid keeps its layout; an unknown product is a 404."""
        if not _raw_path(request).endswith(b"/image"):  # "/products/x%2Fimage": the record of the id "x/image"
            return product_json(product_id + "/image")
        inputs.check_query_parameters(request.query_params.multi_items(), ("size",))
        if size not in THUMBNAIL_SIZES:
            raise QueryError(f"size: must be one of {', '.join(map(str, THUMBNAIL_SIZES))} (got {size})")
        _, found = record(product_id)
        data = thumbnail_jpeg(found["image"], size) if found.get("image") else None
        if data is None:
            reason = "unreadable-image" if found.get("image") else "no-image"
            return Response(placeholder_png(size), media_type="image/png",
                            headers={"Cache-Control": "public, max-age=300", PLACEHOLDER_HEADER: reason})
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/products/{product_id:path}", responses=ERRORS, summary="One product's record")
    def product(request: Request, product_id: str = PathParam(..., min_length=1, max_length=500)) -> dict[str, Any]:
        inputs.check_query_parameters(request.query_params.multi_items(), ())  # ?fields=title was ignored unseen
        return product_json(product_id)


def _raw_path(request: Request) -> bytes:
    """The path as the client sent it, before percent-decoding (the decoded one where the server gives none)."""
    raw = request.scope.get("raw_path")
    return raw.split(b"?", 1)[0] if raw else request.url.path.encode()


def _add_events(app: FastAPI, state: ServiceState, write_key: Callable) -> None:
    @app.post("/events", status_code=202, response_model=EventsAccepted, dependencies=[Depends(write_key)],
              responses=ERRORS, summary="Append behaviour events to the index's event inbox",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                  "application/x-ndjson": {"schema": {"type": "string"}}}}})
    async def events(request: Request):
        """Events `{ts, type: impression|click|cart|order, id, query?, position?}` are validated like
        `shoplens events` (unknown product ids too); any bad one rejects the request (422, the bad
        events listed) and nothing is written. Good ones land in the inbox as one `*.events.jsonl`
        file, which `shoplens watch INBOX` folds into the index."""
        engine = state.require()
        lines = inputs.event_lines(await request.body(), media_type(request, EVENT_TYPES))
        snapshot = engine.snapshot
        rejects = await run_in_threadpool(inputs.validate_events, lines, snapshot.products.docno_by_id)
        if rejects:
            first = rejects[0]
            return error(422, f"event {first.line}: {first.reason}" + (
                f" (and {len(rejects) - 1} more bad event(s))" if len(rejects) > 1 else "") + "; nothing was written",
                rejects=[{"event": r.line, "reason": r.reason} for r in rejects[:100]])
        try:
            path = await run_in_threadpool(inputs.append_to_inbox, state.settings.inbox, lines)
        except inputs.InboxError as exc:
            return error(503, str(exc))
        return JSON({"accepted": len(lines), "file": str(path), "version": snapshot.version}, status_code=202)

