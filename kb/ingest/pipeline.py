"""The ingest pipeline: walk -> triage (new, changed, unchanged, refused) -> parse pool -> embed -> commit.

Parsing and chunking run in worker processes (`kb.ingest.worker`), overlapped with embedding in
this one and read back in submission order; small documents are embedded together in full,
length-sorted batches; each document is committed whole, after its vectors exist, through the
`Index` (which knows whether the catalog or a team store is the truth). `reembed` rebuilds vectors
from the catalog's stored text alone, for repair and `kb reindex`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cached_property
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from kb.embed.base import tokenizer_file
from kb.errors import ConfigError, DiskFullError, KBError, disk_full
from kb.failpoints import failpoint
from kb.index.base import DocumentRecord, Index
from kb.index.catalog import Catalog, DocumentRow
from kb.ingest import language
from kb.ingest.base import is_supported, range_parser, read_better
from kb.ingest.walk import Candidate, Rules, walk
from kb.ingest.worker import (
    ChunkSpec,
    Prepared,
    chunker_for,
    ignore_interrupts,
    prepare,
    read_range,
    workers_ignore_interrupts,
)
from kb.types import Chunk, FileOutcome, IngestReport, Moved, shown
from kb.version import __version__

if TYPE_CHECKING:
    import numpy as np

    from kb.config import Settings
    from kb.embed.base import Embedder



@dataclass
class Ingesting:
    """What an ingest's progress callback sees, each time something moves."""

    step: str  # "scanning" the paths given, loading the embedding "model" (the first time: exported), "files"
    done: int = 0  # files done (parsed, embedded and committed, or failed)
    total: int = 0  # files to do (new or changed); 0 while scanning
    source: str = ""  # the file being worked on
    pages: int = 0  # pages and chunks committed so far
    chunks: int = 0


Progress = Callable[[Ingesting], None]
Counting = Callable[[int, int, str], None]  # re-embedding: (chunks done, chunks, "")
SAVE_EVERY_S = 60.0  # vectors are saved at least this often during a long ingest
REEMBED_BATCH = 1024  # chunks re-embedded at a time by repair and reindex


@dataclass
class _Todo:
    cand: Candidate
    sha256: str
    stat: os.stat_result
    reparse: bool = False  # unchanged, re-read because a newer reader reads it better


class Embedding:
    """An index's embedder and what parser workers need to chunk for it, made on first use: an ingest
    with nothing new, or a check with nothing to repair, loads no model."""

    def __init__(self, make: Callable[[], Embedder], settings: Settings, folder: Path):
        self._make, self.settings, self.folder = make, settings, folder

    @cached_property
    def embedder(self) -> Embedder:
        return self._make()

    @cached_property
    def spec(self) -> ChunkSpec:
        """The tokenizer (saved into the knowledge base folder if the model has no file of its own)."""
        e = self.embedder
        # A passage prompt takes its tokens from the model's window: chunks leave room for it.
        prompt = len(e.tokenizer().encode(e.prompts.passage, add_special_tokens=False).ids) if e.prompts.passage else 0
        return ChunkSpec(tokenizer_file(e, self.folder), self.settings.chunk_tokens, self.settings.chunk_overlap,
                         e.max_seq_length - prompt, ocr=self.settings.ocr, ocr_lang=self.settings.ocr_lang,
                         code_extensions=self.settings.code_extensions)

    def build(self) -> dict[str, str]:
        """How an index is built, as recorded in its metadata."""
        e = self.embedder
        return {
            "model": e.model_id, "dimensions": str(e.dimensions), "max_seq_length": str(e.max_seq_length),
            "backend": e.backend, "chunk_tokens": str(self.settings.chunk_tokens),
            "chunk_overlap": str(self.settings.chunk_overlap), "store": self.settings.store, "kb_version": __version__,
            **({"graph": e.graph} if e.graph else {}), **e.prompts.to_meta(),
        }


