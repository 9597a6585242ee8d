"""The `Parser` seam: a file in, a `ParsedDocument` (blocks with page and heading path) out."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from kb.errors import ConfigError, UnsupportedFileError
from kb.registry import Registry
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)
PartT = TypeVar("PartT")  # what a range parser reads one range into (the PDF parser's `PageRange`)


class Parser(Protocol):
    """One file format: `parse` a file into blocks with page and heading path. A class with these
    attributes, registered under its `file_type` (entry-point group `kb.parsers`). Optional: `filenames`,
    names it reads whatever their extension, lower-case ("makefile").

    A parser class may also carry `version: int` (absent: 1), raised whenever it reads files better
    (more or other text, blocks or pages): each document records the reader and version that read it,
    and the files an older version read are then stale (`kb status`, `kb ingest --reparse`)."""

    file_type: str  # the name filters and citations use: "pdf", "docx"...
    extensions: tuple[str, ...]  # lower-case, with the dot: (".md", ".markdown")

    def parse(self, path: Path) -> ParsedDocument: ...


class RangeParser(Parser, Protocol[PartT]):
    """A parser that can also read a file in parts, so that the workers share a long one: `page_count`
    (0 when it cannot tell), `read(path, first, last)` a range of pages, and `assemble(path, parts)`
    the document from its parts in order. The PDF parser is one."""

    @staticmethod
    def page_count(path: Path) -> int: ...

    def read(self, path: Path, first: int = 1, last: int | None = None) -> PartT: ...

    def assemble(self, path: Path, parts: list[PartT]) -> ParsedDocument: ...


def range_parser(path: Path) -> RangeParser[object] | None:
    """The parser of `path` if it reads files by page ranges, else None. Its parts are opaque to the
    pipeline, which only carries them from `read` (in one worker) to `assemble` (in another)."""
    parser = parser_for(path)
    return parser if all(hasattr(parser, a) for a in ("page_count", "read", "assemble")) else None  # type: ignore[return-value]


# Built-in parsers, imported on first use so `kb --help` stays instant. Parsers registered at run
# time with `PARSERS.register` are seen by this process only: ingest parses in worker processes,
# which find plugins through their entry points.
PARSERS: Registry[type[Parser]] = Registry("kb.parsers", "parser", {
    "pdf": "kb.ingest.formats.pdf:PdfParser",
    "image": "kb.ingest.formats.image:ImageParser",  # scans and photos, read by OCR
    "docx": "kb.ingest.formats.docx:DocxParser",
    "markdown": "kb.ingest.formats.markdown:MarkdownParser",
    "html": "kb.ingest.formats.html:HtmlParser",
    "text": "kb.ingest.formats.text:TextParser",
    "json": "kb.ingest.formats.structured:JsonParser",
    "ndjson": "kb.ingest.formats.structured:NdjsonParser",
    "yaml": "kb.ingest.formats.structured:YamlParser",
    "xml": "kb.ingest.formats.structured:XmlParser",
    "email": "kb.ingest.formats.mail:EmlParser",
    "msg": "kb.ingest.formats.mail:MsgParser",
    "mbox": "kb.ingest.formats.mail:MboxParser",
    "pptx": "kb.ingest.formats.slides:PptxParser",
    "ppt": "kb.ingest.formats.slides:PptParser",
    "xlsx": "kb.ingest.formats.sheets:XlsxParser",
    "xls": "kb.ingest.formats.sheets:XlsParser",
    "ods": "kb.ingest.formats.sheets:OdsParser",
    "csv": "kb.ingest.formats.sheets:CsvParser",
    "tsv": "kb.ingest.formats.sheets:TsvParser",
    "epub": "kb.ingest.formats.ebook:EpubParser",
    "odt": "kb.ingest.formats.odt:OdtParser",
    "rtf": "kb.ingest.formats.rtf:RtfParser",
    "doc": "kb.ingest.formats.doc:DocParser",  # through antiword or catdoc (Debian packages)
    "rst": "kb.ingest.formats.rst:RstParser",
    "org": "kb.ingest.formats.org:OrgParser",
    "code": "kb.ingest.formats.code:CodeParser",  # source code, by lines
    "config": "kb.ingest.formats.code:ConfigParser",
    "log": "kb.ingest.formats.code:LogParser",
    "archive": "kb.ingest.formats.archive:ArchiveParser",  # .zip, .tar(.gz/.bz2/.xz), .gz: each file a part
})


def parsers() -> dict[str, type[Parser]]:
    """Every parser that loads, by name; a plugin that does not is skipped with a warning (once)."""
    out: dict[str, type[Parser]] = {}
    for name in PARSERS.names():
        try:
            out[name] = PARSERS.get(name)
        except ConfigError as e:
            if name not in _BROKEN:
                _BROKEN.add(name)
                log.warning("kb: %s", e)
    return out


_BROKEN: set[str] = set()


def file_types() -> list[str]:
    """Every file type a parser is registered for: what `--type` and the API's `type` accept."""
    return list(dict.fromkeys(cls.file_type for cls in parsers().values()))  # .eml and .msg are both "email"


