"""Plain data passed between the stages: parsed blocks, chunks, search hits, reports."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TypeAlias

# A JSON object as the CLI prints it and the server answers it; its values are whatever `json` writes.
JSON: TypeAlias = dict[str, object]


@dataclass(frozen=True)
class Block:
    """A run of text a parser found: a paragraph, a table, a code block or a heading line.

    `headings` is the heading path in force for this block (a heading block carries its own path).
    """

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None
    kind: str = "text"  # text | heading | table | code


@dataclass
class ParsedDocument:
    """A parsed file. `unit` is what a block's `page` numbers (see `UNITS`): the unit a reader would
    name to find the passage, "page" of a PDF, "slide" of a deck, "row" of a sheet, "message" of a
    mailbox, "line" of source code; `pages` counts them."""

    title: str
    blocks: list[Block]
    pages: int | None = None
    metadata: JSON = field(default_factory=dict)
    unit: str = "page"
    parts: list[Part] = field(default_factory=list)  # files inside this one, indexed as documents of their own


@dataclass(frozen=True)
class Part:
    """A file held inside another (a mail's attachment, a mailbox's message): indexed as a document of
    its own, parsed by the parser of `filename`'s type, cited as 'mail.eml > report.pdf p.2'."""

    name: str  # as shown after the container's name: "report.pdf", "message 12"
    filename: str  # a file name unique within the container, whose extension picks the parser
    data: bytes


# Citation units: name -> (label of one, label of a range, whether a new one starts a new chunk).
# Pages, slides and messages are units a reader turns to, so a chunk stays within one where that costs
# little; rows and lines are packed into chunks as many as fit.
UNITS: dict[str, tuple[str, str, bool]] = {
    "page": ("p.", "p.", True),
    "slide": ("slide ", "slides ", True),
    "message": ("message ", "messages ", True),
    "row": ("row ", "rows ", False),
    "line": ("L", "L", False),  # source code, config and logs: 'app.py L12-40', as editors and forges name lines
}


def locator(unit: str, first: int | None, last: int | None = None) -> str | None:
    """'p.12', 'p.3-4', 'slide 7', 'rows 2-40': where in its file a passage is, as a reader names it."""
    if first is None:
        return None
    one, many, _ = UNITS.get(unit, UNITS["page"])
    if last is None or last == first:
        return f"{one}{first}"
    return f"{many}{first}-{last}"


@dataclass
class Chunk:
    """A piece of a document, sized for the embedding model.

    `text` is exactly `document_text[char_start:char_end]`, where the document text is the
    parser's blocks joined by blank lines. `embed_text` adds the title and heading path.
    """

    ord: int
    text: str
    embed_text: str
    headings: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    char_start: int
    char_end: int
    tokens: int

    @property
    def section(self) -> str | None:
        return " > ".join(self.headings) or None


@dataclass(frozen=True)
class Snippet:
    """The part of a hit's text that shows why it matched, on one line ("…" where it was cut), and
    the spans of the query's terms in it: [start, end) offsets in characters (code points)."""

    text: str
    highlights: tuple[tuple[int, int], ...] = ()

    def segments(self) -> Iterable[tuple[str, bool]]:
        """The text in order as (piece, is a match) pairs, for whatever marks matches (bold, <mark>)."""
        at = 0
        for start, end in self.highlights:
            if start > at:
                yield self.text[at:start], False
            yield self.text[start:end], True
            at = end
        if at < len(self.text):
            yield self.text[at:], False


@dataclass
class Hit:
    """One search result, in the shape of the `kb search --json` contract.

    Beyond the contract's keys, its JSON has `also` (other files with the very same passage), and
    once `kb.query.snippet` has looked at it: `highlights` (spans of the query's terms in `text`),
    `snippet` and `snippet_highlights` (see `Snippet`).
    """

    rank: int
    score: float
    chunk_id: int
    source: str
    page: int | None
    page_end: int | None
    section: str | None
    text: str
    file_type: str = ""
    doc_id: int = 0
    char_start: int = 0
    char_end: int = 0
    also: list[str] = field(default_factory=list)  # other files holding the very same passage
    highlights: list[tuple[int, int]] = field(default_factory=list)  # the query's terms in `text`
    snippet: Snippet | None = None
    unit: str = "page"  # what `page` numbers: page, slide, row, message, line (see `UNITS`)

    def to_json(self) -> JSON:
        d = asdict(self)
        out = {k: d[k] for k in ("rank", "score", "chunk_id", "source", "page", "page_end", "unit", "section", "text")}
        if self.also:
            out["also"] = list(self.also)
        if self.snippet is not None:
            out["highlights"] = [list(span) for span in self.highlights]
            out["snippet"] = self.snippet.text
            out["snippet_highlights"] = [list(span) for span in self.snippet.highlights]
        return out

    @property
    def citation(self) -> str:
        """`file p.12 § Section > Subsection` (or `slide 3`, `rows 2-40`...), the way a reader finds
        the passage."""
        return citation(shown(self.source), self.unit, self.page, self.page_end, self.section)


def citation(source: str, unit: str, page: int | None, page_end: int | None, section: str | None) -> str:
    parts = [source, locator(unit, page, page_end), f"§ {section}" if section else None]
    return " ".join(p for p in parts if p)


