"""Plain text in any encoding: charset-normalizer guesses it, so non-UTF-8 files never crash."""

from __future__ import annotations

from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import paragraphs
from kb.types import ParsedDocument

_PREFERRED = ("utf_8", "cp1252", "latin_1", "iso8859_15")


def read_text(path: Path) -> str:
    """Decode a text file whatever its encoding; refuse files that are really binary."""
    data = path.read_bytes()
    if not data.strip():
        return ""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        matches = list(from_bytes(data))
        if not matches:
            raise ParseError("binary content, not text") from None
        best = matches[0]
        # Short texts fit many 8-bit codepages equally well; Windows-1252 is by far the most
        # common of them in real files, so it wins a tie.
        tied = [m for m in matches if m.chaos <= best.chaos and m.coherence >= best.coherence]
        best = next((m for m in tied if m.encoding in _PREFERRED), best)
        text = str(best)
    if "\x00" in text[:4096]:
        raise ParseError("binary content, not text")
    return text


class TextParser:
    file_type = "text"
    extensions = (".txt", ".text", ".rst")

    def parse(self, path: Path) -> ParsedDocument:
        blocks = paragraphs(read_text(path))
        if not blocks:
            raise ParseError("empty file")
        return ParsedDocument(title=path.stem, blocks=blocks)
