"""The periods a question names ("the latest", "in 2022", "the quarter ended July 1, 2023"), matched
against each candidate document's own date (metadata `date`, read at ingest by kb.ingest.facets).

A series of like documents (one report per quarter, one protocol per version) look alike chunk for
chunk; what tells them apart for such a question is the date each was written for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kb.dates import FISCAL, Period
from kb.query import fusion
from kb.question import Name, Question

# About a name: mentioned in at least a quarter as many chunks as by the document that mentions it most
# (the share `kb.answer.retrieve.ground` uses): a filing that names a customer in passing is not about it.
ABOUT_SHARE = 0.25

if TYPE_CHECKING:
    from kb.index.catalog import Catalog


def chunk_bonus(catalog: Catalog, question: Question, doc_of: Mapping[int, int], scores: Mapping[int, float] | None,
                *, latest_weight: float, period_weight: float, near: float) -> dict[int, float]:
    """Each candidate chunk's share of its document's `document_bonus` (`doc_of`: the chunks'
    documents; `scores`: the question's whole-document BM25 where the caller has it already).
    Nothing, and no catalog read, for a question that names no period.

    Which documents a question is about is told by its words' BM25 over whole documents
    (`fusion.document_bm25`), as a share of the best document's: not min-max over the candidates,
    which in a folder of one series would push its least matching report to nothing. For "the
    latest", a question that names something ("Acme's most recent report") is about the documents
    about its names (`naming`): a newer deck that shares its other words is another subject's.
    """
    if not (latest_weight or period_weight) or not (question.latest or question.periods) or not doc_of:
        return {}
    if scores is None:
        scores = fusion.document_bm25(catalog.document_term_chunks(question.terms), catalog.document_sizes())
    relevance = {doc: scores.get(doc, 0.0) for doc in set(doc_of.values())}
    if question.latest and question.names:
        subject = naming(catalog, question.names)
        relevance = {doc: r if doc in subject else 0.0 for doc, r in relevance.items()}
    bonus = document_bonus(question, catalog.document_dates(), relevance, latest_weight=latest_weight,
                           period_weight=period_weight, near=near, named=catalog.document_names(),
                           quarters=catalog.document_quarters())
    return {chunk: bonus[doc] for chunk, doc in doc_of.items() if doc in bonus}


def naming(catalog: Catalog, names: Iterable[Name]) -> set[int]:
    """The documents about `names` (`ABOUT_SHARE`): those about all of them, or where none is, those
    about the most of them ("Elyria, Ohio" of reports that write "Elyria, OH")."""
    held: dict[int, int] = {}
    for name in names:
        per_word = list(catalog.document_term_chunks(name.words).values())
        both = set.intersection(*map(set, per_word)) if per_word else set()
        counts = {d: min(c[d] for c in per_word) for d in both}  # chunks holding its rarest word
        top = max(counts.values(), default=0)
        for doc, n in counts.items():
            if n >= ABOUT_SHARE * top:
                held[doc] = held.get(doc, 0) + 1
    most = max(held.values(), default=0)
    return {doc for doc, n in held.items() if n == most}


def document_bonus(asked: Question, dated: Mapping[int, str], relevance: Mapping[int, float], *,
                   latest_weight: float, period_weight: float, near: float,
                   named: Mapping[int, str] | None = None,
                   quarters: Mapping[int, tuple[str, str]] | None = None) -> dict[int, float]:
    """A bonus for each candidate document (keys of `relevance`, its match to the question's words).

    `latest`: the newest of the documents whose relevance is within `near` (a fraction) of the
    best one's gets `latest_weight`: "the latest report" of whatever the question names, not the
    newest document in the knowledge base. Named dates, quarters and years: `period_weight` x how
    well the document matches (`_matching`), mapped so the best match gets the weight. `named`: the
    documents' file names, which name a report's own period ("2023 Q1 Acme.pdf", "ACME_2020_annual");
    `quarters`: the quarter each quarterly report's text says it is about (`Catalog.document_quarters`).
    """
    bonus: dict[int, float] = {}
    if asked.latest and latest_weight:
        for doc, b in _newest(dated, relevance, near, latest_weight).items():
            bonus[doc] = bonus.get(doc, 0.0) + b
    if (asked.dates or asked.years) and period_weight:
        for doc, b in _matching(asked, dated, relevance, period_weight, named or {}, quarters or {}).items():
            bonus[doc] = bonus.get(doc, 0.0) + b
    return bonus


def _newest(dated: Mapping[int, str], relevance: Mapping[int, float], near: float, weight: float) -> dict[int, float]:
    best = max(relevance.values(), default=0.0)
    if best <= 0:
        return {}  # nothing tells which series the question is about
    close = {d: dated[d][:10] for d, r in relevance.items() if r >= near * best and d in dated}
    if not close:
        return {}
    newest = max(close.values())
    return {d: weight for d, when in close.items() if when == newest}


def _matching(asked: Question, dated: Mapping[int, str], relevance: Mapping[int, float], weight: float,
              named: Mapping[int, str], reports: Mapping[int, tuple[str, str]] | None = None) -> dict[int, float]:
    """How well each document matches the periods asked: its date the very day, or its file name that
    very quarter, 1; its date or its file name that year, 1/2.

    A report's file name says which period it reports in the report's own calendar: "2023 Q1" of a
    company whose fiscal year starts in July is dated September 2022, and a fiscal year 2020 that
    ends in January is dated 2021. Its date alone would send "Q1 2023" to the report dated in
    calendar 2023, another quarter of the same company. A report whose file name names no quarter goes
    by the quarter its text says it is about (`reports`): a fiscal one asked ("Q2 of FY2024") is its
    fiscal quarter, another its quarter."""
    quarters = [p for p in asked.periods if p.quarter]
    years = set(asked.years) | {d[:4] for d in asked.dates}
    labels = {(f"{p.year}-Q{p.quarter}", FISCAL.search(p.text) is not None) for p in quarters}
    around = [Period(f"Q{n} {y}", y, n) for y in {p.year + d for p in quarters for d in (-1, 0, 1)} for n in range(1, 5)]
    score: dict[int, float] = {}
    for doc in relevance:
        when, name = dated.get(doc, ""), named.get(doc, "")
        own, fiscal = (reports or {}).get(doc, ("", ""))
        if own and any(p.found_in(name) for p in around):
            own = fiscal = ""  # its file name names its quarter: that is the one it goes by
        if (when[:10] in asked.dates or any(p.found_in(name) for p in quarters)
                or any(label == ((fiscal or own) if is_fiscal else own) for label, is_fiscal in labels)):
            score[doc] = 1.0
        elif when[:4] in years or any(Period(y, int(y)).found_in(name) for y in years):
            score[doc] = 0.5
    best = max(score.values(), default=0.0)
    return {d: weight * s / best for d, s in score.items()} if best else {}


def compared(catalog: Catalog, question: Question, candidates: set[int]) -> list[set[int]]:
    """The sides of a question that compares subjects ("Quillon's and Arden's gross margins") or periods
    ("Q1 2023 against Q3 2023"): each side's documents, two or more sides that share none; [] for a
    question about one subject and one period. Names whose documents overlap are one side ("Zephyr's
    ZCloud"); the subjects are read before the periods, as a comparison of two companies' same quarter
    is about the companies. `candidates`: the documents the search found, the only ones looked at."""
    names = [n for n, at in zip(question.names, _places(question.text, [n.text for n in question.names]))
             if at is not None]
    if len(names) >= 2 and _compares(question.text, [n.text for n in names]):
        sides = _apart([naming(catalog, [name]) & candidates for name in names])
        if len(sides) >= 2:
            return sides
    if len(question.periods) >= 2 and _compares(question.text, [p.text for p in question.periods]):
        dated, named = catalog.document_dates(), catalog.document_names()
        about = naming(catalog, question.names) & candidates if question.names else set()
        per_period = []
        for period in question.periods:  # the documents that match it best: its quarter's, else its year's,
            # among those about what the question names ("Borealis revenue Q1 against Q2")
            score = _matching(Question(period.text, (), (period,), False), dated,
                              dict.fromkeys(about or candidates, 1.0), 1.0, named, catalog.document_quarters())
            per_period.append({d for d, s in score.items() if s == 1.0})
        sides = _apart(per_period)
        if len(sides) >= 2:
            return sides
    return []


# A question that compares says so ("compare", "versus", "against", "between", "difference"), or joins the
# things it compares ("Quillon's and Arden's", "Q1 2023 or Q3 2023", "Q1 to Q3"); "How much did Acme pay
# Globex?" names two companies and compares nothing.
_COMPARING = re.compile(r"(?i)\b(?:compar\w*|versus|vs\.?|against|between|differ\w*|relative\s+to)\b")
_JOINING = re.compile(r"(?i)\band\b|\bor\b|&|,|/|\bto\b|\bwith\b")
JOIN_WORDS = 6  # a joiner further than this many words from both things joins something else


def _compares(text: str, terms: list[str]) -> bool:
    if _COMPARING.search(text):
        return True
    places = [(at, at + len(t)) for t, at in zip(terms, _places(text, terms)) if at is not None]
    places.sort()
    gaps = [text[end:start] for (_, end), (start, _) in zip(places, places[1:])]
    return any(len(gap.split()) <= JOIN_WORDS and _JOINING.search(gap) for gap in gaps)


def _places(text: str, terms: list[str]) -> list[int | None]:
    """Where each term is first written in `text`, after the one before it where it can be."""
    out: list[int | None] = []
    start = 0
    for term in terms:
        at = text.find(term, start)
        if at < 0:
            at = text.find(term)
        out.append(at if at >= 0 else None)
        if at >= 0:
            start = at + len(term)
    return out


def _apart(sets: list[set[int]]) -> list[set[int]]:
    """Non-empty sets, those that overlap merged; more than one left means distinct sides."""
    merged: list[set[int]] = []
    for docs in filter(None, sets):
        overlapping = [m for m in merged if m & docs]
        for m in overlapping:
            merged.remove(m)
            docs = docs | m
        merged.append(set(docs))
    return merged
