"""A knowledge base on one machine: the SQLite catalog is the truth, the vector store (FAISS by
default) is derived from it, so a crash between the two is repaired by re-embedding from the
catalog's stored text."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from kb.errors import StoreError
from kb.failpoints import failpoint
from kb.index.base import DocumentRecord, Index, Reembed, Switched

if TYPE_CHECKING:
    from kb.types import Chunk

log = logging.getLogger(__name__)


class LocalIndex(Index):
    def commit(self, doc: DocumentRecord, chunks: list[Chunk], vectors: np.ndarray) -> tuple[list[int], list[int]]:
        # Catalog first, in one transaction; the vectors follow. A crash in between leaves chunks
        # without vectors (or stale vectors), which `repair` fixes on the next run.
        old, new = self.catalog.replace_document(**doc.fields(), chunks=chunks)
        failpoint("catalog.after_commit")
        self.store.delete(_ids(old))
        self.store.add(_ids(new), vectors, None)
        return old, new

    def commit_file(self, docs: list[tuple[DocumentRecord, list[Chunk], np.ndarray]],
                    stale: Iterable[str] = ()) -> list[tuple[list[int], list[int]]]:
        # The whole file in one catalog transaction (one sync to disk, not one per file of an archive),
        # then its vectors, as `commit` does for one document.
        with self.catalog.transaction():
            done = [self.catalog.replace_document(**doc.fields(), chunks=chunks) for doc, chunks, _ in docs]
            gone = [i for path in stale for i in self.catalog.delete_document(path)]
        failpoint("catalog.after_commit")
        self.store.delete(_ids([*gone, *(i for old, _ in done for i in old)]))
        self.store.add(_ids([i for _, new in done for i in new]), np.concatenate([v for *_, v in docs]), None)
        return done

    def forget(self, path: str) -> None:
        self.store.delete(_ids(self.catalog.delete_document(path)))

    def move(self, path: str, to: str, *, source: str, mtime_ns: int, title: str) -> bool:
        # Chunk ids do not depend on the path here, so the vectors stay as they are.
        self.store.delete(_ids(self.catalog.move_document(path, to, source=source, mtime_ns=mtime_ns, title=title)))
        return True

    def repair(self, reembed: Reembed, *, fix: bool = True) -> tuple[int, int]:
        if not self.exists:
            return 0, 0
        in_catalog = set(self.catalog.chunk_ids())
        try:
            in_store = set(self.store.ids().tolist())
        except StoreError as e:  # a torn or truncated vectors file (a power loss): the vectors are derived
            if not fix:
                raise
            log.warning("kb: %s: rebuilding it", e)
            self.store_class.drop(self.folder, self.catalog.meta().get("vectors"))
            self.swap_store(None)  # the torn one is not saved back: a new one opens
            in_store = set(self.store.ids().tolist())
        extra = in_store - in_catalog
        missing = sorted(in_catalog - in_store)
        if not fix:
            return len(extra), len(missing)
        swept = self.store_class.sweep(self.folder, self.catalog.meta().get("vectors"))
        if swept:
            log.info("kb: removed what an interrupted write left: %s", ", ".join(swept))
        if extra:
            self.store.delete(_ids(extra))
        for ids, vectors in reembed(missing) if missing else ():
            self.store.add(_ids(ids), vectors, None)
        if extra or missing:
            self.store.save()
        return len(extra), len(missing)

    def replace_vectors(self, batches: Iterable[tuple[list[int], np.ndarray]], build: dict[str, str], *,
                        switched: Switched | None = None) -> None:
        """Write every vector into a new store generation, then switch the catalog to it in one
        transaction: an interruption leaves the old vectors in use."""
        # The old generation is never opened: a corrupt vectors file is what a reindex may be mending.
        old_name = self.catalog.meta().get("vectors")
        name = self.store_class.generation()
        store = self.store_class.open(self.settings, self.folder, int(build["dimensions"]), name)
        for ids, vectors in batches:
            store.add(_ids(ids), vectors, None)
        store.save()
        failpoint("reindex.after_save")
        self.catalog.set_meta(**build, vectors=name)
        failpoint("reindex.after_switch")
        old = self.swap_store(store, then=switched)
        if old is not None:
            old.close()
        self.store_class.drop(self.folder, old_name)


def _ids(values: Iterable[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)
