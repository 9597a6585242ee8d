"""Legacy Word (.doc, Word 97-2003) through a Debian converter: antiword, else catdoc. No Python
library reads the format well; these two have for decades. The text becomes paragraph blocks (the
converters keep no heading styles), table rows "a | b". Where both fail or are missing, LibreOffice
(when installed) converts the file to .docx, read as one (headings, pictures and all)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import clean_text
from kb.ingest.formats.docx import DocxParser
from kb.ingest.formats.libreoffice import libreoffice_convert, soffice
from kb.ingest.formats.protected import OLE_MAGIC, refuse_encrypted
from kb.ingest.formats.rtf import RtfParser
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)
TIMEOUT_S = 60
# tool -> its command line before the file: UTF-8 out, one line per paragraph (no wrapping)
_TOOLS = {"antiword": ["-m", "UTF-8.txt", "-w", "0"], "catdoc": ["-d", "utf-8", "-w"]}


class DocParser:
    file_type = "doc"
    extensions = (".doc",)
    version = 2  # 2: LibreOffice reads the files antiword and catdoc cannot (their pictures by OCR, as .docx)

    def parse(self, path: Path) -> ParsedDocument:
        with path.open("rb") as f:
            head = f.read(8)
        if head.lstrip().startswith(b"{\\rtf"):  # Word and many exporters save RTF under .doc

            return RtfParser().parse(path)
        if head.startswith(b"PK\x03\x04"):  # a .docx renamed .doc

            return DocxParser().parse(path)
        if head != OLE_MAGIC:
            raise ParseError("not a Word 97-2003 document (.doc)")
        refuse_encrypted(path)  # antiword would say "is not a Word Document" of an encrypted one
        tools = [t for t in _TOOLS if shutil.which(t)]
        if not tools and soffice() is None:
            raise ParseError("reading .doc needs antiword, catdoc or LibreOffice, none is installed "
                             "(Debian/Ubuntu: apt install antiword catdoc, or libreoffice-writer-nogui)")
        errors = []
        for tool in tools:
            try:
                text = _convert(tool, path)
            except ParseError as e:
                errors.append(str(e))
                continue
            blocks = _blocks(text)
            if blocks:
                title, author = _summary(path)
                return ParsedDocument(title=title or path.stem, blocks=blocks,
                                      metadata={"author": author} if author else {})
            errors.append(f"{tool} found no text")
        if soffice() is not None:  # Word 6/95 files, fast-saved ones and others both converters refuse
            return _through_libreoffice(path, errors)
        raise ParseError(f"unreadable Word document (corrupt or truncated?): {errors[0]}")


def _through_libreoffice(path: Path, errors: list[str]) -> ParsedDocument:
    """The document as LibreOffice converts it to .docx; `errors`: what antiword and catdoc said."""
    with tempfile.TemporaryDirectory(prefix="kb-doc-") as tmp:
        try:
            converted = libreoffice_convert(path, "docx", Path(tmp), "Word 97-2003", "libreoffice-writer-nogui")
        except ParseError as e:
            if not errors:
                raise
            raise ParseError(f"unreadable Word document (corrupt or truncated?): {errors[0]}; "
                             "LibreOffice could not convert it either") from e
        doc = DocxParser().parse(converted)
    if errors:
        log.info("kb: %s: read by LibreOffice (%s)", path, "; ".join(errors))
    return doc


def _convert(tool: str, path: Path) -> str:
    env = dict(os.environ)
    env.setdefault("HOME", "/")  # antiword refuses to start without one (it looks for ~/.antiword)
    try:
        done = subprocess.run([tool, *_TOOLS[tool], str(path)], capture_output=True, timeout=TIMEOUT_S,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise ParseError(f"{tool} took over {TIMEOUT_S} s, gave up") from e
    except OSError as e:
        raise ParseError(f"{tool} could not run: {e.strerror or e}") from e
    if done.returncode != 0:
        said = " ".join(done.stderr.decode("utf-8", "replace").replace(str(path), path.name).split())
        raise ParseError(f"{tool}: {said[:200] or f'exit status {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace")


def _blocks(text: str) -> list[Block]:
    """Both converters, unwrapped, print a paragraph per line. Table rows, which antiword draws as
    "|a  |b  |" and catdoc as tab-separated cells, become "a | b"; adjacent rows form one table."""
    blocks: list[Block] = []
    for line in text.replace("\r", "\n").replace("\x0c", "\n").split("\n"):
        if _is_row(line):
            row = " | ".join(clean_text(c) for c in _cells(line))
            if not row.strip(" |"):
                continue
            if blocks and blocks[-1].kind == "table":
                blocks[-1] = Block(blocks[-1].text + "\n" + row, kind="table")
            else:
                blocks.append(Block(row, kind="table"))
        elif clean_text(line):
            blocks.append(Block(clean_text(line)))
    return blocks


def _is_row(line: str) -> bool:
    s = line.strip()
    return (len(s) > 1 and s.startswith("|") and s.endswith("|")) or "\t" in s


def _cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|") and s.endswith("|"):
        return s[1:-1].split("|")
    return s.split("\t")


def _summary(path: Path) -> tuple[str, str]:
    """Title and author from the file's summary information, where olefile (a dependency of
    extract-msg) is at hand; nothing is lost without them but the title."""
    try:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import olefile

        with olefile.OleFileIO(str(path)) as ole:
            meta = ole.get_metadata()
        return _decoded(meta.title), _decoded(meta.author)
    except Exception:  # a summary stream that is missing or odd costs the title only
        return "", ""


def _decoded(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        value = value.decode("cp1252", "replace")
    return " ".join((value or "").replace("\x00", "").split())
