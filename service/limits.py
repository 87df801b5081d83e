"""The request-size limit, as plain ASGI middleware: a declared Content-Length over the limit is a
413 before the body is read; a body that streams past it (chunked) stops being read and is a 413."""

from __future__ import annotations

import orjson


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the limit; the app answers 413."""


class BodyLimitMiddleware:
    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self._message())
            return message

        return await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body over the limit of {self.limit // 2 ** 20} MiB; send a smaller photo or fewer events"

    async def _reject(self, send) -> None:
        body = orjson.dumps({"error": self._message(), "status": 413})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
