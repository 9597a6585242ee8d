"""`Reader`: one knowledge base read from many threads at once (`kb serve`, a LangChain chain), with
writes from one thread at a time through `Reader.writer()`. Get one with `KnowledgeBase.reader()`.

Concurrency, in one place:
- Readers (search, ask, status) share one embedder (calls serialised when the embedder is not
  thread-safe), one LLM per settings and one vector store, and read the SQLite catalog through a
  read-only connection per thread, so they never wait for each other and can never write.
- A writer is a short-lived `KnowledgeBase` with its own catalog connection, the shared embedder and
  the shared store behind `SharedStore`. A document is committed to SQLite in one transaction,
  which readers see whole or not at all; the store is only modified under the write side of
  `RWLock`, while searches hold the read side, so a search never meets an index mid-change.
  Parsing and embedding, the slow part of an ingest, hold no lock.
- A long answer holds no lock: retrieval runs under the read lock, generation after it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.embed.base import Embedder
from kb.errors import KBError
from kb.index import CATALOG_FILE, VectorStore, open_index
from kb.index.catalog import Catalog, DocumentRow

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

    from kb.answer.chat import History
    from kb.answer.types import Answer
    from kb.api import KnowledgeBase
    from kb.config import Settings
    from kb.filters import Filters
    from kb.llm.base import LLM
    from kb.types import Hit, Status


log = logging.getLogger(__name__)


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
    """A store shared by readers and one writer: changes happen under the write lock."""

    def __init__(self, inner: VectorStore, lock: RWLock):
        self.inner, self.lock = inner, lock
        self.name = inner.name  # type: ignore[misc]
        self.native_filters = inner.native_filters  # type: ignore[misc]
        self.native_keyword = inner.native_keyword  # type: ignore[misc]
        self.shared = inner.shared  # type: ignore[misc]

    @classmethod
    def open(cls, settings: Settings, folder: Path, dimensions: int | None, vectors: str | None = None) -> VectorStore:
        raise TypeError("a SharedStore wraps a store that is already open")

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

    def search_filtered(self, vector: np.ndarray, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        with self.lock.read():
            return self.inner.search_filtered(vector, k, filters, catalog)

    def keyword_search(self, query: str, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        with self.lock.read():
            return self.inner.keyword_search(query, k, filters, catalog)

    def count(self) -> int:
        with self.lock.read():
            return self.inner.count()

    def ids(self) -> np.ndarray:
        with self.lock.read():
            return self.inner.ids()

    def __getattr__(self, name: str) -> Any:  # a shared store's team methods (kb.index.team): Milvus keeps its own consistency
        return getattr(self.inner, name)


class SerialEmbedder(Embedder):
    """An embedder that is not thread-safe (torch's Hugging Face tokenizer: "Already borrowed"), one call at a time."""

    thread_safe = True

    def __init__(self, inner: Embedder):
        self.inner, self._lock = inner, threading.Lock()
        self.model_id, self.backend, self.location = inner.model_id, inner.backend, inner.location
        self.batch_size = inner.batch_size  # type: ignore[misc]

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    @property
    def max_seq_length(self) -> int:
        return self.inner.max_seq_length

    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer()

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return self.inner.embed_query(text)


class Reader:
    """Thread-safe reads of `kb` (and its writers). Made by `KnowledgeBase.reader()`, closed with it."""

    def __init__(self, kb: KnowledgeBase):
        self.lock = RWLock()
        self.path, self.settings = kb.path, kb.settings
        self._origin = kb
        _ = kb.catalog  # the catalog file exists from here on; on a team store, the shared one is pulled
        embedder = kb.embedder
        self.embedder: Embedder = embedder if embedder.thread_safe else SerialEmbedder(embedder)
        # The readers' KnowledgeBase: per-thread read-only catalogs, the shared embedder and store. Its
        # index is read-only: it never writes, and never pulls on a reader's thread.
        index = open_index(kb.path, kb.settings, catalog=ThreadCatalogs(kb.path / CATALOG_FILE), store=kb.store,
                           readonly=True)
        self.kb = type(kb)(kb.path, kb.settings, index=index, embedder=self.embedder)
        self._llms: dict[tuple[Any, ...], Any] = {}
        self._llm_guard = threading.Lock()
        self._stamp = index.stamp()
        self._pull_guard = threading.Lock()
        self._pulled_at = time.monotonic()  # opening the origin's catalog pulled, on a team store
        self.closed = False
        # Whether `search` pulls a team store when due. A server turns it off and pulls on its worker
        # thread instead, so that a request never waits for a pull or writes beside an ingest job.
        self.auto_refresh = True

    def refresh(self, max_age: float | None = 0.0) -> bool:
        """A team store: pull what other members changed (if the last pull is older than `max_age` s;
        None: the index's own `refresh_every_s`), through a writer, while readers go on. One thread
        pulls; the others do not wait for it. Returns whether this call pulled."""
        every = self.kb.index.refresh_every_s
        if every is None or time.monotonic() - self._pulled_at <= (every if max_age is None else max_age):
            return False
        if not self._pull_guard.acquire(blocking=False):
            return False
        try:
            writer = self.writer()
            try:
                writer.refresh()  # opening its catalog pulls
            finally:
                writer.close()
            self._pulled_at = time.monotonic()
            return True
        finally:
            self._pull_guard.release()

    # --- reading -------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, filters: Filters | None = None, **options: Any) -> list[Hit]:
        """As `KnowledgeBase.search`, from any thread. On a team store, pulls first when the mirror is
        older than the index's `refresh_every_s`, as `KnowledgeBase.search` does."""
        self._check_open()
        if self.auto_refresh:
            self.refresh(None)
        with self.lock.read():
            return self.kb.search(query, k=k, filters=filters, **options)

    def load_llm(self, llm: LLM | str | None = None) -> tuple[LLM | None, str | None]:
        """The LLM `ask` uses for `llm`, loaded once, or (None, why it failed): see `kb.answer.load_llm`."""
        from kb.answer import load_llm

        with self._llm_guard:
            return load_llm(self.settings, llm, self._llms)

    def ask(self, question: str, k: int = 5, *, filters: Filters | None = None, llm: LLM | str | None = None,
            on_token: Callable[[str], None] | None = None, stream: bool = True, history: History = (),
            **generation: Any) -> Answer:
        """As `KnowledgeBase.ask`, from any thread; the read lock is held while retrieving only."""
        self._check_open()
        from kb.answer import answer

        model, failure = self.load_llm(llm)
        return answer(self.search, self.embedder, question, k=k, filters=filters, llm=model, on_token=on_token,
                      stream=stream, llm_error=failure, history=history, **generation)

    def status(self) -> Status:
        self._check_open()
        with self.lock.read():
            return self.kb.status()

    def documents(self) -> list[DocumentRow]:
        with self.lock.read():
            return self.kb.catalog.documents() if self.kb.exists else []

    def document(self, doc_id: int) -> DocumentRow | None:
        with self.lock.read():
            return self.kb.catalog.document_by_id(doc_id) if self.kb.exists else None

    # --- writing -------------------------------------------------------------------------------
    def writer(self) -> KnowledgeBase:
        """A `KnowledgeBase` for one write job (ingest, remove, a team pull): its own catalog
        connection, the shared embedder, and the shared store changed under the write lock. Close it
        when done; it takes the knowledge base's write lock like any writer."""
        self._check_open()
        index = open_index(self.path, self.settings, store=SharedStore(self.kb.store, self.lock))
        return type(self._origin)(self.path, self.settings, index=index, embedder=self.embedder)

    def written(self) -> None:
        """A writer of this reader saved: what is stored now is what readers already see."""
        self._stamp = self.kb.index.stamp()

    def reload_if_changed(self) -> bool:
        """Another process (`kb ingest`, `kb reindex`) rewrote the stored vectors: read them. Returns
        whether it did; a change of embedding model is logged and left alone (a restart picks it up)."""
        index = self.kb.index
        stamp = index.stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        model = index.catalog.meta().get("model")
        if model and model != self.embedder.model_id:
            log.error("kb: the index now holds %s vectors, queries here are embedded with %s: restart to use them",
                      model, self.embedder.model_id)
            return False
        store = index.open_store()
        with self.lock.write():
            index.swap_store(store)
            previous = self._origin.index.swap_store(store)  # the origin owns, and closes, the live store
        if previous is not None and previous is not store:
            previous.close()
        return True

    def _check_open(self) -> None:
        if self.closed:
            raise KBError(f"this reader of {self.path} is closed: get a new one with KnowledgeBase.reader()")

    def close(self) -> None:
        """Close the per-thread catalogs; the store stays with the knowledge base it came from."""
        with self.lock.write():
            self.closed = True
            self.kb.close()