class Pipeline:
    """One ingest run into `index`; the caller holds the write lock."""

    def __init__(self, index: Index, embedding: Embedding):
        self.index = index
        self.catalog = index.catalog
        self.embedding = embedding
        self.settings = embedding.settings
        self.reparse = False

    def run(self, paths: Iterable[str], *, model: str, progress: Progress | None = None,
            rules: Rules | None = None, changed: Collection[str] | None = None, reparse: bool = False) -> IngestReport:
        """Add new files, re-index changed ones, move renamed ones (same content, so no re-embedding),
        drop files gone from the folders given (or left out of them by `rules`). `model`: the id to
        record (the index's own, which the embedder's may only spell differently). `changed`: the
        absolute paths under the folders given that changed (see `walk`): only they are looked at, and
        a folder given that is gone only loses the documents under them. `reparse`: also re-read the
        unchanged files that a newer reader reads better (`read_better`); with no `paths`, every such
        file in the knowledge base."""
        report = IngestReport()
        self.reparse = reparse
        tell = progress or (lambda _: None)
        tell(Ingesting("scanning"))
        paths = list(paths)
        if reparse and not paths:
            paths, vanished = self.stale_files()
            report.skipped += [FileOutcome(source, "read by an older reader, but no longer there (`kb remove` "
                                                   "forgets it)") for source in vanished]
        candidates: list[Candidate] = []
        roots: list[str] = []
        for given in paths:
            if not os.path.exists(given):
                if changed is None:
                    raise ConfigError(f"{given}: no such file or folder")
                roots.append(str(Path(given).expanduser().resolve()))
                continue
            walked = walk(given, rules or Rules(), changed)
            candidates.extend(walked.found)
            roots.extend(walked.roots)
            report.ignored += walked.ignored
            report.excluded += walked.excluded
        seen: set[str] = set()
        todo: list[_Todo] = []
        for cand in candidates:
            key = str(cand.path)
            if key not in seen and self._triage(cand, report, todo):
                seen.add(key)
        gone: dict[str, DocumentRow] = {}
        for root in roots:
            for doc in self._looked_at(root, changed):
                if doc.path not in seen and _container(doc.path, seen) is None:
                    gone[doc.path] = doc
            self._clear_failures(root, changed, seen)
        todo = self._move(todo, gone, report)
        for doc in gone.values():
            self.index.forget(doc.path)
            report.removed.append(doc.source)
        self.index.repair(reembed(self.catalog, self.embedding))
        if todo:
            language.preload()
            tell(Ingesting("model", total=len(todo)))
            self.index.record_build({**self.embedding.build(), "model": model})
            try:
                self._index(todo, report, tell)
            except DiskFullError:  # the documents committed before stay; so do their vectors, if they fit
                try:
                    self.index.save()
                except KBError:
                    self.index.swap_store(None)  # left unsaved: the next run re-embeds them from the catalog
                raise
        self.index.save()
        return report

    def _looked_at(self, root: str, changed: Collection[str] | None) -> list[DocumentRow]:
        """The documents under `root` this run judges: all of them, or those at or under a changed path."""
        if changed is None:
            return self.catalog.documents_under(root)
        base = root.rstrip("/") + "/"
        docs: dict[str, DocumentRow] = {}
        for path in changed:
            if path.rstrip("/") == root.rstrip("/") or path.startswith(base):
                for doc in [self.catalog.document(path), *self.catalog.documents_under(path)]:
                    if doc is not None:
                        docs[doc.path] = doc
        return list(docs.values())

    def _clear_failures(self, root: str, changed: Collection[str] | None, seen: set[str]) -> None:
        """Forget the failures of files no longer there (or left out), among those this run judges."""
        if changed is None:
            self.catalog.clear_failures_under(root, keep=seen)
            return
        base = root.rstrip("/") + "/"
        for path in changed:
            if path in seen or not (path.rstrip("/") == root.rstrip("/") or path.startswith(base)):
                continue
            if os.path.isdir(path):
                self.catalog.clear_failures_under(path, keep=seen)
            else:
                self.catalog.forget_failures(path)

    def _move(self, todo: list[_Todo], gone: dict[str, DocumentRow], report: IngestReport) -> list[_Todo]:
        """A new file with the content of a document whose file is gone is that file renamed: the
        document takes the new path with its chunks and vectors (same text, nothing re-embedded; the
        title follows the name when it was the name). Returns what is still to index."""
        by_content: dict[tuple[str, str], list[DocumentRow]] = {}
        # A file holding parts (a mail's attachments, an archive's files) is read again under its new name:
        # a move would keep its parts at the old one.
        containers = {c for path in gone if (c := _container(path, gone)) is not None}
        for doc in gone.values():
            # Not one only left out now, nor a part of a file (an attachment goes with its mail).
            if not os.path.lexists(doc.path) and _container(doc.path, gone) is None and doc.path not in containers:
                by_content.setdefault((doc.sha256, Path(doc.path).suffix.lower()), []).append(doc)
        rest: list[_Todo] = []
        for item in todo:
            was = by_content.get((item.sha256, item.cand.path.suffix.lower()))
            if was and not item.reparse:  # a file re-read is no renamed one: its document is there
                doc = was[-1]
                title = item.cand.path.stem if doc.title == Path(doc.path).stem else doc.title
                if self.index.move(doc.path, str(item.cand.path), source=item.cand.source,
                                   mtime_ns=item.stat.st_mtime_ns, title=title):
                    was.pop()
                    del gone[doc.path]
                    report.moved.append(Moved(doc.source, item.cand.source))
                    continue
            rest.append(item)
        return rest

    def _triage(self, cand: Candidate, report: IngestReport, todo: list[_Todo]) -> bool:
        """Sort one file found into `report` or `todo`; False when it vanished since the walk (then,
        like a file never found, a document of it is dropped, and no failure is recorded)."""
        key = str(cand.path)
        if not is_supported(cand.path):
            reason = f"unsupported file type {cand.path.suffix or '(no extension)'}"
            (report.failed if cand.explicit else report.skipped).append(FileOutcome(cand.source, reason))
            if cand.explicit:
                self.catalog.record_failure(key, cand.source, reason)
            return True
        try:
            st = os.stat(cand.path)
            cap = self.settings.max_file_mb * 1024 * 1024
            if st.st_size > cap:
                raise _Refused(f"larger than the {self.settings.max_file_mb:g} MB cap (max_file_mb)")
            if st.st_size == 0:
                raise _Refused("empty file (0 bytes)")
            existing = self.catalog.document(key)
            if existing and existing.size == st.st_size and existing.mtime_ns == st.st_mtime_ns:
                digest = existing.sha256
            else:
                digest = _sha256(cand.path)
        except _Refused as e:
            self._fail(cand, str(e), report)
            return True
        except FileNotFoundError:
            if not cand.explicit:
                return False  # deleted since the walk: as if never found
            self._fail(cand, "no such file", report)
            return True
        except PermissionError:
            self._fail(cand, "permission denied", report)
            return True
        except OSError as e:
            self._fail(cand, f"cannot read: {e.strerror or e}", report)
            return True
        if existing and existing.sha256 == digest:
            if existing.mtime_ns != st.st_mtime_ns or existing.source != cand.source:
                self.catalog.touch(existing.id, source=cand.source, mtime_ns=st.st_mtime_ns)
            if self.reparse and any(read_better(d.reader, d.reader_version, d.path)
                                    for d in [existing, *self.catalog.documents_under(key)]):
                todo.append(_Todo(cand, digest, st, reparse=True))
                return True
            report.unchanged.append(cand.source)
            return True
        todo.append(_Todo(cand, digest, st))
        return True

    def stale_files(self) -> tuple[list[str], list[str]]:
        """The files of documents a newer reader reads better (a part's: the file holding it), as the
        sources of those still there and of those gone."""
        docs = {d.path: d for d in self.catalog.documents()}
        files: dict[str, str] = {}
        for doc in docs.values():
            if read_better(doc.reader, doc.reader_version, doc.path):
                top = doc.path
                while (container := _container(top, docs)) is not None:
                    top = container
                files[top] = docs[top].source
        sources = sorted(files.values())
        return [s for s in sources if os.path.isfile(s)], [s for s in sources if not os.path.isfile(s)]

    def _fail(self, cand: Candidate, reason: str, report: IngestReport) -> None:
        report.failed.append(FileOutcome(cand.source, reason))
        self.catalog.record_failure(str(cand.path), cand.source, reason)

    def _index(self, todo: list[_Todo], report: IngestReport, tell: Progress) -> None:
        last_save = time.monotonic()
        # Small documents are embedded together: full, length-sorted batches waste less padding.
        # Each document is still committed whole, after its vectors exist.
        embedder = self.embedding.embedder
        group_chunks = max(64, 4 * int(embedder.batch_size or 32))
        group: list[tuple[int, _Todo, Prepared]] = []

        def flush() -> None:
            nonlocal last_save
            if not group:
                return
            vectors = embedder.embed_documents([c.embed_text for _, _, p in group for c in _all_chunks(p)])
            failpoint("ingest.after_embed")
            offset = 0
            for done, item, prepared in group:
                for each in _flat(prepared):  # here, not in the workers: one process unpacks the detector
                    if found := language.detect(each.chunks):
                        each.metadata.setdefault("language", found)  # an author's own (front matter) stays
                st = item.stat
                doc = DocumentRecord(
                    path=str(item.cand.path), source=item.cand.source, file_type=prepared.file_type,
                    sha256=item.sha256, size=st.st_size, mtime_ns=st.st_mtime_ns, title=prepared.title,
                    pages=prepared.pages, metadata=prepared.metadata, reader=prepared.reader,
                    reader_version=prepared.reader_version,
                )
                # A file with the files inside it (an archive's, a mail's attachments) fits whole or is
                # not written at all: the next run reads it again.
                self._room(doc.source, _all_chunks(prepared), vectors.shape[1])
                records = list(_with_parts(doc, prepared))
                docs = []
                for record, got in records:
                    docs.append((record, got.chunks, vectors[offset : offset + len(got.chunks)]))
                    offset += len(got.chunks)
                done_ids = self.index.commit_file(docs, self._stale_parts(doc, records))
                old = bool(done_ids[0][0])
                for (_, got), (_, new) in zip(records, done_ids, strict=True):
                    if "unit" not in got.metadata:  # pages are pages, not a deck's slides or a sheet's rows
                        report.pages += got.pages or 0
                    report.chunks += len(new)
                    report.types[got.file_type] = report.types.get(got.file_type, 0) + 1
                (report.reparsed if item.reparse else report.updated if old else report.added).append(item.cand.source)
                tell(Ingesting("files", done, len(todo), item.cand.source, report.pages, report.chunks))
            group.clear()
            if time.monotonic() - last_save > SAVE_EVERY_S:
                self.index.save()
                last_save = time.monotonic()

        for done, (item, prepared) in enumerate(self._prepare_all(todo), start=1):
            failpoint("ingest.after_parse")
            tell(Ingesting("files", done - 1, len(todo), item.cand.source, report.pages, report.chunks))
            if prepared.error:
                self._fail(item.cand, prepared.error, report)
                tell(Ingesting("files", done, len(todo), item.cand.source, report.pages, report.chunks))
                continue
            group.append((done, item, prepared))
            if sum(len(_all_chunks(p)) for _, _, p in group) >= group_chunks:
                flush()
        flush()

    def _room(self, source: str, chunks: list[Chunk], dimensions: int) -> None:
        """Refuse a document the knowledge base's disk has no room for (with the vectors' next save),
        before any of it is written: the knowledge base stays as it was before it."""
        need = self.index.room_needed(chunks, dimensions)
        try:
            free = shutil.disk_usage(self.index.folder).free
        except OSError:
            return
        if free < need:
            raise disk_full(self.index.folder, f"add {shown(source)}", need)

    def _stale_parts(self, doc: DocumentRecord, records: list[tuple[DocumentRecord, Prepared]]) -> list[str]:
        """Parts of an earlier version of this file that the new one no longer holds."""
        kept = {record.path for record, _ in records}
        return [row.path for row in self.catalog.documents_under(doc.path) if row.path not in kept]

    def _prepare_all(self, todo: list[_Todo]) -> Iterator[tuple[_Todo, Prepared]]:
        """Parse and chunk in worker processes, overlapped with embedding, in submission order. A PDF of
        more than `SPLIT_PAGES` pages is read by page ranges across the workers (a long scan's OCR
        would otherwise hold one core while the others wait), then joined and chunked here."""
        # One per core (up to 4). With PDFium, parsing sec-10q costs ~4 CPU-s against ~75 of embedding:
        # the workers mostly wait on the embedder (bounded: about two tasks each in flight).
        workers = self.settings.workers or max(1, min(4, os.cpu_count() or 2))
        spec = self.embedding.spec
        split: dict[int, list[tuple[int, int]] | None] = {}  # per item, found when it is submitted

        def ranges_of(item: _Todo) -> list[tuple[int, int]] | None:
            if id(item) not in split:
                split[id(item)] = _ranges(item.cand.path) if workers > 1 else None
            return split[id(item)]

        # A lone file is parsed here, saving a pool's start, unless it is a PDF: PDFium is native code
        # reading untrusted input, and a crash in a worker costs that file, not this process (a server).
        alone = len(todo) == 1 and todo[0].cand.path.suffix.lower() != ".pdf"
        if workers <= 1 and len(todo) < 4 or alone:
            for item in todo:
                yield item, prepare(str(item.cand.path), spec)
            return
        pending = deque(todo)
        inflight: deque[tuple[_Todo, list[Future[object]]]] = deque()
        pool = _pool(workers)
        try:
            while pending or inflight:
                while pending and sum(len(f) for _, f in inflight) < workers * 2:
                    item = pending.popleft()
                    path = str(item.cand.path)
                    with workers_ignore_interrupts():  # a submit may start a worker process
                        ranges = ranges_of(item)
                        futures: list[Future[object]] = (
                            [pool.submit(read_range, path, spec, a, b) for a, b in ranges] if ranges
                            else [pool.submit(prepare, path, spec)])
                    inflight.append((item, futures))
                item, futures = inflight.popleft()
                try:
                    results = [f.result() for f in futures]
                except BrokenProcessPool:
                    # The parser crashed the worker (a segfault in a C extension): that file fails,
                    # the others are parsed again in a fresh pool.
                    yield item, Prepared(str(item.cand.path), error=_crashed())
                    pending.extendleft(reversed([i for i, _ in inflight]))
                    inflight.clear()
                    pool.shutdown(cancel_futures=True)
                    pool = _pool(workers)
                    continue
                if split.get(id(item)):
                    yield item, prepare(str(item.cand.path), spec, ranges=results)
                else:
                    whole = results[0]
                    assert isinstance(whole, Prepared)  # an unsplit file's one future is `prepare`'s
                    yield item, whole
        finally:
            pool.shutdown(cancel_futures=True)


