"""A Model Context Protocol server over a knowledge base, for AI assistants (the `mcp` extra).

`kb mcp` serves it on stdio (what Claude Desktop and other MCP clients start); `kb serve --mcp` adds
it to the HTTP server as streamable HTTP at /mcp. Tools: `search`, `ask`, `get_document`,
`list_documents`; each document is also a resource (`kb://document/ID`, one page:
`kb://document/ID/page/N`). Every call goes through the `KnowledgeBase`, safe to share between
threads (the SDK runs tools in worker threads); a `KBError` reaches the client as a tool error carrying its one-line
message, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Annotated, Any, Literal, TypeVar

from kb.answer.generate import QUESTION_MAX
from kb.api import KnowledgeBase
from kb.config import MODES
from kb.errors import KBError, MissingExtraError, install_command
from kb.filters import Filters
from kb.ingest.base import file_types, supported_types
from kb.types import DocumentInfo, Hit, search_json, shown
from kb.version import __version__

INSTALL_HINT = install_command("mcp")

try:
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import (
        ResourceError,
        ResourceNotFoundError,
        ToolError,
        UnexpectedToolError,
    )
    from mcp.types import Resource as ResourceInfo
    from mcp.types import ToolAnnotations
    from pydantic import Field, ValidationError
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingExtraError(f"the MCP SDK is not available ({e.name or e}): {INSTALL_HINT}") from e

__all__ = ["DOCUMENT_URI", "INSTALL_HINT", "TOOLS", "MissingExtraError", "create_server", "http_app"]

log = logging.getLogger(__name__)

TOOLS = ("search", "ask", "get_document", "list_documents")  # what `create_server` offers, in this order
DOCUMENT_URI = "kb://document/{doc_id}"
PAGE_URI = "kb://document/{doc_id}/page/{page}"
TEXT_CHARS = 20_000  # get_document's default: a dense page of a PDF is 3,000-8,000 characters
MAX_TEXT_CHARS = 200_000  # the most get_document returns, and what a resource read returns of a document
INSTRUCTIONS = (
    f"A local knowledge base of the user's documents ({supported_types()}). Use `search` to find "
    "passages, each with its source file, page and section; cite them as `citation` reads. `ask` answers a "
    "question with checked [n] citations. `get_document` reads a page (or a document without pages) in full; "
    "`list_documents` tells what is there."
)

# Argument types, at module level so that the SDK can resolve the tools' annotations into a JSON schema.
Mode = Literal[MODES]  # type: ignore[valid-type]
FileType = Literal[tuple(file_types())]  # type: ignore[valid-type]
PathArg = Annotated[str | None, Field(description="Only sources matching this glob, e.g. 'reports/*2023*' "
                                                  "(a bare file name matches in any folder).", max_length=500)]
TypeArg = Annotated[FileType | None, Field(description="Only this file type.")]  # type: ignore[valid-type]
PagesArg = Annotated[str | int | None, Field(description="Only passages on these pages: 12 or '3-7'.")]
SectionArg = Annotated[str | None, Field(description="Only passages whose section path contains this text.",
                                         max_length=500)]
KArg = Annotated[int, Field(ge=1, le=50, description="Number of passages.")]

_T = TypeVar("_T")


def create_server(kb: KnowledgeBase, *, llm: Any = None, name: str = "kb") -> MCPServer:
    """The MCP server over `kb` (documents another process ingests meanwhile are picked up before each
    call). `llm`: what `ask` answers with (an `LLM`, a backend name, "none" for extractive answers, or
    None for the configured default)."""

    def current() -> KnowledgeBase:
        kb.reload_if_changed()  # a long-lived server: read the vectors a `kb ingest` beside it wrote (one stat)
        return kb

    server = _Server(current, name=name, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)

    @_tool_errors
    def search(query: Annotated[str, Field(min_length=1, max_length=2000, description="What to look for.")],
               k: KArg = 5, path: PathArg = None, type: TypeArg = None, pages: PagesArg = None,
               section: SectionArg = None,
               mode: Annotated[Mode | None, Field(description="hybrid (default): meaning and exact words; "
                                                  "dense: meaning; keyword: exact words (BM25).")] = None,
               ) -> dict[str, Any]:
        """Find the passages of the knowledge base that best match a query. Each hit has its source file,
        page (1-based, PDFs) and section, the passage text, a snippet of its best-matching part, a score,
        and `citation` (file p.N § Section) to cite it by."""
        r = current()
        hits = r.search(query, k=k, filters=_filters(path, type, pages, section), mode=mode)
        base = _folder(r)
        found: dict[str, Any] = {**search_json(query, []),
                                 "hits": [{**h.to_json(), "citation": _citation(h, base)} for h in hits]}
        if not hits:
            found["note"] = "no passage matches" + _described(path, type, pages, section)
        return found

    @_tool_errors
    def ask(question: Annotated[str, Field(min_length=1, max_length=QUESTION_MAX, description="The question.")],
            k: KArg = 5, path: PathArg = None, type: TypeArg = None, pages: PagesArg = None,
            section: SectionArg = None) -> dict[str, Any]:
        """Answer a question from the knowledge base, citing its sources as [n] (each citation's `source`,
        `page`, `section` and `quote`); every cited sentence is checked against its source. Without a
        language model configured, the answer quotes the best passages' sentences. "Not found in the
        knowledge base" means the documents do not hold the answer."""
        r = current()
        answer = r.ask(question, k=k, filters=_filters(path, type, pages, section), llm=llm, stream=False)
        out = answer.to_json()
        base = _folder(r)
        for cited, c in zip(answer.citations, out["citations"]):
            c["citation"] = _citation(Hit(0, 0.0, 0, cited.source, cited.page, cited.page_end, cited.section, "",
                                          unit=cited.unit), base)
        return out

    @_tool_errors
    def get_document(source: Annotated[str, Field(min_length=1, max_length=4096, description=(
                         "The document: its source path as search or list_documents give it, a path ending "
                         "that names one document (e.g. its file name), or its kb://document/ID uri."))],
                     page: Annotated[int | None, Field(ge=1, description=(
                         "The page (1-based) of a PDF to read; leave out for a document without pages."))] = None,
                     max_chars: Annotated[int, Field(ge=100, le=MAX_TEXT_CHARS, description=(
                         "Longest text returned; longer text is cut and marked as truncated."))] = TEXT_CHARS,
                     ) -> dict[str, Any]:
        """Read the text of one page of a document (PDFs), or of a whole document that has no pages, as
        the knowledge base extracted it. Long text is cut at `max_chars` with a marker saying so."""
        r = current()
        doc = _find(r.documents(), source)
        if page is not None and doc.pages is None:
            raise ToolError(f"{shown(doc.source)} has no pages ({doc.file_type}): leave page out to read it")
        if page is not None and doc.pages is not None and page > doc.pages:
            raise ToolError(f"{shown(doc.source)} has {doc.pages} page(s), not {page}")
        whole, first, last = r.text(doc, page)
        text, truncated, total = _bounded(whole, max_chars,
                                          "ask for one page (page=N)" if doc.pages and page is None else "")
        out = {"source": doc.source, "title": doc.title, "file_type": doc.file_type, "pages": doc.pages,
               "page": page, "page_start": first, "page_end": last, "uri": DOCUMENT_URI.format(doc_id=doc.id),
               "text": text, "chars": total, "truncated": truncated}
        if not total:
            out["note"] = f"no text on page {page}" if page else "the document has no text"
        elif page is not None and (first, last) != (page, page):
            out["note"] = (f"the text runs from page {first} to {last}: a passage that crosses a page break is "
                           "kept whole")
        return out

    @_tool_errors
    def list_documents(path: PathArg = None, type: TypeArg = None) -> dict[str, Any]:
        """The documents in the knowledge base: source, title, file type, pages, chunks, size, when each
        was ingested and its resource uri; then the files that could not be ingested (those matching `path`
        and `type` too), with the reason."""
        r = current()
        filters = Filters(path=path, file_type=type)
        docs, failed = r.documents(filters), r.failures(filters)
        return {"documents": [{**d.to_json(), "uri": DOCUMENT_URI.format(doc_id=d.id)} for d in docs],
                "failed": [{"source": f.source, "reason": f.reason} for f in failed]}

    tools = {t.__name__: t for t in (search, ask, get_document, list_documents)}
    for name in TOOLS:
        server.add_tool(tools[name], annotations=read_only)

    @server.resource(DOCUMENT_URI, name="document", mime_type="text/plain",
                     description="A document's text as the knowledge base extracted it (pages in order).")
    def read_document(doc_id: str) -> str:
        r = current()
        doc = _resource_document(r, doc_id)
        return _bounded(r.text(doc, None)[0], MAX_TEXT_CHARS,
                        f"read one page: kb://document/{doc.id}/page/N" if doc.pages else "")[0]

    @server.resource(PAGE_URI, name="document page", mime_type="text/plain",
                     description="The text of one page (1-based) of a document with pages (PDF).")
    def read_page(doc_id: str, page: str) -> str:
        r = current()
        doc = _resource_document(r, doc_id)
        if not page.isdigit() or not doc.pages or not 1 <= int(page) <= doc.pages:
            raise ResourceNotFoundError(f"{shown(doc.source)} has no page {page}"
                                        + (f" (it has {doc.pages})" if doc.pages else " (it has no pages)"))
        return _bounded(r.text(doc, int(page))[0], MAX_TEXT_CHARS, "")[0]

    return server


