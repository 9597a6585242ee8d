"""The `Index` seam: a knowledge base's catalog and vector store together, kept in agreement, local
(`kb.index.local`) or shared by a team (`kb.index.team`), and safe to read from many threads while
one writes. The `VectorStore` seam is `kb.index.store`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from kb.embed import Prompts, model_prompts, same_format, vector_format
from kb.embed.base import Vectors
from kb.errors import EmbedderMismatchError, KBError
from kb.failpoints import failpoint
from kb.index.catalog import Catalog, DocumentRecord
from kb.index.shared import GuardedStore, ThreadCatalogs
from kb.index.store import STORES, VectorStore
from kb.lock import RWLock
from kb.types import CheckReport, Status

if TYPE_CHECKING:
    from kb.config import Settings
    from kb.types import Chunk

__all__ = ["CATALOG_FILE", "STORES", "DocumentRecord", "Index", "Reembed", "VectorStore", "View"]

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
# What committing a document may cost the catalog's disk: each byte of chunk text takes ~3 in the file (the
# text, its full-text index, their pages: 3.3 measured on docs/, small files), and the write-ahead log holds
# the transaction until it is copied there (its space is reused after each checkpoint, so less than as much
# again); one transaction also rewrites about 30 pages of 4 kB (rows, indexes, FTS segments).
CATALOG_GROWTH = 4
CATALOG_MARGIN = 128 * 1024
# Re-embeds chunks from the catalog: chunk ids in, (ids, vectors) batches out (kb.ingest.pipeline).
Reembed = Callable[[list[int]], Iterator[tuple[list[int], Vectors]]]
Switched = Callable[[], None]


class View(NamedTuple):
    """What one reading thread uses: its own read-only catalog connection and the live store."""

    catalog: Catalog
    store: VectorStore


def made_by(meta: dict[str, str]) -> str | None:
    """The backend that made an index's vectors, from its catalog's meta (before kb recorded it: torch);
    None while it has none."""
    return meta.get("backend") or ("torch" if meta.get("model") else None)


def older_vectors(meta: dict[str, str], backend: str, model: str) -> str | None:
    """Why the vectors of an index (its catalog's `meta`) are of an older format than those `backend` (a
    name `pick_backend` gave) makes here of `model`, in a few words; None when they are alike, or when
    that cannot be told (a plugin's backend)."""
    was = made_by(meta)
    now = vector_format(backend, model) if was else None
    if was is None or now is None:
        return None
    if not same_format(was, now[0]):
        return f"made by {was}, and new ones here by {now[0]}"
    graph = meta.get("graph", "1") if now[1] else ""  # int8 graphs only: kb recorded none before graph 2
    if graph != now[1]:
        return f"made by graph {graph} of {was}, and new ones here by graph {now[1]}"
    # The prompts come from the model's files, which may have changed (or kb's table of families grown).
    made_with, own = Prompts.from_meta(meta), model_prompts(model)
    if own is not None and own != made_with:
        return f"made with {describe_prompts(made_with)}, and the model's own are {describe_prompts(own)}"
    return None


def describe_prompts(prompts: Prompts) -> str:
    """Prompts in a few words, for messages."""
    if not prompts.any:
        return "no prompts"
    return f"the query prompt {prompts.query!r} and the passage prompt {prompts.passage!r}"


class Index(ABC):
    """A knowledge base's catalog (SQLite: documents, chunks, text, FTS) and vector store, kept in
    agreement. Subclasses own where the truth lives: `LocalIndex` (the catalog; vectors derived) or
    `TeamIndex` (Milvus; the catalog a mirror). Catalog and store open on first use.

    Threads: any number read through `reading()` (each with its own read-only catalog connection) while
    one at a time writes through `catalog` and `store` (the caller serialises writers: `KnowledgeBase`).
    A change to the store, swapping it and closing wait for the reads in flight; a waiting change holds
    new reads back, so a stream of searches cannot starve an ingest.
    """

    refresh_every_s: ClassVar[float | None] = None  # how often a long-lived process should `refresh`

    def __init__(self, folder: Path, settings: Settings):
        self.folder = folder
        self.settings = settings
        self.guard = RWLock()
        self._opening = threading.RLock()  # one thread opens catalog and store (re-entered by `_opened`)
        self._catalog: Catalog | None = None
        self._ready = False  # the catalog is open and `_opened` ran: other threads may use it
        self._store: VectorStore | None = None
        self._guarded: VectorStore | None = None
        self._readers = ThreadCatalogs(folder / CATALOG_FILE)
        self._stamp: object | None = None  # `stamp()` of the vectors this process last read or wrote

    @property
    def catalog(self) -> Catalog:
        """The catalog's read-write connection, the writer's; readers use `reading()`."""
        if not self._ready:
            with self._opening:
                if self._catalog is None:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    self._catalog = Catalog(self.folder / CATALOG_FILE)
                    self._opened()  # may read it (opening a store reads its metadata)
                    self._ready = True
        assert self._catalog is not None
        return self._catalog

    def _opened(self) -> None:
        """Called once the catalog is open, before anything reads it."""

    @property
    def store(self) -> VectorStore:
        """The live store, as writers change it: each change waits for the reads in flight."""
        self._live()
        assert self._guarded is not None
        return self._guarded

    def _live(self, catalog: Catalog | None = None) -> VectorStore:
        if self._store is None:
            with self._opening:
                if self._store is None:
                    self._use(self.open_store(catalog))
                    self._stamp = self.stamp(catalog)
        assert self._store is not None
        return self._store

    def _use(self, store: VectorStore | None) -> None:
        self._store = store
        self._guarded = None if store is None else GuardedStore(store, self.guard)

    @contextmanager
    def reading(self) -> Iterator[View]:
        """Read from any thread: this thread's catalog connection and the live store, which no change
        touches until the block ends. Not re-entrant: read everything inside one block."""
        _ = self.catalog  # opened (on a team store: pulled) once, before any thread reads
        with self.guard.read():  # then nothing closes or swaps what this thread takes below
            catalog = self._readers.mine()
            yield View(catalog, self._live(catalog))

    def open_store(self, catalog: Catalog | None = None) -> VectorStore:
        """A new handle on the store generation the catalog names as live."""
        meta = (catalog or self.catalog).meta()
        dims = meta.get("dimensions")
        return self.store_class.open(self.settings, self.folder, int(dims) if dims else None, meta.get("vectors"))

    def stamp(self, catalog: Catalog | None = None) -> object | None:
        """See `VectorStore.stamp`: of the generation the catalog names as live now."""
        return self.store_class.stamp(self.folder, (catalog or self.catalog).meta().get("vectors"))

    def swap_store(self, store: VectorStore | None, *, then: Switched | None = None) -> VectorStore | None:
        """Use `store` from now on (None: open the live one when next used), once the reads in flight
        end; `then` runs in the same moment (no read sees one without the other). The previous store
        is returned, not closed."""
        with self.guard.write():
            previous = self._store
            self._use(store)
            if then is not None:
                then()
        return previous

    def written(self) -> None:
        """A writer here saved: what is stored now is what this process reads."""
        if self._store is not None:
            self._stamp = self.stamp()

    def catch_up(self, embedding: str | None) -> None:
        """Before a write: read the vectors another process wrote since this one last did; refuse when it
        re-embedded the index with another model than `embedding`, the one loaded here (None: none yet)."""
        built = self.catalog.meta().get("model") if self.exists else None
        if built and embedding and built != embedding:
            raise EmbedderMismatchError(f"{self.folder} now holds {built} vectors (re-embedded by another process); "
                                        f"this process embeds with {embedding}: restart it")
        if built:
            self.reload_if_changed(built)

    def reload_if_changed(self, model: str) -> bool:
        """Another process (`kb ingest`, `kb reindex`) rewrote the stored vectors: read them. Returns
        whether it did; vectors of another embedding model than `model` (the one queries here are
        embedded with) are logged and left alone (a restart picks them up). Call it as a writer."""
        if self._store is None or not self.exists:
            return False  # nothing read yet: the store opens as it is when first used
        stamp = self.stamp()
        if stamp is None or stamp == self._stamp:
            return False
        built = self.catalog.meta().get("model")
        if built and built != model:
            self._stamp = stamp  # said once
            log.error("kb: the index now holds %s vectors, queries here are embedded with %s: restart to use them",
                      built, model)
            return False
        previous = self.swap_store(self.open_store())  # a store that fails to open is tried again next time
        self._stamp = stamp
        if previous is not None:
            previous.close()
        return True

    @property
    def store_class(self) -> type[VectorStore]:
        return STORES.get(self.settings.store)

    @property
    def exists(self) -> bool:
        """Whether anything was ever ingested here (without creating the catalog)."""
        return (self.folder / CATALOG_FILE).is_file()

    def refresh(self, max_age: float = 0.0) -> None:
        """Bring what this process sees up to date with writes made elsewhere (a team's pulls). Call it
        as a writer."""

    def status(self, model: str) -> Status:
        """What the knowledge base holds; `model`: the one it is (or would be) built with."""
        if not self.exists:
            return Status(0, 0, 0, model, self.settings.store, 0, [], str(self.folder))
        with self.reading() as view:
            catalog = view.catalog
            docs, chunks, pages = catalog.totals()
            meta = catalog.meta()
            size = sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())
            return Status(
                documents=docs, chunks=chunks, pages=pages, model=meta.get("model") or model,
                store=meta.get("store") or self.settings.store, bytes=size, failed=catalog.failures(),
                path=str(self.folder), dimensions=int(meta["dimensions"]) if meta.get("dimensions") else None,
                folder=catalog.common_folder(), types=catalog.type_counts(), vectors=made_by(meta),
                prompts=Prompts.from_meta(meta)._asdict() if Prompts.from_meta(meta).any else None,
            )

    # --- writing ----------------------------------------------------------------------------
    def room_needed(self, chunks: list[Chunk], dimensions: int) -> int:
        """Free bytes the knowledge base's folder needs to commit a document of `chunks` and then save
        the vectors (a local store writes its whole file anew beside the old one)."""
        text = sum(len(c.text.encode()) for c in chunks)
        return CATALOG_GROWTH * text + CATALOG_MARGIN + self.store.bytes_to_save(len(chunks), dimensions)

    @abstractmethod
    def commit(self, doc: DocumentRecord, chunks: list[Chunk], vectors: Vectors) -> tuple[list[int], list[int]]:
        """One document into catalog and store, whole or not at all: (old chunk ids, new ones)."""

    def commit_file(self, docs: list[tuple[DocumentRecord, list[Chunk], Vectors]],
                    stale: Iterable[str] = ()) -> list[tuple[list[int], list[int]]]:
        """A file's document (first in `docs`) with those of the files inside it (an archive's, a mail's
        attachments), the documents at `stale` (parts of its earlier version that it no longer holds)
        forgotten: (old chunk ids, new ones) for each of `docs`. The file's own document goes last, so
        that an interruption leaves its earlier content hash and the next run reads the file again."""
        done = [self.commit(*part) for part in docs[1:]]
        for path in stale:
            self.forget(path)
        return [self.commit(*docs[0]), *done]

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

    def replace_vectors(self, batches: Iterable[tuple[list[int], Vectors]], build: dict[str, str], *,
                        switched: Switched | None = None) -> None:
        """Every chunk's vectors anew (`kb reindex`), switched to only when complete; `switched` runs in
        the moment the reads move to them (the reader's side of the switch: the query embedder)."""
        raise KBError(f"kb reindex does not work on a {self.settings.store} store")

    def record_build(self, build: dict[str, str]) -> None:
        """Record how the index is built (model, dimensions, chunking, store, kb version)."""
        meta = self.catalog.meta()
        was = made_by(meta)
        chunks = self.catalog.totals()[1]
        if was and chunks and same_format(was, build.get("backend", was)):
            build = {**build, "backend": was}  # one format: the record (and so `auto`) stays the index's own
        elif was and chunks:
            log.warning("kb: this index holds %s vectors; new ones come from %s (same model, cosine >= 0.98 to "
                        "each other); `kb reindex` makes them uniform", was, build["backend"])
        older_graph = build.get("graph") and meta.get("graph", "1") != build["graph"]
        if was and build.get("backend", was) == was and older_graph and chunks:
            log.warning("kb: this index holds %s vectors of an older graph; new ones come from graph %s (cosine >= "
                        "0.99 to the old ones); `kb reindex` makes them uniform", was, build["graph"])
        if any(meta.get(k) != v for k, v in build.items()):
            self.catalog.set_meta(**build)

    def check(self, reembed: Reembed, *, repair: bool = True) -> CheckReport:
        """`kb doctor`: whether the catalog is sound and store and catalog agree; `repair`: make them."""
        integrity = self.catalog.integrity()
        orphans, missing = self.repair(reembed, fix=repair)
        docs, chunks, _ = self.catalog.totals()
        return CheckReport(
            path=str(self.folder), ok=integrity == "ok" and (repair or not (orphans or missing)),
            integrity=integrity, documents=docs, chunks=chunks, vectors=self.store.count(), orphan_vectors=orphans,
            missing_vectors=missing, repaired=repair and bool(orphans or missing),
        )

    def remove(self, targets: list[str]) -> list[str]:
        """Forget the documents at or under each resolved path (a folder's; a file's and those of the
        files inside it, a mail's attachments) and the failures recorded there: their sources."""
        removed: list[str] = []
        for target in targets:
            docs = [d for d in [self.catalog.document(target)] if d] + self.catalog.documents_under(target)
            for doc in docs:
                self.forget(doc.path)
                removed.append(doc.source)
                failpoint("remove.after_forget")
            removed += self.catalog.forget_failures(target)
        self.save()
        return removed

    def save(self) -> None:
        if self._store is not None:
            self.store.save()

    def close(self) -> None:
        """Save and close what was opened, once the reads in flight end."""
        with self.guard.write():
            store, catalog = self._store, self._catalog
            self._use(None)
            self._catalog, self._ready = None, False
            try:
                if store is not None:
                    store.close()
            finally:
                try:
                    if catalog is not None:
                        catalog.close()
                finally:
                    self._readers.close()
