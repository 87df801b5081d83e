"""What every route shares: the engine once it is open, and the JSON error shape."""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from threadpoolctl import threadpool_limits

from shoplens.common.errors import ShopLensError
from shoplens.engine.search import SearchEngine
from shoplens.service.settings import ServiceSettings

log = logging.getLogger("shoplens.service")


class JSON(JSONResponse):
    """orjson: NaN becomes null, numpy numbers serialize."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def error(status: int, message: str, **extra) -> JSON:
    return JSON({"error": message, "status": status, **extra}, status_code=status)


BLAS_THREADS = 1  # a server's BLAS threads: see limit_blas_threads


def limit_blas_threads() -> None:
    """One BLAS thread per caller in a server process (once its libraries are loaded). A query's matrix
    products are small (the rows an update added since the FAISS index, the candidates' similarities);
    with two threads per product, on a busy 2-core machine the second thread waits for a core, and an
    8,000 x 512 float32 product took 13.5 ms at the median against 0.4 ms with one thread (p99 110 ms
    against 21 ms). Request threads run in parallel instead."""
    threadpool_limits(limits=BLAS_THREADS, user_api="blas")


class ServiceState:
    """The engine once it is open, or why it is not (yet)."""

    def __init__(self, settings: ServiceSettings, engine: SearchEngine | None = None):
        self.settings = settings
        self.engine = engine
        self.problem: str | None = None  # why the index could not be opened
        self.warming: str | None = None  # while the warm-up runs: what it does (/ready is 503 meanwhile)
        self.warmed: dict | None = None  # what the warm-up did (`WarmUp.to_dict`), shown by /info

    def open(self) -> None:
        self.warming = "warming up before serving" if self.settings.warm_up > 0 else None  # no 200 in between
        try:
            self.engine = SearchEngine(self.settings.index, device=self.settings.device,
                                       follow_in_background=self.settings.follow_seconds,
                                       rehearsals=self.settings.warm_queries)
            limit_blas_threads()
            self._warm_up(self.engine)
            threading.Thread(target=self.engine.warm_rows, name="shoplens-warm-rows", daemon=True).start()
        except ShopLensError as exc:
            self.problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported by /ready, not as a crash of the server
            log.exception("cannot open the index")
            self.problem = f"cannot open the index: {type(exc).__name__}: {exc}".splitlines()[0]

    def _warm_up(self, engine: SearchEngine) -> None:
        """Answer the shop's frequent queries once before /ready turns 200 (searches are served meanwhile).
        A warm-up that cannot run (unreadable behaviour) is logged and skipped: it never keeps a server down."""
        from shoplens.engine.warmup import frequent_queries, read_query_file, warm_up

        settings = self.settings
        if settings.warm_up <= 0:
            return
        try:
            if settings.warm_up_file is not None:
                texts, source = read_query_file(settings.warm_up_file, settings.warm_up), str(settings.warm_up_file)
            else:
                texts, source = frequent_queries(engine.snapshot, settings.warm_up), "the index's frequent queries"
            self.warming = f"answering {len(texts)} of {source} before serving"
            self.warmed = warm_up(engine, texts, source=source).to_dict()
        except Exception:  # noqa: BLE001 - a warm-up never keeps the server from serving
            log.exception("warm-up skipped")
        finally:
            self.warming = None

    def require(self) -> SearchEngine:
        if self.engine is None:
            reason = self.problem or "the index is still opening; retry in a moment"
            raise HTTPException(503, reason, headers={"Retry-After": "2"})
        return self.engine
