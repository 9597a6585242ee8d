"""`kb serve`: one knowledge base over HTTP for a whole team, with a web page (the `serve` extra).

    from kb.server import create_app      # a FastAPI app; run it with uvicorn
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from kb.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["check_bind", "create_app", "is_loopback"]


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See `kb.server.app.create_app` (imported on use: FastAPI is an optional dependency)."""
    from kb.server.app import create_app as make

    return make(*args, **kwargs)


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without an API token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host} accepts connections from other machines: set KB_API_TOKEN to a long random secret "
            "(clients then send Authorization: Bearer <token>), or serve on 127.0.0.1"
        )
