"""Retrieval: a query in, ranked `Hit`s with their citations out.

Three modes. `dense`: nearest chunk vectors. `keyword`: BM25 over the catalog's FTS5 index.
`hybrid` (default): both candidate lists fused (`kb.query.fusion`), plus a document-level match
(title and path; whole-document BM25) and a bonus for chunks holding the query's rare figures or
quoted phrases. A query naming an alias the documents define ("NnW", a ticker, "IBC") is searched
by keyword with the name it stands for beside it (`kb.query.aliases`). In every mode filters apply
inside the retrieval, duplicate passages (the same text in two files) become one hit listing the
other sources, no page fills more than `per_page` of the top k, and an optional cross-encoder
reorders the best candidates. Each hit comes with its
snippet (`kb.query.snippet`). Measurements and the reasons for each default: benchmarks/RETRIEVAL.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kb.config import check_mode
from kb.filters import Filters
from kb.query import aliases, facets, fusion, names, snippet
from kb.query.fts import match_expression, quote
from kb.question import Question, read
from kb.types import Hit

if TYPE_CHECKING:
    import numpy as np

    from kb.embed.base import Embedder
    from kb.index.base import VectorStore
    from kb.index.catalog import Catalog
    from kb.query.rerank import Reranker


@dataclass(frozen=True)
class Tuning:
    """The knobs of hybrid retrieval; defaults measured as benchmarks/RETRIEVAL.md tells."""

    depth: int = 200  # candidates taken from each retriever before fusion
    dense_weight: float = 1.0
    keyword_weight: float = 0.3  # BM25 on chunks; at equal weight hybrid loses to dense alone
    title_weight: float = 0.5  # the query's BM25 match on each document's title and file path
    document_weight: float = 0.5  # BM25 of whole documents (see fusion.document_bm25)
    literal_weight: float = 1.0  # bonus for holding the query's rare figures and "quoted phrases"
    literal_rare: int = 50  # a literal in more chunks than this is no clue (a year in dated reports)
    per_page: int = 1  # most hits one page may take in the top k (the rest move down): the top k are k pages
    rerank_depth: int = 30  # candidates a cross-encoder rescoring looks at
    latest_weight: float = 0.5  # "latest", "most recent": the newest document of those the question is about
    period_weight: float = 0.5  # a year or date the question names: documents of that date (kb.query.facets)
    period_near: float = 0.7  # "the documents it is about": a word match this close to the best one's
    # The documents about what the question names ("Acme's", "Elyria"): as much as the keyword list can
    # add, less than the dense list, so a passage that answers still outranks one that only names it.
    name_weight: float = 0.3


DEFAULT_TUNING = Tuning()


def search(
    catalog: Catalog,
    store: VectorStore,
    embedder: Embedder,
    query: str,
    k: int,
    *,
    filters: Filters | None = None,
    mode: str = "hybrid",
    reranker: Reranker | None = None,
    tuning: Tuning = DEFAULT_TUNING,
) -> list[Hit]:
    """The `k` best passages for `query` among those that pass `filters`."""
    mode = check_mode(mode)
    filters = filters if filters is not None and not filters.is_empty() else None
    wanted = max(k, tuning.rerank_depth if reranker else 0)
    depth = max(tuning.depth, 2 * wanted + 8)
    counted: dict[str, dict[int, int]] = {}  # the chunks per document holding each term, for the snippets too
    scored = candidates(catalog, store, embedder, query, depth, filters=filters, mode=mode, tuning=tuning,
                        counted=counted)
    hits = arrange(_with_rows(catalog, scored, 2 * wanted + 16), wanted, per_page=tuning.per_page)
    asked = asked_in(catalog, query) if mode == "hybrid" else None  # "NnW and Globex": Nash & Wells is one side
    if asked is not None and (len(asked.names) >= 2 or len(asked.periods) >= 2) and len(hits) > 1:
        doc_of = catalog.chunk_documents(i for i, _ in scored)
        sides = facets.compared(catalog, asked, set(doc_of.values()))
        if sides:  # each side's best passages, however far down the ranking they are
            quota = wanted // len(sides)
            best = [arrange(_with_rows(catalog, [(i, v) for i, v in scored if doc_of.get(i) in docs], 2 * quota + 16),
                            quota, per_page=tuning.per_page) for docs in sides]
            hits = share(hits, best, wanted, per_page=tuning.per_page)
    if reranker is not None and hits:
        hits = reranker.rerank(query, hits)
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
    hits = hits[:k]
    snippet.annotate(hits, query, catalog, counted={t: sum(per_doc.values()) for t, per_doc in counted.items()})
    return hits


def asked_in(catalog: Catalog, query: str) -> Question:
    """`query` read as a question of this folder: each alias with its name spelled out beside it
    (`kb.query.aliases`), and the words the documents write as names taken for names
    (`kb.query.names`): "brackwater operating income" asks about Brackwater as "Brackwater's operating
    income" does."""
    # the names are looked for as the question is typed: its aliases' names spelled out add capitals
    return read(aliases.spelled(catalog, query), names.written(catalog, query))


