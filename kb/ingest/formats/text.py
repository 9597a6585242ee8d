"""Plain text in any encoding (kb.ingest.decode: BOM, UTF-16/32 by byte pattern, legacy code pages
guessed by charset-normalizer), so non-UTF-8 files never crash."""

from __future__ import annotations

from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import paragraphs
from kb.ingest.decode import read_text
from kb.types import ParsedDocument

__all__ = ["TextParser", "read_text"]  # read_text: kb.ingest.decode's, kept importable from here


class TextParser:
    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "text"
    extensions = (".txt", ".text")  # .rst has its own parser (kb.ingest.formats.rst), which keeps the sections

    def parse(self, path: Path) -> ParsedDocument:
        blocks = paragraphs(read_text(path))
        if not blocks:
            raise ParseError("empty file")
        return ParsedDocument(title=path.stem, blocks=blocks)
