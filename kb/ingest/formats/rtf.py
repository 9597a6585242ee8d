"""Rich Text Format (.rtf) with striprtf: each paragraph a block, table rows "a | b", bullets a list.
RTF marks no headings that survive conversion to text, so blocks carry no section path."""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import clean_text
from kb.types import JSON, Block, ParsedDocument

log = logging.getLogger(__name__)
_CODEPAGE = re.compile(rb"\\ansicpg(\d+)")
_HEX_RUN = re.compile(rb"[0-9a-fA-F\r\n]{1024,}")
# Word and LibreOffice write a bullet as a Symbol-font glyph (private use U+F0B7) or "•", then a tab.
_BULLET = re.compile(r"^\s*[\uf0a7\uf0b7\uf076\uf0d8\u2022\u25cf\u25aa\u2013\-–·o§]\s*\t\s*")


class RtfParser:
    file_type = "rtf"
    extensions = (".rtf",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from striprtf.striprtf import rtf_to_text

        data = path.read_bytes()
        if not data.lstrip().startswith(b"{\\rtf"):
            raise ParseError("not an RTF file")
        # A picture is kilobytes of hex digits that striprtf would scan only to drop (1.7 s for 8 MB):
        # cut such runs first. Text never runs a kilobyte without a space.
        source = _HEX_RUN.sub(b"", data).decode("latin-1")
        text = rtf_to_text(source, encoding=_encoding(data), errors="replace")
        truncated = data.count(b"{") - data.count(b"\\{") > data.count(b"}") - data.count(b"\\}")
        blocks = _blocks(text)
        if not blocks:
            raise ParseError("truncated RTF file: no text before the cut" if truncated else "no text in RTF file")
        metadata: JSON = {}
        if truncated:
            log.warning("kb: %s: RTF file ends early (unclosed groups); the text up to the cut is kept", path)
            metadata["warnings"] = ["RTF file ends early (unclosed groups); the text up to the cut is kept"]
        return ParsedDocument(title=_title(data) or path.stem, blocks=blocks, metadata=metadata)


def _encoding(data: bytes) -> str:
    """The ANSI code page the file declares for its \\'xx bytes (cp1252 when it names none or one
    Python does not know)."""
    m = _CODEPAGE.search(data[:4096])
    if m:
        try:
            return codecs.lookup(f"cp{int(m.group(1))}").name
        except LookupError:
            pass
    return "cp1252"


def _title(data: bytes) -> str:
    """{\\info{\\title ...}}, where the writer filled it in (plain ASCII titles only: escapes inside
    it would need the whole RTF decoder)."""
    m = re.search(rb"\{\\title\s+([^{}\\]*)\}", data[:65536])
    return " ".join(m.group(1).decode("latin-1").split()) if m else ""


def _blocks(text: str) -> list[Block]:
    """A line is a paragraph (striprtf ends each \\par with one newline); runs of "a|b|" lines
    (\\cell ends each cell) are a table, runs of bulleted lines a list."""
    blocks: list[Block] = []
    for raw in text.replace("\r", "\n").split("\n"):
        line = raw.replace("\x00", "")
        if line.rstrip().endswith("|"):
            cells = [clean_text(c).replace("\n", " ") for c in line.rstrip().rstrip("|").split("|")]
            kind, line = "table", " | ".join(cells)
        elif _BULLET.match(line):
            kind, line = "list", "- " + clean_text(_BULLET.sub("", line, count=1))
        else:
            kind, line = "text", clean_text(line)
        if not line.strip(" |-"):
            continue
        if kind != "text" and blocks and blocks[-1].kind == kind:
            blocks[-1] = Block(blocks[-1].text + "\n" + line, kind=kind)
        else:
            blocks.append(Block(line, kind=kind))
    return blocks
