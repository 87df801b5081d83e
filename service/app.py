"""The FastAPI app: routes, limits, access control and one-line errors.

`create_app(settings)` opens the index in a background thread at startup, so
`/health` answers at once and `/ready` turns 200 when the engine is open and
warm. The engine follows new commits in the background
(`SearchEngine(follow_in_background=...)`): no request waits for a version to
open, and every search response carries the version that answered it (in the
body and in the `X-ShopLens-Version` header).
"""

from __future__ import annotations

import logging
import secrets
import threading
from contextlib import asynccontextmanager
from typing import Any, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from shoplens import __version__
from shoplens.common.errors import EventsError, QueryError, ShopLensError
from shoplens.engine.search import SearchEngine
from shoplens.service import inputs, routes
from shoplens.service.limits import BodyLimitMiddleware, BodyTooLarge
from shoplens.service.schemas import (MAX_CANDIDATES, MAX_FILTERS, MAX_K, MAX_OFFSET, SearchBody,
                                      SearchResponseModel)
from shoplens.service.settings import ServiceSettings
from shoplens.service.state import JSON, ServiceState, error

log = logging.getLogger("shoplens.service")


def create_app(settings: ServiceSettings, engine: SearchEngine | None = None) -> FastAPI:
    """The app over one index. Pass `engine` to share an open one (tests); otherwise it opens at startup."""
    state = ServiceState(settings, engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.engine is None:
            threading.Thread(target=state.open, name="shoplens-open", daemon=True).start()
        yield
        if engine is None and state.engine is not None:
            state.engine.close()

    app = FastAPI(title="ShopLens", version=__version__, lifespan=lifespan, default_response_class=JSON,
                  description="Multimodal product search over one ShopLens index. Search responses have the shape "
                              "`shoplens search --json` prints. Limits: k <= %d, offset <= %d, candidates <= %d, "
                              "%d filters, request bodies <= %d MiB." % (MAX_K, MAX_OFFSET, MAX_CANDIDATES,
                                                                          MAX_FILTERS, settings.max_body_bytes // 2 ** 20))
    app.state.shoplens = state
    _install_errors(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"],
                           expose_headers=["X-ShopLens-Version", "Server-Timing"])
    routes.add_routes(app, state, _key_check(settings, always=True), _key_check(settings, always=False))
    app.mount("/static", StaticFiles(directory=str(routes.STATIC)), name="static")
    app.openapi = lambda: _openapi(app)
    return app


def _key_check(settings: ServiceSettings, always: bool):
    """A dependency: the API key, when one is set, on write endpoints (always) or search (protect_search)."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Set with --api-key or SHOPLENS_API_KEY.")

    def check(request: Request, key: Optional[str] = Depends(header)) -> None:
        if settings.api_key is None or not (always or settings.protect_search):
            return
        if key is None:
            authorization = request.headers.get("authorization", "")
            key = authorization[7:] if authorization.lower().startswith("bearer ") else None
        if key is None or not secrets.compare_digest(key.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key; send it in the X-API-Key header")

    return check


def _install_errors(app: FastAPI) -> None:
    """Every error as {"error": one line, "status"}; no traceback reaches a client."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        response = error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error(422, inputs.validation_message(list(exc.errors())))

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        return error(413, str(exc))

    @app.exception_handler(ShopLensError)
    async def shoplens_error(request: Request, exc: ShopLensError):
        if isinstance(exc, inputs.MalformedBody):
            status = 400
        elif isinstance(exc, (QueryError, EventsError)):
            status = 422
        else:  # the index itself: missing, damaged, locked; not the client's doing
            status = 503
        return error(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error(500, "internal error; the server log has the details")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus the two bodies POST /search takes (it parses them itself)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = SearchBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(body.pop("$defs", {}))
    components["SearchBody"] = body
    components["SearchForm"] = _search_form_schema()
    components.setdefault("SearchResponseModel", SearchResponseModel.model_json_schema(
        ref_template="#/components/schemas/{model}"))
    app.openapi_schema = schema
    return schema


def _search_form_schema() -> dict[str, Any]:
    return {"type": "object", "description": "The same fields as SearchBody; the photo as a file part `image`, "
                                             "filters as repeated `filter` fields, weights as \"lexical,dense\".",
            "properties": {"q": {"type": "string"}, "image": {"type": "string", "format": "binary"},
                           "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                           "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                           "filter": {"type": "array", "items": {"type": "string"}},
                           "mode": {"type": "string"}, "fusion": {"type": "string"},
                           "weights": {"type": "string"}, "rerank": {"type": "boolean"},
                           "explain": {"type": "boolean"}}}


def app_from_environment() -> FastAPI:
    """uvicorn's factory for `--workers N`: each worker process builds the app from the settings in the environment."""
    return create_app(ServiceSettings.from_env())