def _with_parts(doc: DocumentRecord, prepared: Prepared) -> Iterator[tuple[DocumentRecord, Prepared]]:
    """A file's document, then those of the files inside it (depth first): a part's path is under its
    container's ('mail.eml/report.pdf', so whatever forgets the mail's path and what is under it
    forgets its attachments), its source reads 'mail.eml > report.pdf'."""
    yield doc, prepared
    for part in prepared.parts:
        record = DocumentRecord(
            path=f"{doc.path}/{part.path}", source=f"{doc.source} > {part.name}", file_type=part.file_type,
            sha256=part.sha256, size=part.size, mtime_ns=doc.mtime_ns, title=part.title, pages=part.pages,
            metadata={**part.metadata, "part_of": doc.path}, reader=part.reader, reader_version=part.reader_version,
        )
        yield from _with_parts(record, part)


def _all_chunks(prepared: Prepared) -> list[Chunk]:
    return [c for p in _flat(prepared) for c in p.chunks]


def _flat(prepared: Prepared) -> Iterator[Prepared]:
    yield prepared
    for part in prepared.parts:
        yield from _flat(part)


def _container(path: str, files: Collection[str]) -> str | None:
    """The file among `files` that `path` is a part of (an attachment's mail), if any."""
    at = path
    while True:
        at, sep, _ = at.rpartition("/")
        if not sep or not at:
            return None
        if at in files:
            return at


