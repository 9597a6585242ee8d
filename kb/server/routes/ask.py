"""POST /search, POST /ask and GET|POST /ask/stream: the `kb search --json` and `kb ask --json` objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kb.server.deps import AUTHORIZED, SearchingDep, ServiceDep, StreamsDep
from kb.server.models import AskBody, AskRequest, SearchRequest
from kb.server.streaming import stream_answer
from kb.types import search_json

router = APIRouter(dependencies=AUTHORIZED)


@router.post("/search", summary="Best passages for a query (the `kb search --json` object)")
async def search(body: SearchRequest, svc: ServiceDep, searching: SearchingDep) -> dict[str, Any]:
    filters = body.filters()
    async with searching:
        hits = await run_in_threadpool(svc.search, body.query, body.k, filters, body.mode)
    return search_json(body.query, hits)


@router.post("/ask", summary="An answer with checked citations (the `kb ask --json` object)")
def ask(body: AskBody, svc: ServiceDep) -> dict[str, Any]:
    return svc.ask(body.question, body.k, body.filters(), history=body.turns(), **body.generation()).to_json()


@router.get("/ask/stream", summary="The answer as server-sent events: `token`s, then `links` and `answer`",
            response_class=StreamingResponse)
async def ask_stream_get(query: Annotated[AskRequest, Query()], svc: ServiceDep,
                         streams: StreamsDep) -> StreamingResponse:
    return stream_answer(svc, query, streams)


@router.post("/ask/stream", summary="As GET /ask/stream, the question in a JSON body (kept out of access logs)",
             response_class=StreamingResponse)
async def ask_stream_post(body: AskBody, svc: ServiceDep, streams: StreamsDep) -> StreamingResponse:
    return stream_answer(svc, body, streams)
