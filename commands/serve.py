"""`shoplens serve`: the HTTP search API and the workbench page over one index (code in service/)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import List, Optional

import typer

from shoplens.commands.base import (DeviceOption, IndexOption, JsonOption, app, err, handle_errors, literal, out,
                                    output_folder, print_json)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command()
@handle_errors
def serve(
    index_dir: Path = IndexOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default; 0.0.0.0 for all)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port (1-65535)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes (each opens the index)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="SHOPLENS_API_KEY",
                                          help="Require this key (X-API-Key header) on POST /events."),
    protect_search: bool = typer.Option(False, "--protect-search", help="Require the API key on searches too."),
    cors: Optional[List[str]] = typer.Option(None, "--cors", help="Allow browser calls from this origin (repeatable); off by default."),
    events_inbox: Optional[Path] = typer.Option(None, "--events-inbox", callback=output_folder, help="Where POST /events writes (default INDEX.inbox)."),
    follow: float = typer.Option(0.5, "--follow-seconds", min=0.05, help="How often to look for new index versions."),
    warm_queries: int = typer.Option(0, "--warm-queries", min=0, max=20, help="Latest text queries a new version answers (results dropped) before it is swapped in (default 0: none)."),
    warm_up: int = typer.Option(100, "--warm-up", min=0, max=10_000, help="Frequent queries answered once at start (results dropped) before /ready turns 200: the index's most shown queries from its behaviour, or --warm-up-file's (0: none)."),
    warm_up_file: Optional[Path] = typer.Option(None, "--warm-up-file", help="Queries for the warm-up, one a line (plain text, or JSON lines with \"text\")."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Serve the HTTP search API (OpenAPI at /openapi.json, docs at /docs) and the workbench page at /."""
    import uvicorn

    from shoplens.common.errors import ConfigError
    from shoplens.engine.warmup import read_query_file
    from shoplens.indexers.index import IndexDirectory
    from shoplens.service.settings import SETTINGS_ENV, ServiceSettings

    check_api_key(api_key)
    check_cors_origins(list(cors or []))
    if protect_search and not api_key:
        raise ConfigError("--protect-search needs --api-key KEY (or SHOPLENS_API_KEY)")
    IndexDirectory(index_dir).require()  # a missing index is a one-line error, before binding
    check_address(host, port)
    if warm_up_file is not None:
        read_query_file(warm_up_file)  # an unreadable file is a one-line error before binding
    if events_inbox is not None and events_inbox.exists() and not events_inbox.is_dir():
        raise ConfigError(f"--events-inbox {events_inbox} is a file; give a directory (it is created if missing)")
    settings = ServiceSettings(index=index_dir.resolve(), api_key=api_key, protect_search=protect_search,
                               cors_origins=list(cors or []), events_inbox=events_inbox, follow_seconds=follow,
                               device=device, warm_queries=warm_queries, warm_up=warm_up,
                               warm_up_file=None if warm_up_file is None else warm_up_file.resolve())
    url = f"http://{host}:{port}"
    if as_json:
        print_json({"url": url, "index": str(settings.index), "workers": workers, "events_inbox": str(settings.inbox),
                    "api_key": bool(api_key), "cors": settings.cors_origins, "warm_up": warm_up,
                    "warm_up_file": None if warm_up_file is None else str(settings.warm_up_file)})
    else:
        out.print(f"serving {literal(str(settings.index))} at {literal(url)}/ (API docs {url}/docs), {workers} worker(s); Ctrl-C stops")
    if host not in LOOPBACK and not api_key:
        err.print(f"[yellow]warning:[/] listening on {literal(host)} without --api-key: anyone who reaches it can post events")
    os.environ[SETTINGS_ENV] = settings.to_env()  # each worker process builds its app from this
    uvicorn.run("shoplens.service.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)


MAX_API_KEY_CHARS = 1024


def check_api_key(key: str | None) -> None:
    """--api-key (or SHOPLENS_API_KEY) travels in an HTTP header: an empty key would let an empty header in,
    and a space or a character outside printable ASCII can never arrive as typed, so neither is accepted."""
    from shoplens.common.errors import ConfigError

    if key is not None and not (key and len(key) <= MAX_API_KEY_CHARS and key.isascii() and key.isprintable()
                                and " " not in key):  # a longer key would not fit in a request's headers
        raise ConfigError(f"--api-key (or SHOPLENS_API_KEY) must be printable ASCII without spaces, 1 to "
                          f"{MAX_API_KEY_CHARS:,} characters; "
                          "generate one with `python -c 'import secrets; print(secrets.token_urlsafe())'`")


def check_cors_origins(origins: list[str]) -> list[str]:
    """Each --cors origin as a browser sends it in `Origin`: scheme://host[:port], no path, no trailing slash,
    in lower case, or `*`. Anything else was accepted and never matched, so CORS stayed off without a word; a
    trailing slash or a path (`http://localhost:3000/`, copied from an address bar) is the usual slip."""
    from urllib.parse import urlsplit

    from shoplens.common.errors import ConfigError

    for origin in origins:
        if origin == "*":
            continue
        try:
            parts = urlsplit(origin)
            port = parts.port  # a port that is not a number raises here
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise ConfigError(f"--cors {origin!r} is not an origin; give scheme://host[:port] such as "
                              "https://shop.example.com or http://localhost:3000 (or * for any)")
        host = parts.netloc.rpartition("@")[2].lower()
        if (parts.scheme, port) in (("http", 80), ("https", 443)):  # a browser leaves the default port out
            host = host.rpartition(":")[0]
        canonical = f"{parts.scheme}://{host}"
        if origin != canonical:  # a path, a trailing slash, a user, capitals: the Origin header never reads so
            raise ConfigError(f"--cors {origin!r} is not an origin as a browser sends it, so no request would "
                              f"match it; give {canonical}")
    return origins


def check_address(host: str, port: int) -> None:
    """--host must resolve to an address this machine can listen on, and --port be free there: a typo, a
    foreign address or a port in use is a one-line error before any worker starts (uvicorn would print its
    own error after `serving ...` had been announced)."""
    import socket

    from shoplens.common.errors import ConfigError

    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise ConfigError(f"--host {host!r} is not an address this machine can bind; use 127.0.0.1, 0.0.0.0 or "
                          "a host name that resolves") from None
    family, kind, _, _, address = found[0]
    try:
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        hint = "stop what listens there or pick another --port" if exc.errno == errno.EADDRINUSE else \
            "use 127.0.0.1, 0.0.0.0 or an address of this machine"
        raise ConfigError(f"cannot listen on {host} port {port} ({exc.strerror or exc}); {hint}") from None
