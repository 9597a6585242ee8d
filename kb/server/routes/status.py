"""GET /status: what the knowledge base holds (the `kb status --json` object) and, under "server", what
the web page needs to know of this server: its limits, and the constants it shares with the library."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kb.answer.chat import KEPT_TURNS
from kb.ingest.base import file_types
from kb.server.deps import AUTHORIZED, TOKEN_COOKIE, ServiceDep, SettingsDep
from kb.types import UNITS
from kb.version import __version__

router = APIRouter(dependencies=AUTHORIZED)


@router.get("/status", summary="What the knowledge base holds (the `kb status --json` object) and the server")
def status(svc: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    return {**svc.status(), "server": {
        "version": __version__, "llm": svc.llm.name if svc.llm else None, "auth": settings.token is not None,
        "model": svc.model(),  # {"name", "state": ready | loading | not loaded | failed | none, "reason"}
        "max_upload_mb": settings.max_upload_mb, "ingesting": svc.busy,
        "kept_turns": KEPT_TURNS,  # earlier turns a conversation sends with a follow-up (POST /ask's `history`)
        "file_types": file_types(),  # what an upload may be
        "units": {unit: [one, many] for unit, (one, many, _) in UNITS.items()},  # "p.12", "slides 2-3"
        "token_cookie": TOKEN_COOKIE,
    }}
