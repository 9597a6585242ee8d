"""The `Reranker` seam: rescore the best candidates with a model that reads query and passage together.

Backends: `kb.query.rerank` (sentence-transformers' `CrossEncoder`, and the factory `open_reranker`),
`kb.query.rerank_onnx` (ONNX Runtime).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from kb.errors import EmbedderError
from kb.types import Hit


class Reranker(ABC):
    """Scores (query, passage) pairs; higher is better. Batching and reordering live here."""

    name: str = "reranker"

    @abstractmethod
    def score(self, query: str, texts: list[str]) -> list[float]: ...

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """`hits` reordered by this model's score, which replaces each hit's `score`."""
        if not hits:
            return hits
        scores = self.score(query, [h.text for h in hits])
        if len(scores) != len(hits):
            raise EmbedderError(f"reranker {self.name!r} returned {len(scores)} scores for {len(hits)} passages")
        for hit, s in zip(hits, scores):
            hit.score = round(float(s), 6)
        return sorted(hits, key=lambda h: -h.score)  # stable: ties keep the retrieval order
