"""The `Parser` seam: a file in, a `ParsedDocument` (blocks with page and heading path) out."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Protocol

from kb.errors import UnsupportedFileError
from kb.types import Block, ParsedDocument


class Parser(Protocol):
    file_type: str

    def parse(self, path: Path) -> ParsedDocument: ...


# extension -> (module, class); modules are imported on first use so `kb --help` stays instant.
_REGISTRY: dict[str, tuple[str, str]] = {
    ".pdf": ("kb.ingest.pdf", "PdfParser"),
    ".docx": ("kb.ingest.docx", "DocxParser"),
    ".md": ("kb.ingest.markdown", "MarkdownParser"),
    ".markdown": ("kb.ingest.markdown", "MarkdownParser"),
    ".txt": ("kb.ingest.text", "TextParser"),
    ".text": ("kb.ingest.text", "TextParser"),
    ".rst": ("kb.ingest.text", "TextParser"),
    ".html": ("kb.ingest.html", "HtmlParser"),
    ".htm": ("kb.ingest.html", "HtmlParser"),
}


def supported_extensions() -> list[str]:
    return sorted(_REGISTRY)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in _REGISTRY


def parser_for(path: Path) -> Parser:
    try:
        module, name = _REGISTRY[path.suffix.lower()]
    except KeyError:
        raise UnsupportedFileError(f"unsupported file type {path.suffix or '(no extension)'!r}") from None
    return getattr(importlib.import_module(module), name)()


_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANKS = re.compile(r"\n\s*\n")


def clean_text(text: str) -> str:
    """Collapse runs of spaces, drop trailing ones and stray NULs; keep line and paragraph breaks."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def paragraphs(text: str, headings: tuple[str, ...] = (), page: int | None = None) -> list[Block]:
    """Split cleaned text into paragraph blocks at blank lines."""
    return [Block(p, headings, page) for p in clean_text(text).split("\n\n") if p.strip()]