def shown(source: str, base: str | None = None) -> str:
    """A source as a reader wants it: relative to `base` (default: the current folder) when that is
    shorter, else absolute. Sources are stored absolute so they stay right from any folder."""
    try:
        rel = os.path.relpath(source, base or os.getcwd())
    except (ValueError, OSError):  # another drive (Windows), or no current folder
        return source
    return rel if len(rel) < len(source) else source


def plural(n: int, one: str, many: str | None = None) -> str:
    """'1 chunk', '2 chunks', '0 chunks', '1,200 chunks' ('1 file or folder', '3 files or folders' with `many`)."""
    return f"{n:,} {one}" if n == 1 else f"{n:,} {many or one + 's'}"


def search_json(query: str, hits: Iterable[Hit]) -> JSON:
    """The `kb search --json` object, also what `kb serve` answers to POST /search."""
    return {"query": query, "hits": [h.to_json() for h in hits]}


@dataclass
class FileOutcome:
    source: str
    reason: str


@dataclass
class Moved:
    """A file renamed or moved with its content unchanged: its chunks and vectors went with it."""

    source: str
    to: str


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)  # each counts in none of the lists above
    reparsed: list[str] = field(default_factory=list)  # unchanged files a newer reader re-read (--reparse); nor these
    skipped: list[FileOutcome] = field(default_factory=list)
    failed: list[FileOutcome] = field(default_factory=list)
    ignored: int = 0  # hidden and temporary files, never reported one by one
    excluded: int = 0  # files and folders left out by --include/--exclude or a .kbignore
    types: dict[str, int] = field(default_factory=dict)  # files added or updated, per file type
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    # When the knowledge base's text is now mostly in languages its model was not trained for (`Status`)
    language_warning: str | None = None

    def to_json(self) -> JSON:
        d = asdict(self)
        d["pages_per_s"] = round(self.pages / self.seconds, 2) if self.seconds else None
        d["chunks_per_s"] = round(self.chunks / self.seconds, 2) if self.seconds else None
        return d


@dataclass
class DocumentInfo:
    """One document as `kb documents` lists it."""

    source: str
    file_type: str
    title: str
    pages: int | None
    chunks: int
    bytes: int
    ingested_at: float  # seconds since the epoch
    id: int = 0  # the catalog's document id (GET /documents/{id}, kb://document/{id})
    unit: str = "page"  # what `pages` counts: pages, slides, rows, messages, lines (see `UNITS`)
    date: str | None = None  # the document's own date, as its metadata holds it (see kb.ingest.facets)
    path: str = ""  # absolute, resolved: the file's identity (not listed: `source` is what users see)

    def to_json(self) -> JSON:
        d = asdict(self)
        del d["path"]
        d["ingested_at"] = datetime.fromtimestamp(self.ingested_at, timezone.utc).isoformat(timespec="seconds")
        return d


@dataclass
class Stale:
    """What a newer kb does better than the one that built (part of) a knowledge base: files a newer
    reader reads better (`kb ingest --reparse` re-reads them) and vectors of an older format (`kb
    reindex` re-embeds them)."""

    documents: int = 0  # documents read by an older reader than today's for their file type
    types: dict[str, int] = field(default_factory=dict)  # ...per file type, most first
    vectors: str | None = None  # why the vectors are of an older format than the ones made here; None: they are not

    def __bool__(self) -> bool:
        return bool(self.documents or self.vectors)


@dataclass
class Status:
    documents: int
    chunks: int
    pages: int
    model: str | None
    store: str
    bytes: int
    failed: list[FileOutcome]
    path: str
    dimensions: int | None = None
    folder: str | None = None  # the deepest folder holding every document: pages show sources from it
    types: dict[str, int] = field(default_factory=dict)  # documents per file type
    vectors: str | None = None  # the backend that made the index's vectors ("onnx-int8+w8")
    backend: str | None = None  # the backend embedding here, for this index's format (`kb.embed.pick_backend`)
    stale: Stale = field(default_factory=Stale)  # what a newer reader or embedding format would do better
    # {"query": ..., "passage": ...}: the prompts the index's vectors were made with (`kb.embed.prompts`); None: none
    prompts: dict[str, str] | None = None
    # Share of the text (of all chunks) per language detected at ingest, most first; documents ingested
    # before kb detected languages are in no language (kb.ingest.language)
    languages: dict[str, float] = field(default_factory=dict)
    language_warning: str | None = None  # the text is mostly in languages the model was not trained for

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class CheckReport:
    """What `kb doctor` found: catalog soundness and whether vectors match the catalog's chunks."""

    path: str
    ok: bool
    integrity: str
    documents: int = 0
    chunks: int = 0
    vectors: int = 0
    orphan_vectors: int = 0  # vectors whose chunk is gone (e.g. a crash after a catalog commit)
    missing_vectors: int = 0  # chunks with no vector yet
    repaired: bool = False
    stale: Stale = field(default_factory=Stale)  # not a problem (`ok` holds): what an upgrade would do better

    def to_json(self) -> JSON:
        return asdict(self)
