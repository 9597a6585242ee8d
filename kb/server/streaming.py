"""GET|POST /ask/stream: the answer's pieces as server-sent events (`token`s), then the files behind
its citations (`links`) and the `kb ask --json` object (`answer`); an `error` event if it fails."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi.responses import StreamingResponse

from kb import Answer
from kb.errors import KBError
from kb.filters import Filters
from kb.server.errors import status_of
from kb.server.models import AskRequest
from kb.server.service import Service

Links = dict[str, dict[str, str]]


class _Disconnected(Exception):
    """The client went away: raised inside generation to stop it."""


def stream_answer(svc: Service, body: AskRequest, pool: ThreadPoolExecutor) -> StreamingResponse:
    filters = body.filters()  # a bad page range is a 400 before the stream starts
    return StreamingResponse(_events(svc, body, filters, pool), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _events(svc: Service, body: AskRequest, filters: Filters, pool: ThreadPoolExecutor) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue()  # (an event, whether it is the last)
    gone = threading.Event()

    def put(event: str, data: object, last: bool = False) -> None:
        loop.call_soon_threadsafe(events.put_nowait, (_sse(event, data), last))

    def on_token(piece: str) -> None:
        if gone.is_set():
            raise _Disconnected
        put("token", {"text": piece})

    def work() -> None:
        try:
            result = svc.ask(body.question, body.k, filters, on_token=on_token, stream=True, history=body.turns(),
                             **body.generation())
            answer, links = result.to_json(), _links(svc, result)
            put("links", links)
            put("answer", answer, last=True)
        except _Disconnected:
            pass
        except KBError as e:
            put("error", {"detail": str(e), "status": status_of(e)}, last=True)
        except Exception as e:  # reported to the client rather than lost in a thread
            put("error", {"detail": f"{type(e).__name__}: {e}", "status": 500}, last=True)

    pool.submit(work)
    try:
        yield b": kb\n\n"  # headers out at once, before retrieval and the prompt are done
        while True:
            event, last = await events.get()
            yield event
            if last:
                return
    finally:
        gone.set()


def _links(svc: Service, result: Answer) -> Links:
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
