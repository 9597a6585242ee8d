"""Bytes to text for every text-based format kb reads (plain text, Markdown, CSV, JSON, YAML, XML, HTML,
e-mail): one order of evidence, strongest first, so no reader guesses on its own.

1. A byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE).
2. UTF-16/32 without a BOM, from where the zero bytes of mostly-ASCII text fall.
3. The encoding the file declares (XML declaration, HTML `<meta charset>`), when it decodes cleanly.
4. UTF-8, when it decodes cleanly.
5. charset-normalizer's guess among legacy code pages (Windows-1252 wins a tie).
Binary content (zero bytes in what should be text) is refused with a ParseError.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from kb.errors import ParseError

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
# Labels whose bytes 0x80-0x9F are, in files people keep, Windows-1252 (what browsers do, WHATWG Encoding).
_AS_CP1252 = frozenset({"latin_1", "ascii", "iso8859_1"})
_CHAOS_MARGIN = 0.1  # charset-normalizer "mess" ratio within which a common code page is preferred
_PRESCAN = 1024  # bytes searched for a declaration: the HTML standard's prescan length, ample for XML

_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)

Sniff = Callable[[bytes], "str | None"]


def xml_declared(data: bytes) -> str | None:
    """The encoding named in an XML declaration (`<?xml version="1.0" encoding="..."?>`)."""
    m = _XML_DECL.match(data[:_PRESCAN])
    return m.group(1).decode("ascii") if m else None


def html_declared(data: bytes) -> str | None:
    """The charset of a `<meta charset=...>` or `<meta http-equiv=Content-Type content="...; charset=...">`
    in the page's first kilobyte (where the HTML standard's prescan looks), else an XML declaration's."""
    m = _META.search(data[:_PRESCAN])
    return m.group(1).decode("ascii") if m else xml_declared(data)


def read_text(path: Path, declared: Sniff | None = None) -> str:
    """A text file's content whatever its encoding; refuses files that are really binary. `declared`
    reads the encoding the format lets a file declare (`xml_declared`, `html_declared`)."""
    return decode(path.read_bytes(), declared)


def decode(data: bytes, declared: Sniff | None = None) -> str:
    """`data` as text, by the order of evidence in the module docstring."""
    text = _unicode(data)
    if text is None:
        if not data.strip():
            return ""
        text = _declared(data, declared(data) if declared else None)
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _guess(data)
    if "\x00" in text[:4096]:
        raise ParseError("binary content, not text")
    return text


def ascii_compatible(data: bytes) -> bytes:
    """`data` as bytes an ASCII-based parser (e-mail, mailbox) can read: a UTF-16/32 file (BOM or not)
    re-encoded as UTF-8, a UTF-8 BOM dropped, anything else as it is (a MIME part declares its own
    charset, which the e-mail parser honours)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):]
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" not in data[:4096]:
        return data
    text = _unicode(data)
    return data if text is None else text.encode("utf-8", "surrogatepass")


def _unicode(data: bytes) -> str | None:
    """Text a BOM or the zero-byte pattern of UTF-16/32 identifies; None where neither does."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError:
                return None  # a BOM followed by something else: let the later steps decide
    if b"\x00" in data:  # UTF-8 and 8-bit code pages have no zero bytes, wide encodings many
        return _decode_wide(data)
    return None


def _declared(data: bytes, label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label).name.replace("-", "_")
    except LookupError:
        return None  # a label Python does not know: the declaration is ignored, not fatal
    if name.startswith(("utf_16", "utf_32")):
        return None  # bytes without zeros are no UTF-16/32: the file was re-saved, its declaration kept
    for encoding in ("cp1252", name) if name in _AS_CP1252 else (name,):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _guess(data: bytes) -> str:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise ParseError("binary content, not text")
    best = matches[0]
    # Short texts fit many 8-bit code pages nearly equally well (a French line scores Baltic cp775 first);
    # Windows-1252 is by far the most common of them in files people keep, so it wins when it reads
    # nearly as cleanly. Text in another script decoded as 1252 scores far worse, so it is not taken.
    close = [m for m in matches if m.chaos <= best.chaos + _CHAOS_MARGIN]
    best = next((m for m in close if m.encoding in _PREFERRED), best)
    return str(best)


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
