"""Plain text in any encoding: charset-normalizer guesses it, so non-UTF-8 files never crash."""

from __future__ import annotations

from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import paragraphs
from kb.types import ParsedDocument


def read_text(path: Path) -> str:
    """Decode a text file whatever its encoding; refuse files that are really binary."""
    data = path.read_bytes()
    if not data.strip():
        return ""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise ParseError("binary content, not text") from None
        text = str(best)
    if "\x00" in text[:4096]:
        raise ParseError("binary content, not text")
    return text


class TextParser:
    file_type = "text"

    def parse(self, path: Path) -> ParsedDocument:
        blocks = paragraphs(read_text(path))
        if not blocks:
            raise ParseError("empty file")
        return ParsedDocument(title=path.stem, blocks=blocks)
