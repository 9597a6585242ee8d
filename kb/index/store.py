"""The `VectorStore` seam: vectors keyed by chunk id; backends are chosen by name from settings."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from kb.config import Settings


class VectorStore(ABC):
    name: str

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


DEFAULT_VECTORS = "vectors.faiss"
DEFAULT_LITE = "milvus.db"  # Milvus Lite folder in the KB dir when store=milvus has no store_uri


def open_store(settings: Settings, kb_dir: Path, dimensions: int | None, name: str | None = None) -> VectorStore:
    """The store of a knowledge base; `name` (kept in the catalog) tells which vectors file is live."""
    if settings.store == "faiss":
        from kb.index.faiss_store import FaissStore

        return FaissStore(kb_dir / (name or DEFAULT_VECTORS), dimensions)
    if settings.store == "milvus":
        from kb.index.milvus_store import MilvusStore

        # No URI: an embedded Milvus Lite folder inside the knowledge base.
        return MilvusStore(settings.store_uri or str(kb_dir / DEFAULT_LITE), settings.collection, dimensions,
                           token=settings.store_token, db_name=settings.store_db)
    raise ConfigError(f"unknown store {settings.store!r} (known: faiss, milvus)")
