"""The HTTP status of a library error, for the API's JSON errors and the answer stream's `error` event."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from kb.errors import ConfigError, KBError, LockedError
from kb.llm.base import LLMError


def status_of(exc: KBError) -> int:
    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, LockedError):
        return 409
    if isinstance(exc, LLMError):
        return 502
    return 409  # e.g. an empty knowledge base: the request is fine, the state is not


async def kb_error(request: Request, exc: KBError) -> JSONResponse:
    """The exception handler of `KBError`: {"detail": message} with its status."""
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))
