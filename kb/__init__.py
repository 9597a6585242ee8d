"""kb: a local-first knowledge base. Ingest files, search them, cite exactly where answers come from.

    from kb import KnowledgeBase, Filters

    with KnowledgeBase.open("./.kb") as kb:
        kb.ingest(["docs"])
        for hit in kb.search("backup schedule", k=3, filters=Filters(path="*2023*")):
            print(hit.citation, hit.score)
        print(kb.ask("How long are backups kept?").answer)

The seams (parsers, embedders, vector stores, LLM backends) live in their subpackages, each with a
registry that other packages extend through entry points: see docs/architecture.md.
"""

from __future__ import annotations

from kb.answer.chat import Turn
from kb.answer.citations import SentenceCheck
from kb.answer.types import Answer, Citation, Source
from kb.api import KnowledgeBase
from kb.config import MODES, Settings
from kb.errors import (
    CatalogError,
    ConfigError,
    DependencyError,
    EmbedderError,
    EmbedderMismatchError,
    KBError,
    LockedError,
    ParseError,
    StoreError,
)
from kb.filters import Filters
from kb.types import CheckReport, Chunk, FileOutcome, Hit, IngestReport, Stale, Status
from kb.version import __version__

__all__ = [
    "MODES", "Answer", "CatalogError", "CheckReport", "Chunk", "Citation", "ConfigError", "DependencyError",
    "EmbedderError", "EmbedderMismatchError", "FileOutcome", "Filters", "Hit", "IngestReport", "KBError",
    "KnowledgeBase", "LockedError", "ParseError", "SentenceCheck", "Settings", "Source", "Stale", "Status",
    "StoreError", "Turn", "__version__",
]