def candidates(
    catalog: Catalog,
    store: VectorStore,
    embedder: Embedder,
    query: str,
    depth: int,
    *,
    filters: Filters | None = None,
    mode: str = "hybrid",
    tuning: Tuning = DEFAULT_TUNING,
    counted: dict[str, dict[int, int]] | None = None,
) -> list[tuple[int, float]]:
    """(chunk id, score) pairs, best first, before duplicates and page crowding are handled.
    `counted` receives what the document-level match counted: for each term, the chunks of each
    document that hold it."""
    dense: list[tuple[int, float]] = []
    keyword: list[tuple[int, float]] = []
    # "NnW sales": the words are looked for as "NnW (Nash & Wells) sales", which lifts the
    # documents of Nash & Wells; the embedding is of the question as asked, so the name does not
    # pull its pages that say little but the name (a cover, a list of subsidiaries).
    spelled = aliases.spelled(catalog, query)
    match = match_expression(spelled)
    if mode in ("dense", "hybrid"):
        dense = dense_candidates(catalog, store, embedder, query, depth, filters)
    if mode in ("keyword", "hybrid") and match:
        if store.native_keyword:  # e.g. Milvus: its own BM25 over the chunks it holds
            keyword = store.keyword_search(spelled, depth, filters, catalog)
        else:
            keyword = catalog.keyword_search(match, depth, filters)
    if mode == "dense":
        return dense
    if mode == "keyword":
        return keyword
    question = asked_in(catalog, query)
    bonus = _literal_bonus(catalog, question, filters, tuning)
    ids = {i for i, _ in dense} | {i for i, _ in keyword} | set(bonus)
    for i, b in _document_prior(catalog, question, match, ids, tuning, counted).items():
        bonus[i] = bonus.get(i, 0.0) + b
    return fusion.fuse([(dense, tuning.dense_weight), (keyword, tuning.keyword_weight)], prior=bonus)


def _literal_bonus(catalog: Catalog, question: Question, filters: Filters | None, tuning: Tuning) -> dict[int, float]:
    """`literal_weight` x the share of the query's rare literals each chunk holds.

    A figure like 40,665 means little to an embedding model and is one weak term among many to
    BM25; found in a handful of chunks, it is the best clue there is.
    """
    if not tuning.literal_weight:
        return {}
    found: list[list[int]] = []
    for literal in question.literals:
        holding = catalog.keyword_search(quote(literal), tuning.literal_rare + 1, filters)
        if 0 < len(holding) <= tuning.literal_rare:
            found.append([i for i, _ in holding])
    bonus: dict[int, float] = {}
    for ids in found:
        for i in ids:
            bonus[i] = bonus.get(i, 0.0) + tuning.literal_weight / len(found)
    return bonus


def _document_prior(catalog: Catalog, question: Question, match: str | None, ids: set[int], tuning: Tuning,
                    counted: dict[str, dict[int, int]] | None = None) -> dict[int, float]:
    """A per-chunk bonus from how well the chunk's whole document matches the query.

    Chunks of a series of like documents all look alike across years and authors; the words that
    tell them apart ("2023 edition", a product's name) sit in the file's title or are spread over
    the whole document. What the question names lifts the documents about it by a fixed amount,
    which unrelated files beside them do not move (the BM25 parts move with the folder's word
    statistics).
    """
    if not match or not ids or not (tuning.title_weight or tuning.document_weight):
        return {}
    doc_of = catalog.chunk_documents(ids)
    prior: dict[int, float] = {}
    parts = []
    scores: dict[int, float] | None = None  # whole-document BM25: the period facets read it too
    if tuning.title_weight:
        parts.append(fusion.document_prior(doc_of, catalog.document_matches(match), tuning.title_weight))
    if tuning.document_weight:
        term_chunks = catalog.document_term_chunks(question.terms)
        if counted is not None:
            counted.update(term_chunks)
        scores = fusion.document_bm25(term_chunks, catalog.document_sizes())
        parts.append(fusion.document_prior(doc_of, scores, tuning.document_weight, floor=None))
    if tuning.name_weight and question.names:  # a fixed lift: how much it lifts owes nothing to the other files
        subject = facets.naming(catalog, question.names)
        parts.append({i: tuning.name_weight for i, d in doc_of.items() if d in subject})
    for part in parts:
        for i, bonus in part.items():
            prior[i] = prior.get(i, 0.0) + bonus
    for i, bonus in facets.chunk_bonus(catalog, question, doc_of, scores, latest_weight=tuning.latest_weight,
                                       period_weight=tuning.period_weight, near=tuning.period_near).items():
        prior[i] = prior.get(i, 0.0) + bonus
    return prior


