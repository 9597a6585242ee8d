"""The two seams of storage: `VectorStore` (vectors keyed by chunk id, one backend per file) and
`Index` (the catalog and a store together: one knowledge base, local or shared by a team).

A store declares what it can do beyond the contract (`native_filters`, `native_keyword`, `shared`)
instead of being probed for methods; search code asks those flags.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kb.errors import KBError
from kb.index.catalog import Catalog, DocumentRecord
from kb.registry import Registry
from kb.types import Status

if TYPE_CHECKING:
    import numpy as np

    from kb.config import Settings
    from kb.filters import Filters
    from kb.types import Chunk

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
# Re-embeds chunks from the catalog: chunk ids in, (ids, vectors) batches out (kb.ingest.pipeline).
Reembed = Callable[[list[int]], Iterator[tuple[list[int], "np.ndarray"]]]


class VectorStore(ABC):
    name: ClassVar[str]
    native_filters: ClassVar[bool] = False  # `search_filtered` evaluates `Filters` inside the store
    native_keyword: ClassVar[bool] = False  # `keyword_search` is the store's own BM25 over the chunks it holds
    shared: ClassVar[bool] = False  # holds the whole knowledge base (chunks, documents, build), for a team

    @classmethod
    @abstractmethod
    def open(cls, settings: Settings, folder: Path, dimensions: int | None, vectors: str | None = None) -> VectorStore:
        """The store of the knowledge base in `folder`; `vectors` (kept in the catalog) names a
        store-specific generation, such as the live FAISS file after `kb reindex`."""

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict[str, Any]] | None = None) -> None:
        """Insert vectors under new int64 chunk ids (the catalog never reuses an id)."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best `k` (id, inner product) pairs, best first; only among `allowed_ids` when given."""

    @abstractmethod
    def delete(self, ids: np.ndarray) -> None: ...

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Every id held, as int64."""

    def save(self) -> None:
        """Make what was added durable (a no-op for stores that write through)."""

    def close(self) -> None:
        self.save()

    @classmethod
    def generation(cls) -> str:
        """A name for a new generation of vectors (`kb reindex` writes one, then switches to it)."""
        return f"vectors-{int(time.time() * 1000)}"

    @classmethod
    def drop(cls, folder: Path, vectors: str | None) -> None:
        """Delete a generation from disk (the old one, once `kb reindex` switched away); it need not open."""

    @classmethod
    def sweep(cls, folder: Path, vectors: str | None) -> list[str]:
        """Delete what interrupted writes left in `folder` (half-written files, generations other
        than the live one `vectors`); called by repair, under the write lock. Returns what went."""
        return []

    @classmethod
    def stamp(cls, folder: Path, vectors: str | None) -> object | None:
        """Changes whenever another process rewrites the stored vectors (a long-lived reader then
        reopens the store); None when the store cannot tell, or serves every process live."""
        return None

    # --- optional capabilities: implemented where the flags above say so ------------------------
    def search_filtered(self, vector: np.ndarray, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        """Dense search with `filters` evaluated by the store (`native_filters`)."""
        raise NotImplementedError(f"{self.name} does not filter natively")

    def keyword_search(self, query: str, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        """The store's own BM25 (`native_keyword`): (id, score) best first."""
        raise NotImplementedError(f"{self.name} has no keyword search")


# Stores by name (entry-point group `kb.stores`); a class with `shared = True` is opened as a `TeamIndex`.
STORES: Registry[type[VectorStore]] = Registry("kb.stores", "store", {
    "faiss": "kb.index.faiss:FaissStore",
    "milvus": "kb.index.milvus:MilvusStore",
})


