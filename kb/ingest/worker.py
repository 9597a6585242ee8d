"""Parse and chunk one file; runs in worker processes, so it imports no torch."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TypeVar

from kb.errors import KBError, ParseError, disk_full, is_disk_full, one_line
from kb.ingest.aliases import document_aliases
from kb.ingest.base import (
    add_extensions,
    parser_for,
    parser_name,
    range_parser,
    reader_version,
    unpacking,
    unpacking_of,
)
from kb.ingest.chunker import Chunker
from kb.ingest.facets import document_facets
from kb.ingest.formats import ocr
from kb.types import JSON, Chunk, Part

log = logging.getLogger(__name__)


def ignore_interrupts(parent: int | None = None) -> None:
    """A worker's initializer: Ctrl-C reaches every process of the terminal's group, and only the
    parent acts on it (one clean line), not each worker with a traceback of its own. A worker also
    ends when its parent is gone (killed, so it could not shut the pool down): its queue's pipe never
    closes, as the workers hold its other end too, and it would wait on it forever. `parent`: the pool's
    process id, given by it (one killed before this runs has no child to ask)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # started with SIGINT blocked (workers_ignore_interrupts): ignored now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = parent or os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), name="kb-parent-watch", daemon=True).start()


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


@contextmanager
def workers_ignore_interrupts() -> Iterator[None]:
    """Processes started inside print nothing when interrupted while still starting (before
    `ignore_interrupts` runs): SIGINT is blocked here and they inherit the block. Blocked, not
    ignored: a Ctrl-C meant for this process waits until the block ends instead of being lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks, and Ctrl-C does not reach workers
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass(frozen=True)
class ChunkSpec:
    """What a worker needs to build the chunker: picklable, cheap to send."""

    tokenizer_path: str
    max_tokens: int
    overlap: int
    max_seq_length: int
    ocr: str = "auto"  # and the OCR settings its parsers read (kb.ingest.formats.ocr.configure)
    ocr_lang: str = "eng"
    code_extensions: str = ""  # and the extensions a user added (kb.ingest.base.add_extensions)


@dataclass
class Prepared:
    path: str
    file_type: str = ""
    title: str = ""
    pages: int | None = None
    metadata: JSON = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None
    # Files held inside this one (a mail's attachments): each `path` is its file name within this
    # file, `name` how a citation shows it after this file's name.
    parts: list[Prepared] = field(default_factory=list)
    name: str = ""
    sha256: str = ""  # a part's (a file's own is known before parsing)
    size: int = 0
    reader: str | None = None  # the parser that read it (its registry name) and that parser's version
    reader_version: int = 1


@lru_cache(maxsize=2)
def chunker_for(spec: ChunkSpec) -> Chunker:
    # lazy: every command imports the pipeline; tokenizers loads where chunks are cut
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(spec.tokenizer_path)
    tok.no_truncation()
    tok.no_padding()
    return Chunker(tok, max_tokens=spec.max_tokens, overlap=spec.overlap, max_seq_length=spec.max_seq_length)


MAX_PART_DEPTH = 3  # a mail attached to a mail attached to a mail (an archive in one...): deeper parts are left out
SKIPPED_NAMED = 5  # parts left out that a warning names one by one (all are in the metadata)


def prepare(path: str, spec: ChunkSpec, chunker: Chunker | None = None, depth: int = 0,
            ranges: list[object] | None = None) -> Prepared:
    """Parse and chunk `path`, and the files inside it; a failure comes back as `error`, a one-line reason.
    `ranges`: a large PDF's pages as workers read them (`read_range`), to be joined and chunked here."""

    def work() -> Prepared:
        p = Path(path)
        add_extensions(spec.code_extensions)
        parser = parser_for(p)
        ocr.configure(spec.ocr, spec.ocr_lang)
        if ranges is not None:
            failed = next((r for r in ranges if isinstance(r, str)), None)
            if failed is not None:
                return Prepared(path, error=failed)
            joiner = range_parser(p)
            assert joiner is not None  # the pipeline splits such files only
            doc = joiner.assemble(p, [r for r in ranges if not isinstance(r, str)])
        else:
            doc = parser.parse(p)
        _, chunks = (chunker or chunker_for(spec)).chunk(doc)
        if not chunks:
            return Prepared(path, error="no text to index")
        metadata = {**doc.metadata, **document_facets(doc, p.name), **document_aliases(doc)}
        if doc.unit != "page":
            metadata["unit"] = doc.unit
        out = Prepared(path, parser.file_type, doc.title, doc.pages, metadata, chunks)
        out.reader, out.reader_version = parser_name(p), reader_version(parser)  # the one parser_for chose
        if doc.parts:
            _prepare_parts(out, doc.parts, spec, chunker, depth)
        return out

    def top() -> Prepared:
        with unpacking_of(Path(path)):  # the bounds and contents the files inside it share, at every depth
            return work()

    return _guarded(path, top)


def read_range(path: str, spec: ChunkSpec, first: int, last: int) -> object:
    """Pages `first`..`last` of a large PDF, read (and OCR'd) by one worker; a failure comes back as
    its one-line reason (a str), which `prepare` then gives the whole file."""

    def work() -> object:
        ocr.configure(spec.ocr, spec.ocr_lang)
        parser = range_parser(Path(path))
        assert parser is not None  # the pipeline asks ranges of such files only
        return parser.read(Path(path), first, last)

    got = _guarded(path, work)
    return got.error or "" if isinstance(got, Prepared) else got


