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
        """Insert vectors under int64 chunk ids (ids already present are replaced)."""

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


def open_store(settings: Settings, kb_dir: Path, dimensions: int | None) -> VectorStore:
    if settings.store == "faiss":
        from kb.index.faiss_store import FaissStore

        return FaissStore(kb_dir / "vectors.faiss", dimensions)
    raise ConfigError(f"unknown store {settings.store!r} (known: faiss)")
