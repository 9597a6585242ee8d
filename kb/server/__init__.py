"""`kb serve`: one knowledge base over HTTP for a whole team, with a web page (the `serve` extra).

    from kb.server import create_app      # a FastAPI app; run it with uvicorn
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kb.server.auth import TOKEN_ENV, api_token, check_bind, is_loopback

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["TOKEN_ENV", "api_token", "check_bind", "create_app", "is_loopback"]


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See `kb.server.app.create_app` (imported on use: FastAPI is an optional dependency)."""
    from kb.server.app import create_app as make

    return make(*args, **kwargs)
