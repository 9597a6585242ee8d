"""`KnowledgeBase`: the library API. Everything the CLI does goes through here."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cached_property
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb import __version__
from kb.config import Settings, resolve_kb_dir
from kb.errors import ConfigError, EmbedderMismatchError, KBError, LockedError
from kb.index.catalog import Catalog
from kb.index.embedder import Embedder, canonical_model_id, make_embedder, tokenizer_file
from kb.index.store import DEFAULT_VECTORS, VectorStore, open_store
from kb.ingest.base import is_supported
from kb.ingest.walk import Candidate, walk
from kb.ingest.worker import ChunkSpec, Prepared, prepare
from kb.query.filters import Filters
from kb.types import CheckReport, FileOutcome, Hit, IngestReport, Status

if TYPE_CHECKING:
    from kb.query.answer import Answer
    from kb.query.rerank import Reranker
    from kb.query.search import Tuning

CATALOG_FILE = "catalog.sqlite"
LOCK_FILE = "ingest.lock"
SAVE_EVERY_S = 60.0  # vectors are saved at least this often during a long ingest
TEAM_SYNC_S = 10.0  # team mode: a long-lived KnowledgeBase pulls others' changes at most this often

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
        self._pulled_at = 0.0  # team mode: when the local mirror was last brought up to date

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
        if self._team:
            self.refresh(TEAM_SYNC_S)  # a team knowledge base lives in Milvus: mirror it before anything looks
        return (self.path / CATALOG_FILE).is_file()

    def refresh(self, max_age: float = 0.0) -> None:
        """Team mode: pull what other members changed into the local mirror (if older than `max_age` s)."""
        catalog = self.catalog  # the first open pulls
        if self._team and time.monotonic() - self._pulled_at > max_age:
            from kb.index.sync import pull

            pull(catalog, self.store)  # type: ignore[arg-type]
            self._pulled_at = time.monotonic()

    @property
    def _team(self) -> bool:
        """Whether Milvus holds the knowledge base and the local catalog mirrors it (kb.index.sync)."""
        return self.settings.store == "milvus"

    @cached_property
    def catalog(self) -> Catalog:
        self.path.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(self.path / CATALOG_FILE)
        if self._team:  # pull what other members changed before anything reads (or repairs) the catalog
            from kb.index.sync import pull

            self.__dict__["catalog"] = catalog  # opening the store reads the catalog's metadata
            try:
                pull(catalog, self.store)  # type: ignore[arg-type]
                self._pulled_at = time.monotonic()
            except BaseException:
                self.close()
                raise
        return catalog

    @cached_property
    def model_id(self) -> str:
        """The index's own model when it has one; asking for another one is an error."""
        built_with = self.catalog.meta().get("model") if self.exists else None
        wanted = canonical_model_id(self.settings.model)
        if built_with and built_with != wanted:
            if "model" in self.settings.explicit:
                raise EmbedderMismatchError(
                    f"{self.path} was built with the embedding model {built_with!r}, not {wanted!r}: "
                    "use that model, or re-embed with `kb reindex --model NEW`"
                )
            return built_with
        return wanted

    @cached_property
    def embedder(self) -> Embedder:
        model = self.model_id if self.model_id != canonical_model_id(self.settings.model) else self.settings.model
        return self._embedder_for(model)

    def _embedder_for(self, model: str) -> Embedder:
        # The backend (torch / onnx / onnx-int8) is recorded in the index but is not part of its identity:
        # one model's backends agree to >= 0.98 cosine and mixing them moved doc recall@5 on sec-10q by
        # < 1 point (benchmarks/PERFORMANCE.md), so `auto` takes the fastest one on every machine.
        return make_embedder(model, backend=self.settings.backend, device=self.settings.device,
                             batch_size=self.settings.batch_size)

    @cached_property
    def store(self) -> VectorStore:
        meta = self.catalog.meta()
        dims = meta.get("dimensions")
        return open_store(self.settings, self.path, int(dims) if dims else None, meta.get("vectors"))

    # --- ingest ----------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str], *, progress: Progress | None = None) -> IngestReport:
        """Add new files, re-index changed ones, drop files gone from the folders given."""
        started = time.perf_counter()
        report = IngestReport()
        self._lock()
        try:
            _ = self.model_id  # fail on a model mismatch before any work
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
                        self._forget(doc.path)
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
        # Small documents are embedded together: full, length-sorted batches waste less padding.
        # Each document is still committed whole, after its vectors exist.
        group_chunks = max(64, 4 * int(getattr(self.embedder, "batch_size", 32) or 32))
        group: list[tuple[int, tuple[Candidate, str, os.stat_result], Prepared]] = []

        def flush() -> None:
            nonlocal last_save
            if not group:
                return
            vectors = self.embedder.embed_documents([c.embed_text for _, _, p in group for c in p.chunks])
            offset = 0
            for done, (cand, digest, st), prepared in group:
                n = len(prepared.chunks)
                old, new = self._commit(
                    path=str(cand.path), source=cand.source, file_type=prepared.file_type, sha256=digest,
                    size=st.st_size, mtime_ns=st.st_mtime_ns, title=prepared.title, pages=prepared.pages,
                    metadata=prepared.metadata, chunks=prepared.chunks, vectors=vectors[offset : offset + n],
                )
                offset += n
                (report.updated if old else report.added).append(cand.source)
                report.pages += prepared.pages or 0
                report.chunks += len(new)
                if progress:
                    progress(done, len(todo), cand.source)
            group.clear()
            if time.monotonic() - last_save > SAVE_EVERY_S:
                self.store.save()
                last_save = time.monotonic()

        for done, (item, prepared) in enumerate(self._prepare_all(todo, spec), start=1):
            cand = item[0]
            if progress:
                progress(done - 1, len(todo), cand.source)
            if prepared.error:
                self._fail(cand, prepared.error, report)
                if progress:
                    progress(done, len(todo), cand.source)
                continue
            group.append((done, item, prepared))
            if sum(len(p.chunks) for _, _, p in group) >= group_chunks:
                flush()
        flush()

    def _prepare_all(self, todo: list[Any], spec: ChunkSpec) -> Iterable[tuple[Any, Prepared]]:
        """Parse and chunk in worker processes, overlapped with embedding, in submission order."""
        # One per core (up to 4): with ONNX int8 the parser, not the embedder, is the slower stage
        # (sec-10q: 80 CPU-s of pypdf against ~75 of embedding), so the main process needs no core of its own.
        workers = self.settings.workers or max(1, min(4, os.cpu_count() or 2))
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
            "backend": self.embedder.backend,
            "chunk_tokens": str(self.settings.chunk_tokens),
            "chunk_overlap": str(self.settings.chunk_overlap),
            "store": self.store.name,
            "kb_version": __version__,
        }
        was = meta.get("backend") or ("torch" if meta.get("model") else None)
        if was and was != build["backend"] and self.catalog.totals()[1]:
            print(f"kb: this index holds {was} vectors; new ones come from {build['backend']} (same model, cosine "
                  f">= 0.98 to each other); `kb reindex` makes them uniform", file=sys.stderr)
        if any(meta.get(k) != v for k, v in build.items()):
            self.catalog.set_meta(**build)
        if self._team:
            from kb.index.sync import push_meta

            push_meta(self.catalog, self.store)  # type: ignore[arg-type]

    def _commit(self, *, vectors: Any, **document: Any) -> tuple[list[int], list[int]]:
        """One document into catalog and store; (old chunk ids, new ones). On a team store, Milvus
        first (it is the truth the others mirror), with ids derived from path and content."""
        if self._team:
            from kb.index.sync import publish

            ids = publish(self.store, vectors=vectors, previous=self.catalog.document(document["path"]) is not None,
                          **document)  # type: ignore[arg-type]
            return self.catalog.replace_document(**document, ids=ids)
        old, new = self.catalog.replace_document(**document)
        self.store.delete(_ids(old))
        self.store.add(_ids(new), vectors, None)
        return old, new

    def _forget(self, path: str) -> None:
        """Drop a document from store and catalog (from Milvus first on a team store)."""
        if self._team:
            self.store.delete_document(path)  # type: ignore[attr-defined]
            self.catalog.delete_document(path)
        else:
            self.store.delete(_ids(self.catalog.delete_document(path)))

    def _repair(self, fix: bool = True) -> tuple[int, int]:
        """Make the vector store agree with the catalog after an interrupted ingest.

        Returns (vectors without a chunk, chunks without a vector), as found before repairing.
        """
        if not self.exists:
            return 0, 0
        if self._team:  # other members' vectors are not orphans: see kb.index.sync.repair
            from kb.index.sync import repair

            return repair(self.catalog, self.store, fix)  # type: ignore[arg-type]
        in_catalog = set(self.catalog.chunk_ids())
        in_store = set(self.store.ids().tolist())
        extra = in_store - in_catalog
        missing = sorted(in_catalog - in_store)
        if not fix:
            return len(extra), len(missing)
        if extra:
            self.store.delete(_ids(extra))
        if missing:
            embed_text = _EmbedText(self._chunk_spec())
            for start in range(0, len(missing), 1024):
                batch = missing[start : start + 1024]
                rows = self.catalog.chunks(batch)
                texts = [embed_text(rows[i]) for i in batch]
                self.store.add(_ids(batch), self.embedder.embed_documents(texts), None)
        if extra or missing:
            self.store.save()
        return len(extra), len(missing)

    def check(self, *, repair: bool = True) -> CheckReport:
        """Verify that catalog and vectors agree (and the catalog is sound); repair unless told not to."""
        if not self.exists:
            return CheckReport(path=str(self.path), ok=True, integrity="ok")
        integrity = self.catalog.integrity()
        self._lock()
        try:
            _ = self.model_id  # refuses another model before anything is re-embedded
            orphans, missing = self._repair(fix=repair)
        finally:
            self._unlock()
        docs, chunks, _ = self.catalog.totals()
        return CheckReport(
            path=str(self.path), ok=integrity == "ok" and (repair or not (orphans or missing)), integrity=integrity,
            documents=docs, chunks=chunks, vectors=self.store.count(), orphan_vectors=orphans,
            missing_vectors=missing, repaired=repair and bool(orphans or missing),
        )

    def reindex(self, model: str | None = None, *, progress: Progress | None = None) -> int:
        """Re-embed every chunk from the catalog (no re-parsing), e.g. with a new `model`.

        The new vectors go to a new file; the catalog switches to it in one transaction, so an
        interruption leaves the old index in use. Returns the number of chunks embedded.
        """
        if not self.exists:
            raise KBError(f"the knowledge base at {self.path} is empty: nothing to reindex")
        if self._team:
            raise KBError("kb reindex does not work on a Milvus store yet: ingest into a new --collection "
                          "with the new model")
        self._lock()
        try:
            embedder = self._embedder_for(model or self.settings.model)
            old_name = self.catalog.meta().get("vectors") or DEFAULT_VECTORS
            name = f"vectors-{int(time.time() * 1000)}.faiss"
            store = open_store(self.settings, self.path, embedder.dimensions, name)
            spec = ChunkSpec(tokenizer_file(embedder, self.path), self.settings.chunk_tokens,
                             self.settings.chunk_overlap, embedder.max_seq_length)
            embed_text = _EmbedText(spec)
            ids = sorted(self.catalog.chunk_ids())
            for start in range(0, len(ids), 1024):
                batch = ids[start : start + 1024]
                rows = self.catalog.chunks(batch)
                store.add(_ids(batch), embedder.embed_documents([embed_text(rows[i]) for i in batch]), None)
                if progress:
                    progress(min(start + 1024, len(ids)), len(ids), "")
            store.save()
            self.__dict__.pop("store", None)
            self.__dict__.pop("embedder", None)
            self.__dict__.pop("model_id", None)
            self.catalog.set_meta(vectors=name, model=embedder.model_id, dimensions=str(embedder.dimensions),
                                  max_seq_length=str(embedder.max_seq_length), backend=embedder.backend)
            (self.path / old_name).unlink(missing_ok=True)
            self.settings = self.settings.replace(model=embedder.model_id)
            return len(ids)
        finally:
            self._unlock()

    # --- queries -----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int = 5,
        *,
        filters: Filters | None = None,
        mode: str | None = None,
        rerank: str | Reranker | None = None,
        tuning: Tuning | None = None,
    ) -> list[Hit]:
        """The `k` passages that best match `query`, among those passing `filters`.

        `mode`: "hybrid" (dense + keyword, the default), "dense" or "keyword"; None: the `mode`
        setting. `rerank`: a cross-encoder model name, or a `Reranker`, that reorders the best
        candidates; None: the `rerank` setting (off unless set).
        """
        from kb.query.rerank import open_reranker
        from kb.query.search import DEFAULT_TUNING, check_mode
        from kb.query.search import search as run_search

        if not query.strip():
            raise ConfigError("the query is empty")
        mode = check_mode(mode or self.settings.mode)
        reranker = open_reranker(rerank if rerank is not None else self.settings.rerank, device=self.settings.device)
        if not self.exists or self.catalog.totals()[1] == 0:
            raise KBError(f"the knowledge base at {self.path} is empty: run `kb ingest PATH` first")
        return run_search(
            self.catalog, self.store, self.embedder, query, k,
            filters=filters, mode=mode, reranker=reranker, tuning=tuning or DEFAULT_TUNING,
        )

    def ask(
        self,
        question: str,
        k: int = 5,
        *,
        filters: Filters | None = None,
        llm: Any = None,
        on_token: Callable[[str], None] | None = None,
        stream: bool = True,
        **generation: Any,
    ) -> Answer:
        """Answer `question` from the top `k` passages with checked [n] citations (an `Answer`).

        `llm`: an `kb.llm.LLM`, a backend name, "none" (quote the best sentences), or None for the
        configured default. `on_token` sees the answer as it streams. `generation`: temperature,
        top_p, top_k, max_tokens, num_beams. See `kb.query.answer`.
        """
        from kb.query.answer import answer

        return answer(self, question, k=k, filters=filters, llm=llm, on_token=on_token, stream=stream, **generation)

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
                    self._forget(doc.path)
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


class _EmbedText:
    """Rebuilds a stored chunk's embedded text (title and heading prefix + text)."""

    def __init__(self, spec: ChunkSpec):
        from kb.ingest.worker import _chunker

        self.chunker = _chunker(spec)

    def __call__(self, row: dict[str, Any]) -> str:
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