def supported_types() -> str:
    """The file types kb reads, for help and messages: "pdf, image, docx, ... and org" (the registry's
    `file_types`, so a plugin's type is named too)."""
    names = file_types()
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def extensions() -> dict[str, str]:
    """File extension -> parser name. A parser registered later (a plugin) takes an extension a built-in
    one reads too (.ini read by a plugin of its own); those a user added in config (`code_extensions`) win."""
    return dict(_maps()[0])


# (PARSERS.changes, _added_changes) they were built at, extension -> parser, file name -> parser. Every file
# a walk finds is looked up here (twice): built once, not per call.
_cache: tuple[tuple[int, int], dict[str, str], dict[str, str]] | None = None


def _maps() -> tuple[dict[str, str], dict[str, str]]:
    """The parser of each extension and of each well-known file name ('makefile'), rebuilt when a parser
    is registered or removed, or the extensions a user added change."""
    global _cache
    key = (PARSERS.changes, _added_changes)
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    by_ext: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for name, cls in parsers().items():
        for ext in cls.extensions:
            by_ext[ext.lower()] = name
        for filename in getattr(cls, "filenames", ()):
            by_name.setdefault(filename.lower(), name)  # the first parser that names it
    by_ext.update(_added)
    _cache = (key, by_ext, by_name)
    return by_ext, by_name


_added: dict[str, str] = {}  # extension -> parser name, from `add_extensions`
_added_changes = 0


def add_extensions(spec: str, parser: str = "code") -> None:
    """Read files of these extensions ('.astro .mdx', or comma-separated) with `parser`, for this
    process: the knowledge base sets its `code_extensions` here, and each parse worker does too."""
    global _added_changes
    added = {}
    for ext in re.split(r"[\s,;]+", spec or ""):
        ext = ext.strip().lower().lstrip(".")
        if ext:
            added["." + ext] = parser
    if added != _added:  # set again for every file a worker reads: the maps are rebuilt only on a change
        _added.clear()
        _added.update(added)
        _added_changes += 1


def parser_name(path: Path, *, peek: bool = True) -> str | None:
    """The parser that reads `path`: by its well-known name ('Makefile'), else its extension, else (with
    `peek`) a script's '#!' line, for a file with no extension; else None."""
    by_ext, by_name = _maps()
    name = by_name.get(path.name.lower())
    if name is not None:
        return name
    suffix = path.suffix.lower()
    if suffix or not peek:
        return by_ext.get(suffix)
    try:
        with open(path, "rb") as f:
            script = f.read(2) == b"#!"
    except OSError:  # a name only (an upload's), a folder, or unreadable: not known to be a script
        return None
    return "code" if script and "code" in PARSERS.names() else None


