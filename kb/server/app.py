"""The `kb serve` application (FastAPI): `create_app` assembles the service, the middleware, the error
handler, the routers of `kb.server.routes` and the web page; `mount` adds an app beside the API.

The JSON of POST /search and POST /ask is exactly that of `kb search --json` and `kb ask --json`
(the same serialisation code); GET|POST /ask/stream sends the answer's pieces as server-sent events,
then the same object. All work is done by `kb.server.service.Service`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from kb.api import KnowledgeBase
from kb.errors import DependencyError, KBError, install_command
from kb.llm.base import LLM
from kb.server.auth import api_token

try:
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from fastapi_offline import FastAPIOffline
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - the core installs without the serve extra
    raise DependencyError(f"kb serve needs FastAPI and uvicorn ({e.name or e}): {install_command('serve')}") from e

from kb.server.asgi import BodyLimit, Guarded, Headers
from kb.server.deps import ServerSettings
from kb.server.errors import kb_error
from kb.server.routes import ask, documents, ingest, page, status
from kb.server.service import Service, check_roots
from kb.server.uploads import JSON_LIMIT
from kb.version import __version__

DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's files, from the fastapi-offline package
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
             "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(kb: KnowledgeBase | str | os.PathLike[str] | None = None, *, llm: LLM | str | None = None,
               token: str | None = None, docs: list[str | os.PathLike[str]] | None = None,
               uploads: str | os.PathLike[str] | None = None, max_upload_mb: float = 100.0,
               service: Service | None = None, search_concurrency: int | None = None,
               **overrides: object) -> FastAPI:
    """The `kb serve` application over `kb` (a `KnowledgeBase`, a folder, or None for the usual
    lookup). Models load now, once. `token`: required as `Authorization: Bearer` on every API route
    (default: the KB_API_TOKEN variable; None or empty: no authentication). `docs`: folders whose
    files POST /ingest may name (default: the current folder). `search_concurrency`: searches run at
    once (default: 2 per core). `overrides`: settings, as `KnowledgeBase.open` takes them."""
    token = token if token is not None else api_token()
    roots = check_roots([Path(p) for p in (docs or [Path.cwd()])])
    svc = service or Service.start(kb, llm=llm, **overrides)
    upload_dir = Path(uploads).expanduser().resolve() if uploads else svc.path / "uploads"
    settings = ServerSettings(token=token or None, roots=roots, upload_dir=upload_dir, max_upload_mb=max_upload_mb)

    # /docs (Swagger UI) and /redoc load their scripts from this server, not a CDN: they work offline.
    app = FastAPIOffline(
        title="kb", version=__version__, lifespan=_lifespan, static_url=DOCS_ASSETS, favicon_url="data:,",
        description="Search and ask a kb knowledge base; answers cite their sources, each citation checked. "
                    "Every route but `/`, `/static`, `/docs`, `/redoc` and `/healthz` needs "
                    "`Authorization: Bearer <KB_API_TOKEN>` when the server has a token.",
    )
    app.state.service, app.state.settings = svc, settings
    # Searches are CPU-bound: past a few per core at once they only slow each other down (20 clients on
    # 2 cores: 70 requests/s unbounded, 107 with this; benchmarks/serve.py), so the rest wait their turn
    # here, and so do the POSTs of the apps `mount` adds.
    app.state.searching = asyncio.Semaphore(search_concurrency or 2 * (os.cpu_count() or 2))
    app.state.streams = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kb-ask")  # GET|POST /ask/stream
    app.state.mounted = []
    app.add_middleware(BodyLimit, limits={"/ingest": settings.max_upload}, default=JSON_LIMIT)
    app.add_middleware(Headers, page_csp=_PAGE_CSP)
    app.exception_handler(KBError)(kb_error)
    for routes in (ask, ingest, status, documents, page):
        app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncExitStack() as mounted:  # the apps `mount` added (kb serve --mcp) run their own lifespans
        for sub in app.state.mounted:
            await mounted.enter_async_context(sub.router.lifespan_context(sub))
        yield
    app.state.streams.shutdown(wait=False, cancel_futures=True)
    await run_in_threadpool(app.state.service.close)


def mount(app: FastAPI, path: str, sub: Starlette) -> None:
    """Serve `sub`, a Starlette app that answers at `path` itself (`kb serve --mcp`: the MCP endpoint at
    /mcp), behind the API token as the API routes are, its POST requests (MCP tool calls) taking turns
    with the searches (`kb.server.asgi.Guarded`); its lifespan runs inside `app`'s. Call it before the
    server starts. The server never imports what it serves this way (kb.integrations): the CLI hands it over."""
    guarded = Guarded(sub, app.state.settings.token, app.state.searching)
    app.router.routes.append(Route(path, endpoint=guarded, include_in_schema=False))
    app.state.mounted.append(sub)
