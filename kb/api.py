"""`KnowledgeBase`: the library API. Everything the CLI does goes through here."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cached_property
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from kb import __version__
from kb.config import Settings, resolve_kb_dir
from kb.errors import ConfigError, EmbedderMismatchError, KBError, LockedError
from kb.index.catalog import Catalog
from kb.index.embedder import SentenceTransformerEmbedder, canonical_model_id, tokenizer_file
from kb.index.store import VectorStore, open_store
from kb.ingest.base import is_supported
from kb.ingest.walk import Candidate, walk
from kb.ingest.worker import ChunkSpec, Prepared, prepare
from kb.query.filters import Filters
from kb.types import FileOutcome, Hit, IngestReport, Status

CATALOG_FILE = "catalog.sqlite"
LOCK_FILE = "ingest.lock"
SAVE_EVERY_S = 60.0  # vectors are saved at least this often during a long ingest

Progress = Callable[[int, int, str], None]  # (files done, files to do, current source)


class KnowledgeBase:
    """A knowledge base in one folder: a SQLite catalog plus a vector store.

    >>> kb = KnowledgeBase.open("./.kb")          # doctest: +SKIP
    >>> kb.ingest(["docs"]).added                 # doctest: +SKIP
    >>> kb.search("net sales in Q3", k=3)         # doctest: +SKIP
    """

    def __init__(self, path: Path, settings: Settings):
        self.path = path
        self.settings = settings
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> KnowledgeBase:
        kb_dir = resolve_kb_dir(path)
        return cls(kb_dir, Settings.load(kb_dir, overrides))

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
            del self.__dict__["store"]
        if "catalog" in self.__dict__:
            self.catalog.close()
            del self.__dict__["catalog"]
        self._unlock()

    # --- parts, opened on first use ------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.path / CATALOG_FILE).is_file()

    @cached_property
    def catalog(self) -> Catalog:
        self.path.mkdir(parents=True, exist_ok=True)
        return Catalog(self.path / CATALOG_FILE)

    @cached_property
    def model_id(self) -> str:
        """The index's own model when it has one; asking for another one is an error."""
        built_with = self.catalog.meta().get("model") if self.exists else None
        wanted = canonical_model_id(self.settings.model)
        if built_with and built_with != wanted:
            if "model" in self.settings.explicit:
                raise EmbedderMismatchError(
                    f"{self.path} was built with the embedding model {built_with!r}, not {wanted!r}: "
                    "use that model, or another --kb for the new one"
                )
            return built_with
        return wanted

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        model = self.model_id if self.model_id != canonical_model_id(self.settings.model) else self.settings.model
        return SentenceTransformerEmbedder(model, device=self.settings.device, batch_size=self.settings.batch_size)

    @cached_property
    def store(self) -> VectorStore:
        dims = self.catalog.meta().get("dimensions")
        return open_store(self.settings, self.path, int(dims) if dims else None)

    # --- ingest ----------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str], *, progress: Progress | None = None) -> IngestReport:
        """Add new files, re-index changed ones, drop files gone from the folders given."""
        started = time.perf_counter()
        report = IngestReport()
        self._lock()
        try:
            self.model_id  # fail on a model mismatch before any work
            candidates: list[Candidate] = []
            roots: list[str] = []
            for given in paths:
                if not os.path.exists(given):
                    raise ConfigError(f"{given}: no such file or folder")
                found, walked, ignored = walk(given)
                candidates.extend(found)
                roots.extend(walked)
                report.ignored += ignored
            seen: set[str] = set()
            todo: list[tuple[Candidate, str, os.stat_result]] = []
            for cand in candidates:
                key = str(cand.path)
                if key in seen:
                    continue
                seen.add(key)
                self._triage(cand, report, todo)
            for root in roots:
                for doc in self.catalog.documents_under(root):
                    if doc.path not in seen:
                        self.store.delete(_ids(self.catalog.delete_document(doc.path)))
                        report.removed.append(doc.source)
                self.catalog.clear_failures_under(root, keep=seen)
            self._repair()
            if todo:
                self._index(todo, report, progress)
            self.store.save()
        finally:
            self._unlock()
        report.seconds = time.perf_counter() - started
        return report

    def _triage(self, cand: Candidate, report: IngestReport, todo: list[tuple[Candidate, str, os.stat_result]]) -> None:
        key = str(cand.path)
        if not is_supported(cand.path):
            reason = f"unsupported file type {cand.path.suffix or '(no extension)'}"
            (report.failed if cand.explicit else report.skipped).append(FileOutcome(cand.source, reason))
            if cand.explicit:
                self.catalog.record_failure(key, cand.source, reason)
            return
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
            return
        except PermissionError:
            self._fail(cand, "permission denied", report)
            return
        except OSError as e:
            self._fail(cand, f"cannot read: {e.strerror or e}", report)
            return
        if existing and existing.sha256 == digest:
            if existing.mtime_ns != st.st_mtime_ns or existing.source != cand.source:
                self.catalog.touch(existing.id, source=cand.source, mtime_ns=st.st_mtime_ns)
            report.unchanged.append(cand.source)
            return
        todo.append((cand, digest, st))

    def _fail(self, cand: Candidate, reason: str, report: IngestReport) -> None:
        report.failed.append(FileOutcome(cand.source, reason))
        self.catalog.record_failure(str(cand.path), cand.source, reason)

    def _chunk_spec(self) -> ChunkSpec:
        return ChunkSpec(
            tokenizer_path=tokenizer_file(self.embedder, self.path),
            max_tokens=self.settings.chunk_tokens,
            overlap=self.settings.chunk_overlap,
            max_seq_length=self.embedder.max_seq_length,
        )

    def _index(self, todo: list[tuple[Candidate, str, os.stat_result]], report: IngestReport, progress: Progress | None) -> None:
        spec = self._chunk_spec()
        self._record_build()
        last_save = time.monotonic()
        for done, (item, prepared) in enumerate(self._prepare_all(todo, spec), start=1):
            cand, digest, st = item
            if progress:
                progress(done - 1, len(todo), cand.source)
            if prepared.error:
                self._fail(cand, prepared.error, report)
                continue
            vectors = self.embedder.embed_documents([c.embed_text for c in prepared.chunks])
            old, new = self.catalog.replace_document(
                path=str(cand.path), source=cand.source, file_type=prepared.file_type, sha256=digest,
                size=st.st_size, mtime_ns=st.st_mtime_ns, title=prepared.title, pages=prepared.pages,
                metadata=prepared.metadata, chunks=prepared.chunks,
            )
            self.store.delete(_ids(old))
            self.store.add(_ids(new), vectors, None)
            (report.updated if old else report.added).append(cand.source)
            report.pages += prepared.pages or 0
            report.chunks += len(new)
            if time.monotonic() - last_save > SAVE_EVERY_S:
                self.store.save()
                last_save = time.monotonic()
            if progress:
                progress(done, len(todo), cand.source)

    def _prepare_all(self, todo: list[Any], spec: ChunkSpec) -> Iterable[tuple[Any, Prepared]]:
        """Parse and chunk in worker processes, overlapped with embedding, in submission order."""
        workers = self.settings.workers or max(1, min(4, (os.cpu_count() or 2) - 1))
        if len(todo) == 1 or workers <= 1 and len(todo) < 4:
            for item in todo:
                yield item, prepare(str(item[0].path), spec)
            return
        pending = deque(todo)
        inflight: deque[tuple[Any, Future[Prepared]]] = deque()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        try:
            while pending or inflight:
                while pending and len(inflight) < workers * 2:
                    item = pending.popleft()
                    inflight.append((item, pool.submit(prepare, str(item[0].path), spec)))
                item, future = inflight.popleft()
                try:
                    yield item, future.result()
                except BrokenProcessPool:
                    # The parser crashed the worker (a segfault in a C extension): that file fails,
                    # the others are parsed again in a fresh pool.
                    yield item, Prepared(str(item[0].path), error="parser crashed on this file")
                    pending.extendleft(reversed([i for i, _ in inflight]))
                    inflight.clear()
                    pool.shutdown(cancel_futures=True)
                    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        finally:
            pool.shutdown(cancel_futures=True)

    def _record_build(self) -> None:
        meta = self.catalog.meta()
        build = {
            "model": self.model_id,
            "dimensions": str(self.embedder.dimensions),
            "max_seq_length": str(self.embedder.max_seq_length),
            "chunk_tokens": str(self.settings.chunk_tokens),
            "chunk_overlap": str(self.settings.chunk_overlap),
            "store": self.store.name,
            "kb_version": __version__,
        }
        if any(meta.get(k) != v for k, v in build.items()):
            self.catalog.set_meta(**build)

    def _repair(self) -> None:
        """Make the vector store agree with the catalog after an interrupted ingest."""
        if not self.exists:
            return
        in_catalog = set(self.catalog.chunk_ids())
        in_store = set(self.store.ids().tolist())
        extra = in_store - in_catalog
        if extra:
            self.store.delete(_ids(extra))
        missing = sorted(in_catalog - in_store)
        if missing:
            chunker = ChunkerForRepair(self)
            rows = self.catalog.chunks(missing)
            texts = [chunker.embed_text(rows[i]) for i in missing]
            self.store.add(_ids(missing), self.embedder.embed_documents(texts), None)
        if extra or missing:
            self.store.save()

    # --- queries -----------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, filters: Filters | None = None) -> list[Hit]:
        """The `k` passages that best match `query`, among those passing `filters`."""
        from kb.query.search import dense_search

        if not query.strip():
            raise ConfigError("the query is empty")
        if not self.exists or self.catalog.totals()[1] == 0:
            raise KBError(f"the knowledge base at {self.path} is empty: run `kb ingest PATH` first")
        return dense_search(self.catalog, self.store, self.embedder, query, k, filters)

    def status(self) -> Status:
        if not self.exists:
            return Status(0, 0, 0, canonical_model_id(self.settings.model), self.settings.store, 0, [], str(self.path))
        docs, chunks, pages = self.catalog.totals()
        meta = self.catalog.meta()
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return Status(
            documents=docs, chunks=chunks, pages=pages, model=meta.get("model") or self.model_id,
            store=meta.get("store") or self.settings.store, bytes=size, failed=self.catalog.failures(),
            path=str(self.path), dimensions=int(meta["dimensions"]) if meta.get("dimensions") else None,
        )

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Forget files (or every file under folders); the files themselves are not touched."""
        if not self.exists:
            return []
        removed: list[str] = []
        self._lock()
        try:
            for given in paths:
                target = str(Path(given).expanduser().resolve())
                docs = [d for d in [self.catalog.document(target)] if d] or self.catalog.documents_under(target)
                for doc in docs:
                    self.store.delete(_ids(self.catalog.delete_document(doc.path)))
                    removed.append(doc.source)
            self.store.save()
        finally:
            self._unlock()
        return removed

    # --- the write lock ------------------------------------------------------------------------
    def _lock(self) -> None:
        if self._lock_fd is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockedError(f"another kb process (pid {holder}) is writing to {self.path}; try again when it ends") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


class ChunkerForRepair:
    """Rebuilds a stored chunk's embedded text (title and heading prefix + text)."""

    def __init__(self, kb: KnowledgeBase):
        from kb.ingest.worker import _chunker

        self.chunker = _chunker(kb._chunk_spec())

    def embed_text(self, row: dict[str, Any]) -> str:
        prefix, _ = self.chunker.prefix(row["title"], tuple(row["headings"]))
        return f"{prefix}\n{row['text']}" if prefix else row["text"]


class _Refused(Exception):
    pass


def _ids(values: Iterable[int]) -> Any:
    import numpy as np

    return np.fromiter(values, dtype=np.int64)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