def is_supported(path: Path, *, peek: bool = True) -> bool:
    """Whether kb reads `path`; `peek=False`: by its name alone (one not on disk, as an archive's file)."""
    return parser_name(path, peek=peek) is not None


def parser_for(path: Path) -> Parser:
    name = parser_name(path)
    if name is None:
        raise UnsupportedFileError(f"unsupported file type {path.suffix or '(no extension)'!r}")
    return PARSERS.get(name)()


def reader_version(parser: type[Parser] | Parser) -> int:
    """A parser's `version` (1 when it has none)."""
    return int(getattr(parser, "version", 1))


def reader_of(path: Path | str) -> tuple[str, int] | None:
    """(name, version) of the parser that reads `path` now (by its name or extension, as `parser_name`
    without peeking), or None when none does."""
    name = parser_name(Path(path), peek=False)
    if name is None:
        return None
    try:
        return name, reader_version(PARSERS.get(name))
    except ConfigError:  # a plugin's parser that no longer loads
        return None


def read_better(reader: str | None, version: int, path: str) -> bool:
    """Whether a file (`path`) that `reader` read at `version` is read better now:
    by a newer version of that parser, or by another one. A reader None (a document from before kb
    recorded it) was the one its extension names now, at version 1."""
    now = reader_of(path)
    if now is None:  # no parser reads it now: nothing would read it better
        return False
    name, current = now
    return (reader is not None and reader != name) or version < current


def stale_types(readers: dict[tuple[str, str | None, int, str], int]) -> dict[str, int]:
    """Documents a newer reader reads better, per file type, most first, from `Catalog.readers()` (keyed
    by file name: 'CMakeLists.txt' is read by another parser than 'notes.txt')."""
    named = _maps()[1]
    judged: dict[tuple[str | None, int, str], bool] = {}
    out: dict[str, int] = {}
    for (file_type, reader, version, name), n in readers.items():
        probe = name if name in named else f"file{os.path.splitext(name)[1]}"  # one judgement per extension
        key = (reader, version, probe)
        if key not in judged:
            judged[key] = read_better(reader, version, probe)
        if judged[key]:
            out[file_type] = out.get(file_type, 0) + n
    return dict(sorted(out.items(), key=lambda x: (-x[1], x[0])))


@dataclass
class Unpacking:
    """What the files inside one file found on disk share, at every level of nesting (an archive in an
    archive in a mail): the bounds on what its archives expand to (`bytes`, `members`: counted by the
    archive parser against its limits), the contents already read (a part whose bytes were seen is not
    read twice) and a reason that refuses the whole file (`fatal`), however deep it arose."""

    source: str  # the file's name, for reasons
    bytes: int = 0
    members: int = 0
    seen: dict[str, str] = field(default_factory=dict)  # sha256 -> the part first read with it ('a.zip > b.txt')
    inside: list[str] = field(default_factory=list)  # the parts being read now, outermost first
    fatal: str | None = None


_UNPACKING: ContextVar[Unpacking | None] = ContextVar("kb_unpacking", default=None)


def unpacking() -> Unpacking | None:
    """The `Unpacking` of the file being read now, None outside `unpacking_of` (a parser called on its own)."""
    return _UNPACKING.get()


@contextmanager
def unpacking_of(path: Path) -> Iterator[Unpacking]:
    """Read `path` and the files inside it under one `Unpacking`; one already open (a part's own parts
    are read inside their container's) is kept."""
    now = _UNPACKING.get()
    if now is not None:
        yield now
        return
    fresh = Unpacking(path.name)
    token = _UNPACKING.set(fresh)
    try:
        yield fresh
    finally:
        _UNPACKING.reset(token)


class HeadingPath:
    """The heading path in force while a parser walks a document: a heading of level N closes the
    open headings of level N and deeper, then opens itself."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> tuple[str, ...]:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, title))
        return self.path

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._open if title)


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
