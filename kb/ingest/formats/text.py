"""Plain text in any encoding: UTF-8/16/32 by BOM or byte pattern, legacy code pages guessed by
charset-normalizer, so non-UTF-8 files never crash."""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import paragraphs
from kb.types import ParsedDocument

_PREFERRED = ("utf_8", "cp1252", "latin_1", "iso8859_15")


# UTF-32's little-endian BOM starts with UTF-16's, so it is checked first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Where the zero bytes of mostly-ASCII text fall in each wide encoding (offset within a code unit).
_WIDE = (("utf-32-le", 4, (1, 2, 3)), ("utf-32-be", 4, (0, 1, 2)), ("utf-16-le", 2, (1,)), ("utf-16-be", 2, (0,)))
_TEXT_CONTROLS = frozenset("\t\n\r\f\v")


def _decode_wide(data: bytes) -> str | None:
    """UTF-16/32 text without a BOM (Windows tools write it): zero bytes sit at fixed offsets of
    each code unit and (almost) nowhere else, and the decoded text holds no controls or unassigned code
    points. A binary file has zero bytes scattered and decodes to junk, so it is still refused."""
    for encoding, unit, zero_at in _WIDE:
        if len(data) % unit:
            continue
        positions = [data[i::unit] for i in range(unit)]
        if sum(col.count(0) for i, col in enumerate(positions) if i not in zero_at) > len(data) // unit // 20:
            continue  # a few are fine (U+4E00 is 00 4E), many mean a binary file or another width
        if sum(col.count(0) for i, col in enumerate(positions) if i in zero_at) < len(data) // unit // 2:
            continue  # fewer than half of the characters look ASCII: too weak a signal to trust
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if all(_plausible(ch) for ch in text):
            return text
    return None


def _plausible(ch: str) -> bool:
    category = unicodedata.category(ch)
    return ch in _TEXT_CONTROLS or category not in ("Cc", "Cn", "Co", "Cs")


def read_text(path: Path) -> str:
    """Decode a text file whatever its encoding; refuse files that are really binary."""
    data = path.read_bytes()
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError:
                break  # a BOM followed by something else: let the guessing below decide
            if "\x00" in text[:4096]:
                raise ParseError("binary content, not text")
            return text
    if not data.strip():
        return ""
    if b"\x00" in data:  # UTF-8 and 8-bit code pages have no zero bytes, wide encodings many
        wide = _decode_wide(data)
        if wide is not None:
            return wide
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
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
    extensions = (".txt", ".text")  # .rst has its own parser (kb.ingest.formats.rst), which keeps the sections

    def parse(self, path: Path) -> ParsedDocument:
        blocks = paragraphs(read_text(path))
        if not blocks:
            raise ParseError("empty file")
        return ParsedDocument(title=path.stem, blocks=blocks)
