"""Storage: the SQLite catalog, vector stores (one per file, chosen by name), and the `Index` that
keeps them in agreement, local (`LocalIndex`) or shared by a team (`TeamIndex`).

Stores come from the `STORES` registry (entry-point group `kb.stores`); a store whose class says
`shared = True` holds the whole knowledge base and is opened as a `TeamIndex`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kb.index.base import CATALOG_FILE, STORES, DocumentRecord, Index, VectorStore, View

if TYPE_CHECKING:
    from kb.config import Settings

__all__ = ["CATALOG_FILE", "STORES", "DocumentRecord", "Index", "VectorStore", "View", "open_index"]


def open_index(folder: Path, settings: Settings) -> Index:
    """The index of the knowledge base in `folder` (nothing is opened until used)."""
    # lazy: both import numpy, which `kb --help` and the other commands that open no index never need
    from kb.index.local import LocalIndex
    from kb.index.team import TeamIndex

    store_class = STORES.get(settings.store)
    if store_class.shared:
        return TeamIndex(folder, settings)
    return LocalIndex(folder, settings)