def dense_candidates(
    catalog: Catalog, store: VectorStore, embedder: Embedder, query: str, depth: int, filters: Filters | None = None
) -> list[tuple[int, float]]:
    vector = embedder.embed_query(query)
    if filters is not None and not filters.is_empty() and store.native_filters:
        return store.search_filtered(vector, depth, filters, catalog)  # e.g. Milvus: a boolean expression
    allowed = _allowed(catalog, filters)
    return store.search(vector, depth, allowed_ids=allowed)


def _allowed(catalog: Catalog, filters: Filters | None) -> np.ndarray | None:
    if filters is None or filters.is_empty():
        return None
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np

    return np.asarray(catalog.filtered_ids(filters), dtype=np.int64)


def _with_rows(catalog: Catalog, scored: Sequence[tuple[int, float]], batch: int) -> Iterator[tuple[dict[str, Any], float]]:
    """(catalog row, score) in score order, read a batch at a time: `arrange` usually needs few.

    Ids without a row are skipped: vectors of chunks deleted since the store was last saved.
    """
    for start in range(0, len(scored), batch):
        part = scored[start : start + batch]
        rows = catalog.chunks(i for i, _ in part)
        for i, score in part:
            if i in rows:
                yield rows[i], score


def share(hits: list[Hit], sides: Sequence[list[Hit]], k: int, *, per_page: int = 1) -> list[Hit]:
    """The top `k` shared between the sides a question compares (`kb.query.facets.compared`): each
    side's best passages (`sides`, k // sides of them each), then `hits` in rank order for what is
    left of the k, in score order. As in `arrange`, a page past its `per_page` share is not dropped,
    only moved after the others, so k hits still come back. Unchanged when a side has no passage."""
    if not all(sides):
        return hits[:k]
    kept, held = _spread(_once([*(h for side in sides for h in side), *hits]), k, per_page)
    kept.sort(key=lambda h: -h.score)
    return _ranked((kept + held)[:k])


# --- duplicates and page crowding -------------------------------------------------------------
_SPACE = re.compile(r"\s+")


def text_key(text: str) -> str:
    """Chunks whose text differs only in case and spacing are the same passage."""
    return _SPACE.sub(" ", text).strip().lower()


def arrange(ranked: Iterable[tuple[dict[str, Any], float]], k: int, *, per_page: int = 1) -> list[Hit]:
    """Hits in score order: one per distinct passage, at most `per_page` per page until k is reached.

    A passage whose text is already shown from another file adds that file to the hit's `also`.
    Hits over a page's quota are not dropped, only moved after the others, so k hits still come
    back from a single long page when nothing else matches.
    """
    by_text: dict[str, Hit] = {}

    def distinct() -> Iterator[Hit]:
        for row, score in ranked:
            key = text_key(str(row["text"]))
            first = by_text.get(key)
            if first is not None:
                if row["source"] != first.source and row["source"] not in first.also:
                    first.also.append(str(row["source"]))
                continue
            by_text[key] = hit = hit_from_row(row, 0, score)
            yield hit

    kept, held = _spread(distinct(), k, per_page)
    return _ranked((kept + held)[:k])


def _spread(hits: Iterable[Hit], k: int, per_page: int) -> tuple[list[Hit], list[Hit]]:
    """`hits` read in order until k are kept, at most `per_page` per page (0: no limit); those over a
    page's quota are held, to follow the kept ones, so k hits still come back from a single long page."""
    kept: list[Hit] = []
    held: list[Hit] = []
    per: dict[tuple[int, int | None], int] = {}
    for hit in hits:
        page = (hit.doc_id, hit.page)
        if per_page > 0 and hit.page is not None and per.get(page, 0) >= per_page:
            held.append(hit)
            continue
        per[page] = per.get(page, 0) + 1
        kept.append(hit)
        if len(kept) >= k:
            break
    return kept, held


def _once(hits: Iterable[Hit]) -> Iterator[Hit]:
    """Each passage the first time it comes."""
    seen: set[int] = set()
    for hit in hits:
        if hit.chunk_id not in seen:
            seen.add(hit.chunk_id)
            yield hit


def _ranked(hits: list[Hit]) -> list[Hit]:
    for rank, hit in enumerate(hits, start=1):
        hit.rank = rank
    return hits


def hit_from_row(row: dict[str, object], rank: int, score: float) -> Hit:
    return Hit(
        rank=rank,
        score=round(float(score), 6),
        chunk_id=int(row["id"]),  # type: ignore[call-overload]
        source=str(row["source"]),
        page=row["page_start"],  # type: ignore[arg-type]
        page_end=row["page_end"],  # type: ignore[arg-type]
        section=row["section"],  # type: ignore[arg-type]
        text=str(row["text"]),
        file_type=str(row["file_type"]),
        doc_id=int(row["doc_id"]),  # type: ignore[call-overload]
        char_start=int(row["char_start"]),  # type: ignore[call-overload]
        char_end=int(row["char_end"]),  # type: ignore[call-overload]
        unit=str(row.get("unit") or "page"),
    )
