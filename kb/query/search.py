"""Retrieval: a query in, ranked `Hit`s with their citations out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.query.filters import Filters
from kb.types import Hit

if TYPE_CHECKING:
    from kb.index.catalog import Catalog
    from kb.index.embedder import Embedder
    from kb.index.store import VectorStore


def dense_search(
    catalog: Catalog, store: VectorStore, embedder: Embedder, query: str, k: int, filters: Filters | None = None
) -> list[Hit]:
    allowed = None
    if filters is not None and not filters.is_empty():
        import numpy as np

        allowed = np.asarray(catalog.filtered_ids(filters), dtype=np.int64)
    vector = embedder.embed_query(query)
    # Ask for a few more than k: vectors of chunks deleted since the store was last saved are skipped.
    pairs = store.search(vector, k + 8, allowed_ids=allowed)
    rows = catalog.chunks(i for i, _ in pairs)
    hits: list[Hit] = []
    for chunk_id, score in pairs:
        row = rows.get(chunk_id)
        if row is None:
            continue
        hits.append(hit_from_row(row, len(hits) + 1, score))
        if len(hits) == k:
            break
    return hits


def hit_from_row(row: dict[str, object], rank: int, score: float) -> Hit:
    return Hit(
        rank=rank,
        score=round(float(score), 6),
        chunk_id=int(row["id"]),  # type: ignore[arg-type]
        source=str(row["source"]),
        page=row["page_start"],  # type: ignore[arg-type]
        page_end=row["page_end"],  # type: ignore[arg-type]
        section=row["section"],  # type: ignore[arg-type]
        text=str(row["text"]),
        file_type=str(row["file_type"]),
        doc_id=int(row["doc_id"]),  # type: ignore[arg-type]
        char_start=int(row["char_start"]),  # type: ignore[arg-type]
        char_end=int(row["char_end"]),  # type: ignore[arg-type]
    )
