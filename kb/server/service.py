"""What `kb serve` runs behind its routes: one knowledge base kept open with its models warm, read by
many request threads at once, written by one background worker (ingest jobs, team-mode pulls).

Concurrency, in one place:
- Readers (search, ask, status) share one embedder, one LLM and one vector store, and read the
  SQLite catalog through a read-only connection per thread, so they never wait for each other and
  can never write.
- Every write happens on the worker thread, through a short-lived `KnowledgeBase` of its own (its own
  catalog connection, the shared embedder, and the shared store behind `SharedStore`). A document is
  committed to SQLite in one transaction, which readers see whole or not at all; the store is only
  modified under the write side of `RWLock`, while searches hold the read side, so a search never
  meets a FAISS index mid-change. Parsing and embedding, the slow part of an ingest, hold no lock.
- A long answer holds no lock: retrieval runs under the read lock, generation after it (llama.cpp
  serialises generations itself).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.api import CATALOG_FILE, TEAM_SYNC_S, KnowledgeBase
from kb.errors import ConfigError, KBError
from kb.index.catalog import Catalog
from kb.index.store import DEFAULT_VECTORS, VectorStore, open_store
from kb.query.answer import resolve_llm
from kb.query.filters import Filters
from kb.types import Hit

if TYPE_CHECKING:
    import numpy as np

    from kb.index.embedder import Embedder
    from kb.llm.base import LLM
    from kb.query.answer import Answer

log = logging.getLogger("kb.server")

EXTERNAL_CHECK_S = 2.0  # how often an idle server looks for vectors another process wrote
MAX_JOBS_KEPT = 200  # finished ingest jobs remembered for GET /jobs/{id}


class RWLock:
    """Many readers or one writer. A waiting writer holds back new readers, so a steady stream of
    searches cannot starve an ingest's commits (each of which holds the lock for milliseconds)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ThreadCatalogs:
    """Stands in for a `Catalog`: each thread reads through its own read-only connection."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._open: weakref.WeakSet[Catalog] = weakref.WeakSet()
        self._guard = threading.Lock()

    def _mine(self) -> Catalog:
        catalog = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = Catalog(self.path, readonly=True)
            self._local.catalog = catalog
            with self._guard:
                self._open.add(catalog)
        return catalog

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mine(), name)

    def close(self) -> None:
        with self._guard:
            for catalog in list(self._open):
                catalog.close()
            self._open.clear()


class SharedStore(VectorStore):
    """The readers' store as the worker's `KnowledgeBase` sees it: changes under the write lock."""

    def __init__(self, inner: VectorStore, lock: RWLock):
        self.inner, self.lock, self.name = inner, lock, inner.name

    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict[str, Any]] | None = None) -> None:
        with self.lock.write():
            self.inner.add(ids, vectors, payloads)

    def delete(self, ids: np.ndarray) -> None:
        with self.lock.write():
            self.inner.delete(ids)

    def save(self) -> None:
        with self.lock.write():  # FAISS may rebuild its index as IVF while saving
            self.inner.save()

    def close(self) -> None:
        self.save()  # the readers keep using it

    def search(self, vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        with self.lock.read():
            return self.inner.search(vector, k, allowed_ids)

    def count(self) -> int:
        with self.lock.read():
            return self.inner.count()

    def ids(self) -> np.ndarray:
        with self.lock.read():
            return self.inner.ids()

    def __getattr__(self, name: str) -> Any:  # Milvus' team-mode methods: the server keeps its own consistency
        return getattr(self.inner, name)


class _SerialEmbedder:
    """A torch embedder behind a lock: its Hugging Face tokenizer refuses concurrent calls ("Already
    borrowed"). ONNX Runtime sessions and `tokenizers` encoders are shared freely."""

    def __init__(self, inner: Embedder):
        self._inner, self._lock = inner, threading.Lock()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return self._inner.embed_query(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- ingest jobs -------------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    paths: list[str]
    state: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int | None = None
    current: str | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "paths": self.paths,
            "progress": {"done": self.done, "total": self.total, "current": self.current},
            "report": self.report, "error": self.error,
            "created": self.created, "started": self.started, "finished": self.finished,
        }


class _Cancelled(Exception):
    pass


# --- the service ---------------------------------------------------------------------------------
class Service:
    """One knowledge base served to many clients. Build with `Service.start`; `close` when done."""

    def __init__(self, boot: KnowledgeBase, llm: LLM | None, *, owns_boot: bool):
        self.lock = RWLock()
        self.path = boot.path
        self.settings = boot.settings
        self.llm = llm
        embedder = boot.embedder
        if getattr(embedder, "backend", "") not in ("onnx", "onnx-int8"):
            embedder = _SerialEmbedder(embedder)  # type: ignore[assignment]
        # The readers' KnowledgeBase: per-thread read-only catalogs, the warm embedder, the boot store.
        reader = KnowledgeBase(boot.path, boot.settings)
        reader.__dict__.update(catalog=ThreadCatalogs(boot.path / CATALOG_FILE), store=boot.store,
                               embedder=embedder, model_id=boot.model_id)
        # Team mode pulls write to the catalog: they happen on the worker, never inside a reader's call.
        reader.refresh = lambda max_age=0.0: None  # type: ignore[method-assign]
        self.kb = reader
        if owns_boot:  # its catalog connection is no longer needed; the store and embedder live on
            boot.__dict__.pop("catalog").close()
        self._known = self._vectors_state()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_guard = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._stopping = threading.Event()
        self._busy = False
        self._worker = threading.Thread(target=self._work, name="kb-serve-worker", daemon=True)
        self._worker.start()

    @classmethod
    def start(cls, kb: KnowledgeBase | str | os.PathLike[str] | None = None, *, llm: LLM | str | None = None,
              **overrides: Any) -> Service:
        """Open the knowledge base (creating an empty one if needed), load the embedder and the LLM.

        `llm`: an `LLM`, a backend name, "none" (extractive answers), or None for the configured
        default (`llm` setting; else a local Ollama; else extractive)."""
        owns = not isinstance(kb, KnowledgeBase)
        boot = KnowledgeBase.open(kb, **overrides) if owns else kb
        try:
            _ = boot.catalog  # creates the catalog file; on a team store, pulls the shared one
            _ = boot.model_id
            boot.embedder.embed_query("warm up")
            _ = boot.store
            model = resolve_llm(boot, llm)
        except BaseException:
            if owns:
                boot.close()
            raise
        return cls(boot, model, owns_boot=owns)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker (a running ingest stops after its current file, its work kept), close the store."""
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(timeout)
        with self.lock.write():
            self.kb.close()

    # --- reading ---------------------------------------------------------------------------------
    def search(self, query: str, k: int, filters: Filters | None, mode: str | None) -> list[Hit]:
        with self.lock.read():
            return self.kb.search(query, k=k, filters=filters, mode=mode)

    def ask(self, question: str, k: int, filters: Filters | None, on_token: Callable[[str], None] | None = None,
            stream: bool = False, **generation: Any) -> Answer:
        from kb.query.answer import answer

        return answer(_ReadView(self), question, k=k, filters=filters, llm=self.llm or "none",  # type: ignore[arg-type]
                      on_token=on_token, stream=stream, **generation)

    def status(self) -> dict[str, Any]:
        with self.lock.read():
            st = self.kb.status().to_json()
        return st

    def documents(self) -> list[dict[str, Any]]:
        with self.lock.read():
            rows = self.kb.catalog.documents()
        return [{"id": d.id, "source": d.source, "title": d.title, "file_type": d.file_type, "pages": d.pages,
                 "url": f"/documents/{d.id}"} for d in rows]

    def document_file(self, doc_id: int) -> tuple[Path, str, str] | None:
        """(path, file type, source) of an ingested document whose file is on this machine, else None."""
        with self.lock.read():
            row = self.kb.catalog.db.execute("SELECT path, file_type, source FROM documents WHERE id = ?",
                                             (doc_id,)).fetchone()
        if row is None or not os.path.isfile(row[0]):
            return None
        return Path(row[0]), row[1], row[2]

    # --- ingest jobs -------------------------------------------------------------------------------
    def submit(self, paths: list[str]) -> Job:
        job = Job(id=secrets.token_hex(8), paths=list(paths))
        with self._jobs_guard:
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS_KEPT:
                oldest = next(iter(self._jobs.values()))
                if oldest.state in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)
        self._queue.put(job)
        return job

    def job(self, job_id: str) -> Job | None:
        with self._jobs_guard:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._jobs_guard:
            return list(self._jobs.values())

    @property
    def busy(self) -> bool:
        return self._busy or not self._queue.empty()

    def _work(self) -> None:
        team = self.settings.store == "milvus"
        while not self._stopping.is_set():
            try:
                job = self._queue.get(timeout=TEAM_SYNC_S if team else EXTERNAL_CHECK_S)
            except queue.Empty:
                job = None
                try:
                    self._pull() if team else self._reload_if_changed()
                except Exception as e:  # the next round tries again; requests keep being served
                    log.warning("kb serve: could not sync the knowledge base: %s", e)
                continue
            if job is None:
                break
            self._busy = True
            try:
                self._run(job)
            finally:
                self._busy = False
        with self._jobs_guard:
            for job in self._jobs.values():
                if job.state == "queued":
                    job.state, job.finished = "cancelled", time.time()

    def _writer(self) -> KnowledgeBase:
        writer = KnowledgeBase(self.path, self.settings)
        writer.__dict__.update(embedder=self.kb.embedder, store=SharedStore(self.kb.store, self.lock))
        return writer

    def _run(self, job: Job) -> None:
        job.state, job.started = "running", time.time()

        def progress(done: int, total: int, source: str) -> None:
            if self._stopping.is_set():
                raise _Cancelled
            job.done, job.total, job.current = done, total, source

        writer = self._writer()
        try:
            report = writer.ingest(job.paths, progress=progress)
            job.report = report.to_json()
            job.done, job.total, job.current = job.total or 0, job.total or 0, None
            job.state = "done"
        except _Cancelled:
            job.state, job.error = "cancelled", "the server stopped; documents committed so far are kept"
        except KBError as e:
            job.state, job.error = "failed", str(e)
        except Exception as e:  # a bug must not kill the worker: report it on the job
            log.exception("kb serve: ingest job %s failed", job.id)
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            try:
                writer.close()  # saves the vectors of what was committed, releases the write lock file
            finally:
                job.finished = time.time()
                self._known = self._vectors_state()

    def _pull(self) -> None:
        """Team mode: bring the local mirror up to date with Milvus (what other members ingested)."""
        writer = self._writer()
        try:
            _ = writer.catalog  # opening it pulls
        finally:
            writer.close()

    def _vectors_state(self) -> tuple[str, int, int, int] | None:
        if self.settings.store != "faiss":
            return None
        name = self.kb.catalog.meta().get("vectors") or DEFAULT_VECTORS
        try:
            st = os.stat(self.path / name)
        except OSError:
            return None
        return name, st.st_ino, st.st_mtime_ns, st.st_size

    def _reload_if_changed(self) -> None:
        """FAISS: another process (`kb ingest`, `kb reindex`) wrote new vectors: read them."""
        state = self._vectors_state()
        if state is None or state == self._known:
            return
        meta = self.kb.catalog.meta()
        self._known = state
        if meta.get("model") and meta["model"] != self.kb.model_id:  # `kb reindex --model` ran meanwhile
            log.error("kb serve: the index now holds %s vectors, this server embeds queries with %s: restart it",
                      meta["model"], self.kb.model_id)
            return
        dims = meta.get("dimensions")
        store = open_store(self.settings, self.path, int(dims) if dims else None, state[0])
        with self.lock.write():
            self.kb.__dict__["store"] = store
        log.info("kb serve: reloaded %s (changed by another process)", state[0])


class _ReadView:
    """What `kb.query.answer.answer` uses of a knowledge base, with retrieval under the read lock:
    the lock is not held while the model writes the answer."""

    def __init__(self, service: Service):
        self._service = service
        self.settings = service.kb.settings
        self.embedder = service.kb.embedder

    def search(self, query: str, k: int = 5, *, filters: Filters | None = None, **kwargs: Any) -> list[Hit]:
        with self._service.lock.read():
            return self._service.kb.search(query, k=k, filters=filters, **kwargs)


def check_roots(roots: list[Path]) -> list[Path]:
    out = []
    for root in roots:
        resolved = Path(root).expanduser().resolve()
        if not resolved.is_dir():
            raise ConfigError(f"{root}: not a folder (--docs)")
        out.append(resolved)
    return out