def http_app(server: MCPServer, *, path: str = "/mcp", host: str = "127.0.0.1") -> Any:
    """`server` as a streamable-HTTP ASGI app answering at `path`, with its lifespan (which runs the
    session manager: a host must run it, e.g. `kb serve` enters it in its own). On a loopback `host`,
    requests naming another Host or Origin are refused (the SDK's DNS-rebinding protection)."""
    return server.streamable_http_app(streamable_http_path=path, host=host)


class _Server(MCPServer):
    """`MCPServer` whose resource list is the knowledge base's documents as they are now."""

    def __init__(self, current: Callable[[], KnowledgeBase], **kwargs: Any):
        super().__init__(**kwargs)
        self._current = current

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """As `MCPServer.call_tool`; a deliberate error or a bad argument reads as one line naming the tool
        ("search: k: Input should be greater than or equal to 1"), not pydantic's multi-line report."""
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, ValidationError):
                problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                                     for err in cause.errors())
                raise ToolError(f"{name}: {problems}") from cause
            if isinstance(cause, (ToolError, ResourceError)):
                raise ToolError(f"{name}: {cause}") from cause
            raise

    async def list_resources(self) -> list[ResourceInfo]:
        def listing() -> list[ResourceInfo]:
            r = self._current()
            base = _folder(r)
            return [ResourceInfo(uri=DOCUMENT_URI.format(doc_id=d.id), name=shown(d.source, base), title=d.title,
                                 mime_type="text/plain", size=None,
                                 description=f"{d.file_type}" + (f", {d.pages} pages" if d.pages else ""))
                    for d in r.documents()]

        try:
            return await anyio.to_thread.run_sync(listing)
        except KBError as e:
            raise ResourceError(str(e)) from None


