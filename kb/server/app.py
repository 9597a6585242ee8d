"""The HTTP API and web page of `kb serve` (FastAPI): routes, authentication, body limits, streaming.

The JSON of POST /search and POST /ask is exactly that of `kb search --json` and `kb ask --json`
(the same serialisation code); GET|POST /ask/stream sends the answer's pieces as server-sent events,
then the same object. All work is done by `kb.server.service.Service`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from kb.config import MODES
from kb.errors import ConfigError, DependencyError, KBError, LockedError, install_command
from kb.filters import Filters, parse_where
from kb.ingest.base import file_types
from kb.server.asgi import UNAUTHORIZED, BodyLimit, Guarded, Headers, token_ok
from kb.server.auth import api_token
from kb.server.service import Service, check_roots
from kb.types import search_json
from kb.version import __version__

try:
    from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from fastapi.staticfiles import StaticFiles
    from fastapi_offline import FastAPIOffline
    from pydantic import BaseModel, Field, ValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route
except ImportError as e:  # pragma: no cover - the core installs without the serve extra
    raise DependencyError(f"kb serve needs FastAPI and uvicorn ({e.name or e}): {install_command('serve')}") from e

STATIC = Path(__file__).with_name("static")
DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's files, from the fastapi-offline package
TOKEN_COOKIE = "kb_token"  # set by the web page so that a citation link (a plain navigation) can open a file
JSON_LIMIT = 1 << 20  # bytes of any request body other than an upload
MAX_FILES = 100  # files in one upload
MAX_TURNS = 10  # earlier turns of a conversation in one question (the model reads the last 6)
_BEARER = HTTPBearer(auto_error=False, description="The server's KB_API_TOKEN.")
FileType = Literal[tuple(file_types())]  # type: ignore[valid-type]
Mode = Literal[MODES]  # type: ignore[valid-type]

_MEDIA = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html; charset=utf-8",
    "markdown": "text/plain; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
             "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# An ingested web page must not run scripts on this origin (where the API token lives).
_DOCUMENT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# --- request bodies ------------------------------------------------------------------------------
class _Filters(BaseModel):
    path: str | None = Field(None, max_length=500, description="Glob on the source path, e.g. 'reports/*2023*'.")
    type: FileType | None = Field(None, description="Only this file type.")
    pages: str | None = Field(None, max_length=20, description="Only passages on these pages: 12 or 3-7.")
    section: str | None = Field(None, max_length=500, description="Only passages whose section path contains this.")
    where: dict[str, Annotated[str, Field(max_length=500)]] | None = Field(
        None, max_length=10, description="Only documents whose metadata fields hold these texts, e.g. {\"from\": \"ada\"}.")

    def filters(self) -> Filters:
        return Filters(path=self.path, file_type=self.type, pages=Filters.parse_pages(self.pages), section=self.section,
                       where=parse_where(self.where))


class SearchRequest(_Filters):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=100, description="Number of passages.")
    mode: Mode | None = Field(None, description="hybrid (default), dense or keyword.")


class AskRequest(_Filters):
    question: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=100, description="Passages to retrieve.")
    temperature: float | None = Field(None, ge=0, le=5)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=1000)
    max_tokens: int = Field(512, ge=1, le=4096)

    def generation(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_tokens": self.max_tokens}

    def turns(self) -> list[dict[str, str]]:
        return []  # a GET URL carries no conversation: POST one (`AskBody`)


class _Turn(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    answer: str = Field("", max_length=20000, description="The answer as it was shown (its [n] markers may stay).")


class AskBody(AskRequest):
    history: list[_Turn] = Field(
        default_factory=list, max_length=MAX_TURNS,
        description=f"Earlier turns of this conversation, oldest first (at most {MAX_TURNS}: send the latest). "
                    "With an LLM, a follow-up is rewritten to stand alone before it is searched (`rewritten` in "
                    "the answer); without one it is searched as typed. Not kept by the server.")

    def turns(self) -> list[dict[str, str]]:
        return [t.model_dump() for t in self.history]


class IngestRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=100,
                             description="Files or folders on the server, inside a --docs folder.")


# --- the app -------------------------------------------------------------------------------------
def create_app(kb: Any = None, *, llm: Any = None, token: str | None = None,
               docs: list[str | os.PathLike[str]] | None = None, uploads: str | os.PathLike[str] | None = None,
               max_upload_mb: float = 100.0, service: Service | None = None, search_concurrency: int | None = None,
               **overrides: Any) -> FastAPI:
    """The `kb serve` application over `kb` (a `KnowledgeBase`, a folder, or None for the usual
    lookup). Models load now, once. `token`: required as `Authorization: Bearer` on every API route
    (default: the KB_API_TOKEN variable; None or empty: no authentication). `docs`: folders whose
    files POST /ingest may name (default: the current folder). `search_concurrency`: searches run at
    once (default: 2 per core). `overrides`: settings, as `KnowledgeBase.open` takes them."""
    token = token if token is not None else api_token()
    token = token or None
    roots = check_roots([Path(p) for p in (docs or [Path.cwd()])])
    svc = service or Service.start(kb, llm=llm, **overrides)
    upload_dir = Path(uploads).expanduser().resolve() if uploads else svc.path / "uploads"
    max_upload = int(max_upload_mb * (1 << 20))
    streams = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kb-ask")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as mounted:  # the apps `mount` added (kb serve --mcp) run their own lifespans
            for sub in app.state.mounted:
                await mounted.enter_async_context(sub.router.lifespan_context(sub))
            yield
        streams.shutdown(wait=False, cancel_futures=True)
        await run_in_threadpool(svc.close)

    # /docs (Swagger UI) and /redoc load their scripts from this server, not a CDN: they work offline.
    app = FastAPIOffline(
        title="kb", version=__version__, lifespan=lifespan, static_url=DOCS_ASSETS, favicon_url="data:,",
        description="Search and ask a kb knowledge base; answers cite their sources, each citation checked. "
                    "Every route but `/`, `/static`, `/docs`, `/redoc` and `/healthz` needs "
                    "`Authorization: Bearer <KB_API_TOKEN>` when the server has a token.",
    )
    app.state.service = svc
    app.state.token, app.state.mounted = token, []
    app.add_middleware(BodyLimit, limits={"/ingest": max_upload}, default=JSON_LIMIT)
    app.add_middleware(Headers, page_csp=_PAGE_CSP)

    @app.exception_handler(KBError)
    async def kb_error(request: Request, exc: KBError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status_of(exc))

    async def authorized(request: Request,
                         _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]) -> None:
        cookie = None  # a citation link (a plain navigation) opens a file with the web page's cookie
        if request.method == "GET" and request.url.path.startswith("/documents/"):
            cookie = unquote(request.cookies.get(TOKEN_COOKIE, "")) or None
        if not token_ok(token, request.headers.get("authorization", ""), cookie):
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(dependencies=[Depends(authorized)])

    # Searches are CPU-bound: past a few per core at once they only slow each other down (20 clients on
    # 2 cores: 70 requests/s unbounded, 107 with this; benchmarks/serve.py), so the rest wait their turn here.
    searching = asyncio.Semaphore(search_concurrency or 2 * (os.cpu_count() or 2))
    app.state.searching = searching  # taken by the apps `mount` adds too

    @api.post("/search", summary="Best passages for a query (the `kb search --json` object)")
    async def search(body: SearchRequest) -> dict[str, Any]:
        filters = body.filters()
        async with searching:
            hits = await run_in_threadpool(svc.search, body.query, body.k, filters, body.mode)
        return search_json(body.query, hits)

    @api.post("/ask", summary="An answer with checked citations (the `kb ask --json` object)")
    def ask(body: AskBody) -> dict[str, Any]:
        return svc.ask(body.question, body.k, body.filters(), history=body.turns(), **body.generation()).to_json()

    @api.get("/ask/stream", summary="The answer as server-sent events: `token`s, then `links` and `answer`",
             response_class=StreamingResponse)
    async def ask_stream_get(query: Annotated[AskRequest, Query()]) -> StreamingResponse:
        return _stream(svc, query, streams)

    @api.post("/ask/stream", summary="As GET /ask/stream, the question in a JSON body (kept out of access logs)",
              response_class=StreamingResponse)
    async def ask_stream_post(body: AskBody) -> StreamingResponse:
        return _stream(svc, body, streams)

    @api.post("/ingest", status_code=202, summary="Ingest server paths (JSON) or uploaded files (multipart): a job",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": IngestRequest.model_json_schema()},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
              }}})
    async def ingest(request: Request) -> dict[str, Any]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES, max_part_size=JSON_LIMIT) as form:
                files = [f for key in ("files", "file") for f in form.getlist(key) if not isinstance(f, str)]
                if not files:
                    raise HTTPException(400, "no files: send them as multipart fields named 'files'")
                paths = await run_in_threadpool(_save_uploads, files, upload_dir)
        elif kind in ("application/json", ""):
            try:
                body = IngestRequest.model_validate(json.loads(await request.body() or b"null"))
            except ValidationError as e:
                raise RequestValidationError(e.errors(include_url=False)) from None
            except ValueError:
                raise HTTPException(400, "the body is not JSON") from None
            paths = [_inside(p, roots) for p in body.paths]
        else:
            raise HTTPException(415, "send JSON {\"paths\": [...]} or multipart/form-data files")
        job = svc.submit(paths)
        return {**job.to_json(), "url": f"/jobs/{job.id}"}

    @api.get("/jobs/{job_id}", summary="An ingest job: state, progress, and its report when done")
    def job(job_id: str) -> dict[str, Any]:
        found = svc.job(job_id)
        if found is None:
            raise HTTPException(404, "no such job")
        return found.to_json()

    @api.get("/jobs", summary="Recent ingest jobs, oldest first")
    def jobs() -> list[dict[str, Any]]:
        return [j.to_json() for j in svc.jobs()]

    @api.get("/status", summary="What the knowledge base holds (the `kb status --json` object) and the server")
    def status() -> dict[str, Any]:
        return {**svc.status(), "server": {
            "version": __version__, "llm": svc.llm.name if svc.llm else None, "auth": token is not None,
            "max_upload_mb": max_upload_mb, "ingesting": svc.busy,
        }}

    @api.get("/documents", summary="The ingested documents (the `kb documents --json` fields), with each id and file URL")
    def documents() -> list[dict[str, Any]]:
        return svc.documents()

    @api.delete("/documents/{doc_id}", status_code=202,
                summary="Remove a document (a job, as ingest is); a file uploaded here is deleted with it")
    def remove_document(doc_id: str) -> dict[str, Any]:
        job = svc.remove(int(doc_id), owned=upload_dir) if _is_id(doc_id) else None
        if job is None:
            raise HTTPException(404, "no such document")
        return {**job.to_json(), "url": f"/jobs/{job.id}"}

    @api.get("/documents/{doc_id}", summary="The source file of an ingested document (PDFs open at #page=N)",
             response_class=FileResponse)
    def document(doc_id: str) -> FileResponse:
        found = svc.document_file(int(doc_id)) if _is_id(doc_id) else None
        if found is None:
            raise HTTPException(404, "no such document on this server")
        path, file_type, _ = found
        media = _MEDIA.get(file_type, "application/octet-stream")
        inline = file_type != "docx"
        response = FileResponse(path, media_type=media, filename=path.name,
                                content_disposition_type="inline" if inline else "attachment")
        if file_type == "html":
            response.headers["Content-Security-Policy"] = _DOCUMENT_CSP
        return response

    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/favicon.ico", include_in_schema=False, status_code=204)
    def favicon() -> None:
        return None

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def mount(app: FastAPI, path: str, sub: Any) -> None:
    """Serve `sub`, a Starlette app that answers at `path` itself (`kb serve --mcp`: the MCP endpoint at
    /mcp), behind the API token as the API routes are, its POST requests (MCP tool calls) taking turns
    with the searches (`kb.server.asgi.Guarded`); its lifespan runs inside `app`'s. Call it before the
    server starts. The server never imports what it serves this way (kb.integrations): the CLI hands it over."""
    guarded = Guarded(sub, app.state.token, app.state.searching)
    app.router.routes.append(Route(path, endpoint=guarded, include_in_schema=False))
    app.state.mounted.append(sub)


def _is_id(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,18}", text) is not None


def _status_of(exc: KBError) -> int:
    from kb.llm.base import LLMError

    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, LockedError):
        return 409
    if isinstance(exc, LLMError):
        return 502
    return 409  # e.g. an empty knowledge base: the request is fine, the state is not


# --- streaming -----------------------------------------------------------------------------------
class _Disconnected(Exception):
    """The client went away: raised inside generation to stop it."""


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _stream(svc: Service, body: AskRequest, pool: ThreadPoolExecutor) -> StreamingResponse:
    filters = body.filters()  # a bad page range is a 400 before the stream starts
    return StreamingResponse(_events(svc, body, filters, pool), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(svc: Service, body: AskRequest, filters: Filters, pool: ThreadPoolExecutor) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    gone = threading.Event()

    def on_token(piece: str) -> None:
        if gone.is_set():
            raise _Disconnected
        loop.call_soon_threadsafe(events.put_nowait, ("token", piece))

    def work() -> None:
        try:
            result = svc.ask(body.question, body.k, filters, on_token=on_token, stream=True, history=body.turns(),
                             **body.generation())
            loop.call_soon_threadsafe(events.put_nowait, ("done", (result.to_json(), _links(svc, result))))
        except _Disconnected:
            pass
        except KBError as e:
            loop.call_soon_threadsafe(events.put_nowait, ("error", {"detail": str(e), "status": _status_of(e)}))
        except Exception as e:  # reported to the client rather than lost in a thread
            error = {"detail": f"{type(e).__name__}: {e}", "status": 500}
            loop.call_soon_threadsafe(events.put_nowait, ("error", error))

    pool.submit(work)
    try:
        yield b": kb\n\n"  # headers out at once, before retrieval and the prompt are done
        while True:
            kind, value = await events.get()
            if kind == "token":
                yield _sse("token", {"text": value})
            elif kind == "done":
                answer, links = value
                yield _sse("links", links)
                yield _sse("answer", answer)
                return
            else:
                yield _sse("error", value)
                return
    finally:
        gone.set()


def _links(svc: Service, result: Any) -> dict[str, dict[str, str]]:
    """URLs of the files behind the answer's citations [n] and hits (by rank), for the web page;
    only for documents whose file is on this server. PDFs open at the cited page."""
    by_chunk = {h.chunk_id: h for h in result.hits}
    servable: dict[int, bool] = {}

    def url(doc_id: int, file_type: str, page: int | None) -> str | None:
        if doc_id not in servable:
            servable[doc_id] = svc.document_file(doc_id) is not None
        if not servable[doc_id]:
            return None
        return f"/documents/{doc_id}" + (f"#page={page}" if file_type == "pdf" and page else "")

    hits = {str(h.rank): url(h.doc_id, h.file_type, h.page) for h in result.hits}
    citations: dict[str, str | None] = {}
    for c in result.citations:
        hit = next((by_chunk[i] for i in c.chunk_ids if i in by_chunk), None)
        if hit is not None:
            citations[str(c.n)] = url(hit.doc_id, hit.file_type, c.page)
    return {"citations": {k: v for k, v in citations.items() if v}, "hits": {k: v for k, v in hits.items() if v}}


# --- uploads and server paths ----------------------------------------------------------------------
def _safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = re.sub(r"[^\w.\- ]", "_", base).lstrip(".-~$ ")
    return base[:200] or "upload"


def _save_uploads(files: list[Any], folder: Path) -> list[str]:
    """Keep uploaded files under `folder` by name (an upload of a name already there is a new version)."""
    from kb.ingest.base import is_supported

    named = [(f, _safe_name(f.filename or "")) for f in files]
    bad = [n for _, n in named if not is_supported(Path(n))]
    if bad:
        raise HTTPException(415, f"unsupported file type: {', '.join(bad)} (PDF, Word, Markdown, HTML or text)")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for upload, name in named:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                upload.file.seek(0)
                shutil.copyfileobj(upload.file, out, 1 << 20)
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(str(folder / name))
    return paths


def _inside(given: str, roots: list[Path]) -> str:
    """A server path the client named, if it lies inside one of the --docs folders."""
    candidate = Path(given).expanduser()
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise HTTPException(403, f"{given}: outside the folders this server ingests from (--docs)")
    if not resolved.exists():
        raise HTTPException(400, f"{given}: no such file or folder on the server")
    return str(resolved)