class Index(ABC):
    """A knowledge base's catalog (SQLite: documents, chunks, text, FTS) and vector store, kept in
    agreement. Subclasses own where the truth lives: `LocalIndex` (the catalog; vectors derived) or
    `TeamIndex` (Milvus; the catalog a mirror). Catalog and store open on first use.

    `readonly`: an index for readers that share a store with a writer elsewhere (kb serve); it never
    writes, and never pulls on its own.
    """

    refresh_every_s: ClassVar[float | None] = None  # how often a long-lived process should `refresh`

    def __init__(self, folder: Path, settings: Settings, *, catalog: Any = None, store: VectorStore | None = None,
                 readonly: bool = False):
        self.folder = folder
        self.settings = settings
        self.readonly = readonly
        if catalog is not None:
            self.__dict__["catalog"] = catalog
        if store is not None:
            self.__dict__["store"] = store

    @cached_property
    def catalog(self) -> Catalog:
        self.folder.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(self.folder / CATALOG_FILE)
        self.__dict__["catalog"] = catalog  # `_opened` may read it (opening a store reads its metadata)
        self._opened()
        return catalog

    def _opened(self) -> None:
        """Called once the catalog is open, before anything reads it."""

    @cached_property
    def store(self) -> VectorStore:
        return self.open_store()

    def open_store(self) -> VectorStore:
        """A new handle on the store generation the catalog names as live."""
        meta = self.catalog.meta()
        dims = meta.get("dimensions")
        return self.store_class.open(self.settings, self.folder, int(dims) if dims else None, meta.get("vectors"))

    def stamp(self) -> object | None:
        """See `VectorStore.stamp`: of the generation the catalog names as live now."""
        return self.store_class.stamp(self.folder, self.catalog.meta().get("vectors"))

    def swap_store(self, store: VectorStore) -> VectorStore | None:
        """Use `store` from now on; the previous one is returned, not closed (readers may hold it)."""
        previous = self.__dict__.get("store")
        self.__dict__["store"] = store
        return previous

    @property
    def store_class(self) -> type[VectorStore]:
        return STORES.get(self.settings.store)

    @property
    def exists(self) -> bool:
        """Whether anything was ever ingested here (without creating the catalog)."""
        return (self.folder / CATALOG_FILE).is_file()

    def refresh(self, max_age: float = 0.0) -> None:
        """Bring what this process sees up to date with writes made elsewhere (a team's pulls)."""

    def status(self, model: str) -> Status:
        """What the knowledge base holds; `model`: the one it is (or would be) built with."""
        if not self.exists:
            return Status(0, 0, 0, model, self.settings.store, 0, [], str(self.folder))
        docs, chunks, pages = self.catalog.totals()
        meta = self.catalog.meta()
        size = sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())
        return Status(
            documents=docs, chunks=chunks, pages=pages, model=meta.get("model") or model,
            store=meta.get("store") or self.settings.store, bytes=size, failed=self.catalog.failures(),
            path=str(self.folder), dimensions=int(meta["dimensions"]) if meta.get("dimensions") else None,
            folder=self.catalog.common_folder(), types=self.catalog.type_counts(),
        )

    # --- writing ----------------------------------------------------------------------------
    @abstractmethod
    def commit(self, doc: DocumentRecord, chunks: list[Chunk], vectors: np.ndarray) -> tuple[list[int], list[int]]:
        """One document into catalog and store, whole or not at all: (old chunk ids, new ones)."""

    @abstractmethod
    def forget(self, path: str) -> None:
        """Drop a document from store and catalog."""

    def move(self, path: str, to: str, *, source: str, mtime_ns: int, title: str) -> bool:
        """Give a renamed file's document its new path, keeping its chunks and vectors (the text is
        unchanged); False where that cannot be done without re-embedding (the caller re-indexes it)."""
        return False

    @abstractmethod
    def repair(self, reembed: Reembed, *, fix: bool = True) -> tuple[int, int]:
        """Make store and catalog agree after an interrupted write: (vectors without a chunk,
        chunks without a vector), as found before repairing."""

    def check_reindex(self) -> None:
        """Raise a `KBError` saying why `replace_vectors` cannot work here (before any work is done)."""

    def replace_vectors(self, batches: Iterable[tuple[list[int], np.ndarray]], build: dict[str, str]) -> None:
        """Every chunk's vectors anew (`kb reindex`), switched to only when complete."""
        raise KBError(f"kb reindex does not work on a {self.settings.store} store")

    def record_build(self, build: dict[str, str]) -> None:
        """Record how the index is built (model, dimensions, chunking, store, kb version)."""
        meta = self.catalog.meta()
        was = meta.get("backend") or ("torch" if meta.get("model") else None)
        if was and was != build.get("backend", was) and self.catalog.totals()[1]:
            log.warning("kb: this index holds %s vectors; new ones come from %s (same model, cosine >= 0.98 to "
                        "each other); `kb reindex` makes them uniform", was, build["backend"])
        if any(meta.get(k) != v for k, v in build.items()):
            self.catalog.set_meta(**build)

    def save(self) -> None:
        if "store" in self.__dict__:
            self.store.save()

    def close(self) -> None:
        """Save and close what was opened; a `readonly` index leaves a shared store open."""
        store = self.__dict__.pop("store", None)
        catalog = self.__dict__.pop("catalog", None)
        try:
            if store is not None and not self.readonly:
                store.close()
        finally:
            if catalog is not None:
                catalog.close()