_T = TypeVar("_T")


def _guarded(path: str, work: Callable[[], _T]) -> _T | Prepared:
    """`work()`, or its failure as a one-line reason: a parser's error costs one file, never the ingest."""
    try:
        return work()
    except KBError as e:
        return Prepared(path, error=str(e))
    except PermissionError:
        return Prepared(path, error="permission denied")
    except OSError as e:
        return Prepared(path, error=f"cannot read: {e.strerror or e}")
    except RecursionError:
        return Prepared(path, error="document nesting too deep to parse")
    except Exception as e:  # a parser library bug
        if os.environ.get("KB_DEBUG"):
            log.exception("parser error on %s", path)
        return Prepared(path, error=f"parser error: {type(e).__name__}: {one_line(e)}")


DISK_NAME_BYTES = 100  # a part's file name on disk, at most: well under any file system's 255, with room for a folder


def _disk_name(filename: str) -> str | None:
    """The name a part is written under: the last piece of its name, which keeps its title and the parser
    its extension or name picks, without control characters, shortened to DISK_NAME_BYTES with its
    extensions kept ('A very long ti.tar.gz'); None for a name that is no file ('..')."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    base = "".join("_" if ord(c) < 32 or c == "\x7f" else c for c in base)
    if base in ("", ".", ".."):
        return None
    if len(base.encode()) <= DISK_NAME_BYTES:
        return base
    suffix = ""
    for ext in reversed(PurePosixPath(base).suffixes[-2:]):  # '.tar.gz' whole: it picks the reader
        if len(ext.encode()) > 16:  # a dot inside a long name, no extension
            break
        suffix = ext + suffix
    stem = base[: len(base) - len(suffix)].encode()[: DISK_NAME_BYTES - len(suffix.encode())]
    return stem.decode(errors="ignore") + suffix


def _prepare_parts(out: Prepared, parts: list[Part], spec: ChunkSpec, chunker: Chunker | None, depth: int) -> None:
    """Each part written to a file of its own name in a private folder, then prepared like a file found
    on disk. One that cannot be read, or whose bytes another part of the same file on disk had, is left
    out and named in the container's metadata."""
    earlier = out.metadata.get("parts_skipped")  # those its parser left out (an archive's encrypted files)
    skipped: dict[str, str] = dict(earlier) if isinstance(earlier, dict) else {}
    if depth >= MAX_PART_DEPTH:
        out.metadata["parts_skipped"] = {**skipped, **{p.name: "nested too deep" for p in parts}}
        return
    unpacked = unpacking()
    assert unpacked is not None  # `prepare` opened it
    with tempfile.TemporaryDirectory(prefix="kb-part-") as tmp:
        parts.reverse()  # taken from the end, so that each part's bytes are let go once written
        for n in range(len(parts)):
            part = parts.pop()
            name, filename, data = part.name, part.filename, part.data
            del part
            digest = hashlib.sha256(data).hexdigest()
            first = unpacked.seen.get(digest)
            if first is not None:  # read once: a second copy adds nothing to find, and nesting copies multiply
                skipped[name] = f"the same as {first}"
                continue
            unpacked.seen[digest] = " > ".join([*unpacked.inside, name])
            # A folder of its own per part, named by the last piece of its name only: the name (an archive
            # member's path) is never a path on disk, whatever it holds ('../x').
            base = _disk_name(filename)
            if base is None:
                skipped[name] = "unsafe name"
                continue
            folder = Path(tmp) / str(n)
            file = folder / base
            length = len(data)
            try:
                folder.mkdir()
                file.write_bytes(data)
            except OSError as e:
                if is_disk_full(e):  # the temporary folder's disk: the whole file fails, to be read again
                    unpacked.fatal = str(disk_full(tempfile.gettempdir(), f"unpack {name} from {unpacked.source}",
                                                   length, hint="free some space there (or point TMPDIR "
                                                   "at a disk with room) and run it again"))
                    raise ParseError(unpacked.fatal) from None
                skipped[name] = f"cannot write it to a temporary file: {e.strerror or e}"
                continue
            finally:
                del data
            try:
                parser_for(file)
            except KBError as e:
                skipped[name] = str(e)
                continue
            unpacked.inside.append(name)
            try:
                got = prepare(str(file), spec, chunker, depth + 1)
            finally:
                unpacked.inside.pop()
            if unpacked.fatal:  # refused deeper down (its archives expand too far): so is the file found on disk
                raise ParseError(unpacked.fatal)
            file.unlink()
            if got.error:
                skipped[name] = got.error
                continue
            got.path, got.name = filename, name
            got.sha256, got.size = digest, length
            out.parts.append(got)
    if skipped:
        out.metadata["parts_skipped"] = skipped
        named = [f"{k} ({v})" for k, v in skipped.items()]
        more = f"; and {len(named) - SKIPPED_NAMED} more" if len(named) > SKIPPED_NAMED else ""
        log.warning("kb: %s: left out %s%s", out.path, "; ".join(named[:SKIPPED_NAMED]), more)
