"""What the routes take from the app, as FastAPI dependencies: the service, the server's settings, the
API token check, the bound on concurrent searches and the pool that streams answers. `create_app` puts
them on `app.state`; a route names what it needs (`svc: ServiceDep`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kb.server.asgi import UNAUTHORIZED, token_ok
from kb.server.service import Service

TOKEN_COOKIE = "kb_token"  # the web page sets it (named in GET /status) so that a citation link can open a file
_BEARER = HTTPBearer(auto_error=False, description="The server's KB_API_TOKEN.")


@dataclass(frozen=True)
class ServerSettings:
    """How this server was started: `token` (None: no authentication), the --docs folders POST /ingest may
    name, where uploads are kept, and the upload limit."""

    token: str | None
    roots: list[Path]
    upload_dir: Path
    max_upload_mb: float

    @property
    def max_upload(self) -> int:
        return int(self.max_upload_mb * (1 << 20))


# The dependencies are coroutines: a plain function would be sent to the thread pool on every request.
async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


async def _searching(request: Request) -> asyncio.Semaphore:
    searching: asyncio.Semaphore = request.app.state.searching
    return searching


async def _streams(request: Request) -> ThreadPoolExecutor:
    streams: ThreadPoolExecutor = request.app.state.streams
    return streams


async def authorized(request: Request,
                     _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]) -> None:
    """The API routes' guard: 401 unless the request carries the server's token (when it has one)."""
    cookie = None  # a citation link (a plain navigation) opens a file with the web page's cookie
    if request.method == "GET" and request.url.path.startswith("/documents/"):
        cookie = unquote(request.cookies.get(TOKEN_COOKIE, "")) or None
    if not token_ok(request.app.state.settings.token, request.headers.get("authorization", ""), cookie):
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


ServiceDep = Annotated[Service, Depends(_service)]
SettingsDep = Annotated[ServerSettings, Depends(_settings)]
SearchingDep = Annotated[asyncio.Semaphore, Depends(_searching)]
StreamsDep = Annotated[ThreadPoolExecutor, Depends(_streams)]
AUTHORIZED = [Depends(authorized)]  # every API router's dependencies
