"""Who may use `kb serve`: the API token and the loopback rule."""

from __future__ import annotations

import ipaddress
import os

from kb.errors import ConfigError

TOKEN_ENV = "KB_API_TOKEN"


def api_token() -> str | None:
    """The API token from the environment; None when it is unset or empty (no authentication)."""
    return os.environ.get(TOKEN_ENV) or None


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
