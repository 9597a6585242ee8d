"""The passages an answer is written from: a wider net than the reader asked for, narrowed to the
documents about the question's names and periods, or to the latest one when it asks for the latest,
plus the passages of the best document that hold the question's own words; and what the
knowledge base does not hold of those names and periods at all.

A question about Tesla over a folder that never mentions Tesla must be answered "not found", not
with the nearest passage about another company: `ground` says what is missing, in words a
reader can check ("no document mentions Tesla").
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.dates import name_period
from kb.errors import KBError
from kb.filters import Filters, glob_escape
from kb.question import Question, Term
from kb.types import Hit

if TYPE_CHECKING:
    from kb.embed.base import Embedder

Search = Callable[..., list[Hit]]  # `KnowledgeBase.search`, or a reader's: (query, k=, filters=, mode=) -> hits

KEYWORD_EXTRA = 3  # keyword passages of the best document added to the answer's sources
WIDE_K = 15  # passages retrieved before narrowing to the documents about the question's names
LOOKUP_K = 50  # passages the keyword index is asked for, per name or period


@dataclass
class Grounding:
    """What the knowledge base holds of a question's names and periods."""

    missing: list[Term]  # named by the question, mentioned by no passage
    focused: list[Hit]  # the retrieved passages of the documents that hold the most of the rest
    latest: str | None = None  # the question asks for the latest: the source of the most recent document about it


@dataclass
class Passages:
    """What an answer is written from: the hits, each one's cosine to the question, and the grounding."""

    hits: list[Hit]
    relevance: list[float]
    grounding: Grounding


def retrieve(search: Search, embedder: Embedder, question: Question, k: int, filters: Filters | None) -> Passages:
    """The passages to answer `question` from (see the module's docstring)."""
    wide = search(question.text, k=max(k, min(3 * k, WIDE_K)), filters=filters)
    grounding = ground(question, wide, search, filters)
    focused = {h.chunk_id for h in grounding.focused}
    hits = [h for h in wide if h.chunk_id in focused][:k]
    if grounding.latest and not (filters and filters.path):
        within = dataclasses.replace(filters or Filters(), path=glob_escape(grounding.latest))
        hits = search(question.text, k=k, filters=within) or hits
    if hits and not (filters and filters.path):
        hits += _own_words(search, question, hits, filters)
    return Passages(hits, relevance(embedder, question.text, hits), grounding)


def _own_words(search: Search, question: Question, hits: list[Hit], filters: Filters | None) -> list[Hit]:
    """The passages of the best document that hold the question's own words (a statement's row
    "Total operating expenses"), which the fused ranking may leave below its discussion."""
    within = dataclasses.replace(filters or Filters(), path=glob_escape(hits[0].source))
    have = {h.chunk_id for h in hits}
    asked = question.topic
    extra = search(asked, k=KEYWORD_EXTRA, filters=within, mode="keyword") if asked.strip() else []
    return [h for h in extra if h.chunk_id not in have]


def relevance(embedder: Embedder, question: str, hits: Sequence[Hit]) -> list[float]:
    """Cosine of the question to each hit's text: a scale that holds whatever the search fused."""
    if not hits:
        return []
    q = embedder.embed_query(question)
    return [float(x) for x in embedder.embed_documents([h.text for h in hits]) @ q]


def ground(question: Question, hits: Sequence[Hit], search: Search, filters: Filters | None = None) -> Grounding:
    """Which of the question's names and periods no passage mentions, and which retrieved passages
    come from documents about them. A term belongs to a document when a retrieved passage of it
    mentions the term, or when the keyword index finds the term there often (at least a quarter as
    often as in the document that mentions it most): a report that names a customer once is not
    about that customer. `search`: `(query, k=, filters=, mode=) -> hits`."""
    missing: list[Term] = []
    docs_of: list[set[int]] = []
    sources = {h.doc_id: h.source for h in hits}
    for term in question.about:
        try:
            found = search(term.query, k=LOOKUP_K, filters=filters, mode="keyword")
        except KBError:  # a lookup that failed says nothing: neither missing nor a focus
            continue
        seen = {h.chunk_id: h for h in [*hits, *found]}.values()
        counts = Counter(h.doc_id for h in seen if term.found_in(_text(h)))
        sources.update((h.doc_id, h.source) for h in found)
        if not counts:
            missing.append(term)
            continue
        top = max(counts.values())
        docs_of.append({d for d, n in counts.items() if n * 4 >= top})
    if missing:
        return Grounding(missing, list(hits))
    focused = list(hits)
    if docs_of:
        coverage = [sum(h.doc_id in docs for docs in docs_of) for h in hits]
        best = max(coverage)
        focused = [h for h, c in zip(hits, coverage) if c == best] if best else focused
    latest = None
    if question.latest and not question.periods:
        # "the latest report": the most recent document about every name the question gives, by the
        # period its own name says ("2023 Q3 ...", "..._2023Q2_...", "report-2024-06"); with no such
        # names, the first retrieved of them: the search ranked the newest by its own date first
        about = set.intersection(*docs_of) if docs_of else {h.doc_id for h in focused}
        dated = [(period, d) for d in about if d in sources and (period := name_period(sources[d])) is not None]
        if dated:
            latest = sources[max(dated)[1]]
        else:
            latest = next((h.source for h in focused if h.doc_id in about), None)
    return Grounding([], focused, latest)


def _text(hit: Hit) -> str:
    # The file name counts: "2023 Q3 Acme.pdf" says which quarter its passages are about.
    return f"{hit.source}\n{hit.section or ''}\n{hit.text}"