# --- helpers ----------------------------------------------------------------------------------------
def _tool_errors(fn: Callable[..., _T]) -> Callable[..., _T]:
    """A `KBError` (an empty knowledge base, a bad page range) as a tool error with its one-line message."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except KBError as e:
            raise ToolError(str(e)) from None

    return run


def _filters(path: str | None, file_type: str | None, pages: str | int | None, section: str | None) -> Filters:
    return Filters(path=path or None, file_type=file_type, pages=Filters.parse_pages(str(pages) if pages else None),
                   section=section or None)


def _described(path: str | None, file_type: str | None, pages: str | int | None, section: str | None) -> str:
    text = _filters(path, file_type, pages, section).describe()
    return f" the filters ({text})" if text else ""


def _folder(r: KnowledgeBase) -> str | None:
    """The folder that holds every document: citations name files from there, as the web page does."""
    return r.status().folder


def _citation(hit: Hit, base: str | None) -> str:
    return replace(hit, source=shown(hit.source, base)).citation if base else hit.citation


def _find(docs: Iterable[DocumentInfo], given: str) -> DocumentInfo:
    """The document `given` names: its source or path, its kb:// uri, a path relative to the current
    folder, or a path ending (a file name) that only one document has."""
    docs = list(docs)
    given = given.strip()
    prefix = DOCUMENT_URI.split("{")[0]
    if given.startswith(prefix):
        key = given[len(prefix):].split("/")[0]
        found = [d for d in docs if str(d.id) == key]
    else:
        found = [d for d in docs if given in (d.source, d.path)]
        if not found:
            resolved = os.path.abspath(os.path.expanduser(given))
            found = [d for d in docs if resolved in (d.source, d.path)]
        if not found:
            tail = "/" + given.lstrip("/")
            found = [d for d in docs if d.source.endswith(tail) or d.path.endswith(tail)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ToolError(f"no document {given!r} in the knowledge base: list_documents gives the sources")
    names = ", ".join(d.source for d in found[:5]) + (", ..." if len(found) > 5 else "")
    raise ToolError(f"{given!r} names {len(found)} documents ({names}): give the full source")


def _resource_document(r: KnowledgeBase, doc_id: str) -> DocumentInfo:
    doc = r.document(int(doc_id)) if doc_id.isdigit() and len(doc_id) < 19 else None
    if doc is None:
        raise ResourceNotFoundError(f"no document {doc_id} in the knowledge base")
    return doc


def _bounded(text: str, limit: int, hint: str) -> tuple[str, bool, int]:
    """(`text` cut to `limit` characters with a marker saying so, whether it was cut, its full length)."""
    if len(text) <= limit:
        return text, False, len(text)
    cut = text.rfind(" ", int(limit * 0.9), limit)
    shown_text = text[: cut if cut > 0 else limit]
    marker = f"\n\n[truncated: {len(shown_text):,} of {len(text):,} characters shown" + (f"; {hint}" if hint else "") + "]"
    return shown_text + marker, True, len(text)
