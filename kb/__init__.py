"""kb: a local-first knowledge base. Ingest files, search them, cite exactly where answers come from."""

from __future__ import annotations

from kb.api import KnowledgeBase
from kb.errors import KBError
from kb.types import Chunk, FileOutcome, Hit, IngestReport, Status
from kb.version import __version__

__all__ = ["Chunk", "FileOutcome", "Hit", "IngestReport", "KBError", "KnowledgeBase", "Status", "__version__"]
