"""The ASGI pieces of `kb serve` below its routes: body limits, security headers, and the API token
and search bound for apps mounted beside the API (`kb serve --mcp`). Plain ASGI, so that they hold for
every route and mounted app alike."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

UNAUTHORIZED = "missing or wrong API token: send Authorization: Bearer <KB_API_TOKEN>"


def token_ok(token: str | None, authorization: str, fallback: str | None = None) -> bool:
    """Whether a request may pass: the server has no token, or the `Authorization: Bearer` header's
    (else `fallback`'s, a cookie where the caller allows one) is the token. The one check of the API
    routes and of mounted apps."""
    if token is None:
        return True
    scheme, _, given = authorization.partition(" ")
    candidate = given.strip() if scheme.lower() == "bearer" and given.strip() else fallback
    return candidate is not None and hmac.compare_digest(candidate.encode(), token.encode())


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a request body over its route's limit, from Content-Length or while it streams in."""

    def __init__(self, app: Any, limits: dict[str, int], default: int):
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"].rstrip("/") or "/", self.default)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        exceeded = False
        started = False

        async def limited() -> dict[str, Any]:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def watch(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the cut-off body, the answer is 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watch)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over the {limit / (1 << 20):g} MB limit"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class Headers:
    """No MIME sniffing or referrers anywhere; a strict content policy (`page_csp`) for the web page."""

    def __init__(self, app: Any, page_csp: str):
        self.app, self.page_csp = app, page_csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] == "/" or scope["path"].startswith("/static/")

        async def add(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if page:
                    headers += [(b"content-security-policy", self.page_csp.encode()), (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add)


class Guarded:
    """An ASGI app behind the API token (`token_ok`, as the API routes), whose POST requests take a turn
    of `searching`, the bound on concurrent searches: an MCP tool call is a POST, answered when the tool
    is done (its GET is the standing stream of notifications, which must not hold a turn). A tool call
    whose client goes away gives its turn back while the tool may still run in the SDK's task group."""

    def __init__(self, app: Any, token: str | None, searching: asyncio.Semaphore | None = None):
        self.app, self.token, self.searching = app, token, searching

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if not token_ok(self.token, header):
            body = json.dumps({"detail": UNAUTHORIZED}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        if self.searching is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        async with self.searching:
            await self.app(scope, receive, send)
