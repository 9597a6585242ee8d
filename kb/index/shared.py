"""What lets one `Index` be read by many threads while one writes: each thread's own read-only
catalog connection, and the store behind the index's read/write lock."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.index.catalog import Catalog
from kb.index.store import Payload, VectorStore
from kb.lock import RWLock

if TYPE_CHECKING:
    import numpy as np

    from kb.config import Settings
    from kb.filters import Filters


class ThreadCatalogs:
    """A read-only connection to one catalog per thread: readers never wait for each other, never see
    a writer's open transaction, and cannot write."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._open: weakref.WeakSet[Catalog] = weakref.WeakSet()
        self._guard = threading.Lock()

    def mine(self) -> Catalog:
        catalog: Catalog | None = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = Catalog(self.path, readonly=True)
            self._local.catalog = catalog
            with self._guard:
                self._open.add(catalog)
        return catalog

    def close(self) -> None:
        with self._guard:
            for catalog in list(self._open):
                catalog.close()
            self._open.clear()
            self._local = threading.local()  # a thread that reads again opens a new one


class GuardedStore(VectorStore):
    """A store as writers see it: each change waits for the searches in flight and holds new ones
    back (`lock`), so a search never meets a store mid-change. Searches hold the read side themselves
    (`Index.reading`) and use the store inside."""

    def __init__(self, inner: VectorStore, lock: RWLock):
        self.inner, self.lock = inner, lock
        self.name = inner.name  # type: ignore[misc]
        self.native_filters = inner.native_filters  # type: ignore[misc]
        self.native_keyword = inner.native_keyword  # type: ignore[misc]
        self.shared = inner.shared  # type: ignore[misc]

    @classmethod
    def open(cls, settings: Settings, folder: Path, dimensions: int | None, vectors: str | None = None) -> VectorStore:
        raise TypeError("a GuardedStore wraps a store that is already open")

    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[Payload] | None = None) -> None:
        with self.lock.write():
            self.inner.add(ids, vectors, payloads)

    def delete(self, ids: np.ndarray) -> None:
        with self.lock.write():
            self.inner.delete(ids)

    def save(self) -> None:
        with self.lock.write():  # FAISS may rebuild its index as IVF while saving
            self.inner.save()

    def close(self) -> None:
        self.save()  # the index closes the store itself

    def bytes_to_save(self, added: int, dimensions: int) -> int:
        with self.lock.read():
            return self.inner.bytes_to_save(added, dimensions)

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
