"""What every HTTP app here does before a route runs: refuse oversize bodies unread, and answer invalid
requests with the field and the reason, never with the input.

The body limit is a pure ASGI middleware, so a 100 MB upload is refused from its `Content-Length` before any
of it is read, and a chunked upload without one is cut off as soon as it passes the limit. FastAPI's own 422
repeats each invalid value back (`input`), which turns a 100 MB body or a secret into a 100 MB answer or a
leak; here each error names where and why only.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB" if size >= 1024 * 1024 else f"{size} bytes"


class BodyLimit:
    """413 for a request body over `max_bytes`, decided from Content-Length when there is one."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _refusal(self) -> JSONResponse:
        return JSONResponse(
            {"detail": f"request body over {_mib(self.max_bytes)}: split it, or raise WATCHFLOOR_MAX_REQUEST_BYTES"},
            status_code=413,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await JSONResponse({"detail": "malformed Content-Length header"}, status_code=400)(
                    scope, receive, send)
                return
            if too_big:
                await self._refusal()(scope, receive, send)
                return
        seen = 0
        refused = False

        async def counted_receive() -> Message:
            # Over the limit: answer 413 here and tell the app the client left; what it answers is dropped.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await self._refusal()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)


def error_item(err: dict[str, Any]) -> dict[str, Any]:
    """One problem of a 422's `detail`: the field, its location, the message, the type; never the input."""
    loc = [str(part) for part in err.get("loc", ())]
    return {"field": ".".join(p for p in loc if p not in ("body", "query", "path", "header")) or "body",
            "loc": loc, "msg": str(err.get("msg", "invalid")), "type": err.get("type", "value_error")}


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [error_item(e) for e in exc.errors()[:20]]}, status_code=422)


def install(app: FastAPI, max_request_bytes: int) -> None:
    """Adds the body limit and the input-free 422 to `app`."""
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