SPLIT_PAGES = 100  # a PDF longer than this is read by page ranges of this many pages across the workers
# Only files this large are opened here to count their pages (100 pages of text take ~0.5 MB, of scans
# far more): a damaged file is best opened first in a worker, where a crash costs that file alone.
SPLIT_MIN_BYTES = 1 << 20


def _ranges(path: Path) -> list[tuple[int, int]] | None:
    """The page ranges a file is read in, or None to read it whole (its parser reads no ranges, or the
    file is short)."""
    parser = range_parser(path)
    if parser is None:
        return None
    try:
        if path.stat().st_size < SPLIT_MIN_BYTES:
            return None
    except OSError:
        return None
    pages = parser.page_count(path)
    if pages <= SPLIT_PAGES:
        return None
    return [(a, min(a + SPLIT_PAGES - 1, pages)) for a in range(1, pages + 1, SPLIT_PAGES)]


def _crashed() -> str:
    """Why a parser worker died. A worker first imports the script that started it (spawn): a script
    that ingests at its top level, unguarded, kills every worker, and the reason must say so."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None) if getattr(main, "__spec__", None) is None else None
    if script and script.endswith(".py"):  # a script run by path (kb's own command has no .py)
        return ("the parser process died on this file; if a Python script of yours runs the ingest, put its "
                "top level under `if __name__ == \"__main__\":` (parsing runs in worker processes that import it)")
    return "parser crashed on this file"


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=ignore_interrupts,
                               initargs=(os.getpid(),))


def reembed(catalog: Catalog, embedding: Embedding,
            progress: Counting | None = None) -> Callable[[list[int]], Iterator[tuple[list[int], np.ndarray]]]:
    """Vectors for chunks already in the catalog, rebuilt from their stored text (no re-parsing):
    a function from chunk ids to (ids, vectors) batches. `progress` sees (chunks done, chunks, "")."""

    def run(ids: list[int]) -> Iterator[tuple[list[int], np.ndarray]]:
        if not ids:
            return
        chunker = chunker_for(embedding.spec)
        for start in range(0, len(ids), REEMBED_BATCH):
            batch = ids[start : start + REEMBED_BATCH]
            rows = catalog.chunks(batch)
            texts = []
            for i in batch:
                prefix, _ = chunker.prefix(rows[i]["title"], tuple(rows[i]["headings"]))
                texts.append(f"{prefix}\n{rows[i]['text']}" if prefix else rows[i]["text"])
            yield batch, embedding.embedder.embed_documents(texts)
            if progress:
                progress(min(start + REEMBED_BATCH, len(ids)), len(ids), "")

    return run


class _Refused(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
