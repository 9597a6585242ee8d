"""Fusing ranked lists: a weighted sum of min-max normalised scores, and document-level priors.

A candidate missing from one list scores 0 there, which is where min-max puts that list's
weakest member: absent means "no better than the last one retrieved".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Ranked = Sequence[tuple[int, float]]  # (id, score), best first


def normalise(ranked: Ranked) -> dict[int, float]:
    """Scores mapped onto [0, 1] within the list (all 1.0 when they are equal)."""
    if not ranked:
        return {}
    scores = [s for _, s in ranked]
    lo, hi = min(scores), max(scores)
    span = hi - lo
    return {i: (s - lo) / span if span > 0 else 1.0 for i, s in ranked}


def fuse(lists: Sequence[tuple[Ranked, float]], prior: Mapping[int, float] | None = None) -> list[tuple[int, float]]:
    """Weighted sum of normalised scores over every (list, weight), plus a per-id bonus (`prior`),
    which may also bring in ids that no list holds."""
    total: dict[int, float] = {}
    for ranked, weight in lists:
        if weight == 0:
            continue
        for i, s in normalise(ranked).items():
            total[i] = total.get(i, 0.0) + weight * s
    for i, bonus in (prior or {}).items():
        total[i] = total.get(i, 0.0) + bonus
    return sorted(total.items(), key=lambda p: (-p[1], p[0]))


def document_prior(
    doc_of: Mapping[int, int], doc_scores: Mapping[int, float], weight: float, *, floor: float | None = 0.0
) -> dict[int, float]:
    """Each chunk's share of its document's score: `weight` x that score mapped onto [0, 1].

    The map runs from `floor` (None: the lowest score) to the best score among the candidates'
    documents, so documents that filters keep out never set the scale; documents absent from
    `doc_scores` score 0.
    """
    if not doc_scores or weight == 0:
        return {}
    present = [doc_scores.get(d, 0.0) for d in set(doc_of.values())]
    if not present:
        return {}
    hi = max(present)
    lo = min(present) if floor is None else floor
    if hi <= lo:
        return {}
    return {chunk: weight * max(0.0, doc_scores.get(doc, 0.0) - lo) / (hi - lo) for chunk, doc in doc_of.items()}


def document_bm25(
    term_chunks: Mapping[str, Mapping[int, int]], sizes: Mapping[int, int], *, k1: float = 1.2, b: float = 0.75
) -> dict[int, float]:
    """BM25 of whole documents, where a term's frequency is the number of the document's chunks
    holding it and a document's length is its number of chunks.

    Words that name what a document is about (a company, a product, a drug) fill many of its
    chunks and few of anyone else's, while boilerplate fills everyone's: this score finds the
    right document even when the best chunk never names it.
    """
    if not sizes:
        return {}
    n = len(sizes)
    avg = sum(sizes.values()) / n or 1.0
    scores = dict.fromkeys(sizes, 0.0)
    for per_doc in term_chunks.values():
        df = sum(1 for d in per_doc if d in sizes)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for doc, tf in per_doc.items():
            if doc in sizes:
                scores[doc] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * sizes[doc] / avg))
    return scores
