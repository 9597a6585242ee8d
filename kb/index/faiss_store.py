"""FAISS vector store: exact inner product over normalised vectors, ids mapped to chunk ids.

The index file is replaced atomically (write to a temporary file, fsync, rename), so a crash
or a full disk during a save leaves the previous index usable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kb.errors import DependencyError, StoreError
from kb.index.store import VectorStore


def _faiss():  # type: ignore[no-untyped-def]
    try:
        import faiss
    except ImportError as e:
        raise DependencyError('faiss is not available: pip install faiss-cpu (or the "gpu" extra)') from e
    return faiss


class FaissStore(VectorStore):
    name = "faiss"

    def __init__(self, path: Path, dimensions: int | None):
        self.path = path
        self.faiss = _faiss()
        self._dirty = False
        if path.exists():
            try:
                self.index = self.faiss.read_index(str(path))
            except RuntimeError as e:
                raise StoreError(f"{path}: unreadable FAISS index: {str(e).splitlines()[0]}") from e
            if dimensions is not None and self.index.d != dimensions:
                raise StoreError(f"{path}: index has {self.index.d} dimensions, the model gives {dimensions}")
        elif dimensions is not None:
            self.index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dimensions))
        else:
            self.index = None

    def _require(self, dimensions: int) -> Any:
        if self.index is None:
            self.index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dimensions))
        return self.index

    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict[str, Any]] | None = None) -> None:
        if len(ids) == 0:
            return
        index = self._require(vectors.shape[1])
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        index.remove_ids(self.faiss.IDSelectorBatch(ids))
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._dirty = True

    def search(self, vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        if self.index is None or self.index.ntotal == 0 or k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            params = self.faiss.SearchParameters(sel=self.faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
        scores, ids = self.index.search(query, min(k, self.index.ntotal), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def delete(self, ids: np.ndarray) -> None:
        if self.index is None or len(ids) == 0:
            return
        self.index.remove_ids(self.faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        self._dirty = True

    def count(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        if self.index is None:
            return np.zeros(0, dtype=np.int64)
        return self.faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def save(self) -> None:
        if not self._dirty or self.index is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.faiss.write_index(self.index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except (RuntimeError, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"could not save {self.path}: {e}") from e
        self._dirty = False
