"""The passages an answer is written from: a wider net than the reader asked for, narrowed to the
documents about the question's names and periods, or to the latest one when it asks for the latest,
plus the passages of the best document that hold the question's own words; what the knowledge
base does not hold of those names and periods at all; and how much of what the question asks about
(its weighted content words) the passages hold.

A question about Tesla over a folder that never mentions Tesla must be answered "not found", not
with the nearest passage about another company: `ground` says what is missing, in words a
reader can check ("no document mentions Tesla"). The same for a subject in any case or position
("initech revenue"), for a name and a period each held but never together (Amazon's net sales in
2010 over its reports of 2017 and 2019) or a name held only by documents the passages are not from,
and for a passage about a neighbouring subject (another kind of leave): `_subject`.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import snowballstemmer

from kb.answer.extractive import _asked_words, _content_words, _table_row
from kb.answer.tables import row_label
from kb.dates import Period, dates, name_period, periods, quarter_ended
from kb.errors import KBError
from kb.filters import Filters, glob_escape
from kb.query.aliases import expand
from kb.query.search import Tuning
from kb.question import Name, Question, Term
from kb.types import Hit

if TYPE_CHECKING:
    from kb.embed.base import Embedder
    from kb.query.aliases import Alias

# `KnowledgeBase.search`, or a reader's: (query, k=, filters=, mode=, tuning=) -> hits
Search = Callable[..., list[Hit]]
# `KnowledgeBase.aliases`: the aliases a text names that the documents define ("NnW"), by the text's word
Aliases = Callable[[str], "Mapping[str, Alias]"]
# `KnowledgeBase.names`: the words of a text that the documents write as names, lower-cased
Names = Callable[[str], frozenset[str]]

# A word whose own embedding is at least this close to the question's carries its subject: measured
# on questions of our own, "tesla", "metformin", "mileage", "initech" score 0.42-0.79 against their
# questions, words that only frame one ("mentioned", "figures", "behind", "main") 0.04-0.29.
SUBJECT_MIN = 0.40
# A word carrying at least this share of the question's weight is what it is about; in a long
# question ("... inventory turnover ratio ... defined as ...") no one word is.
WEIGHTIEST_SHARE = 0.2
KEYWORD_EXTRA = 3  # keyword passages of the best document added to the answer's sources
ROW_LOOKUP_K = 20  # keyword passages of the best document searched for the table row the question names
# A row names what is asked when the share of the question's words its label holds plus the share of its
# label's words the question holds reach this: half both ways at least (two of four words each), never
# one shared word of a long label.
ROW_MATCH_MIN = 1.0
WIDE_K = 15  # passages retrieved before narrowing to the documents about the question's names
LOOKUP_K = 50  # passages the keyword index is asked for, per name or period
# The documents naming a name most, searched for the periods it is asked of when none found mentions both:
# enough for a company's reports of several years, few enough to stay a handful of keyword lookups.
PAIR_DOCS = 8
# A stem this long is a word's own start when a longer word begins with it ("fail" in "failover");
# shorter ones begin too many unrelated words ("pay" in "payable", "art" in "article").
PREFIX_MIN = 4


@dataclass
class Grounding:
    """What the knowledge base holds of a question's names and periods."""

    missing: list[Term]  # named by the question, mentioned by no passage
    focused: list[Hit]  # the retrieved passages of the documents that hold the most of the rest
    latest: str | None = None  # the question asks for the latest: the source of the most recent document about it
    otherwise: list[Term] = dataclasses.field(default_factory=list)  # names taken to be written otherwise
    # (name, period): each mentioned, but by no document together (Amazon's reports of 2017 and 2019, and
    # 2010 in another's)
    apart: list[tuple[Term, Term]] = dataclasses.field(default_factory=list)
    # the question's names, mentioned somewhere, but by no document of the passages kept
    unheld: list[Term] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Subject:
    """How much of what the question asks the passages hold: its content words (`Question.content`),
    each weighted by its cosine to the question (how much of the subject it carries)."""

    coverage: float = 1.0  # the largest weighted share of the words that one passage holds
    lacking: tuple[str, ...] = ()  # the subject words that passage lacks, weightiest first
    lacks_weightiest: bool = False  # that passage lacks the word that carries most of the subject
    unknown: tuple[str, ...] = ()  # subject words that no document holds at all


@dataclass
class Passages:
    """What an answer is written from: the hits, each one's cosine to the question, the grounding, and
    how much of the question's subject they hold."""

    hits: list[Hit]
    relevance: list[float]
    grounding: Grounding
    subject: Subject = Subject()


def retrieve(search: Search, embedder: Embedder, question: Question, k: int, filters: Filters | None,
             aliases: Aliases | None = None) -> Passages:
    """The passages to answer `question` from (see the module's docstring). `aliases`: what the
    question's words stand for in this knowledge base (see `ground`)."""
    wide = search(question.text, k=max(k, min(3 * k, WIDE_K)), filters=filters)
    known = aliases(question.text) if aliases else {}
    grounding = ground(question, wide, search, filters, known)
    focused = {h.chunk_id for h in grounding.focused}
    hits = [h for h in wide if h.chunk_id in focused][:k]
    if grounding.latest and not (filters and filters.path):
        within = dataclasses.replace(filters or Filters(), path=glob_escape(grounding.latest))
        hits = search(question.text, k=k, filters=within) or hits
    if hits and not (filters and filters.path):
        hits += _own_words(search, question, hits, filters)
    words = question.content
    # how near a passage is to the question as search read it: its aliases' names spelled out
    spelled = expand(question.text, list(known.values()))
    cosines = _cosines(embedder, spelled, [*(h.text for h in hits), *words]) if hits else []
    subject = _subject(search, question, cosines[len(hits):], hits, filters, known) if hits else Subject()
    return Passages(hits, cosines[:len(hits)], grounding, subject)


def _own_words(search: Search, question: Question, hits: list[Hit], filters: Filters | None) -> list[Hit]:
    """The passages of the best document that hold the question's own words (a statement's row
    "Total operating expenses"), which the fused ranking may leave below its discussion."""
    within = dataclasses.replace(filters or Filters(), path=glob_escape(hits[0].source))
    have = {h.chunk_id for h in hits}
    asked = question.topic
    if not asked.strip():
        return []
    extra = search(asked, k=KEYWORD_EXTRA, filters=within, mode="keyword")
    out = [h for h in extra if h.chunk_id not in have]
    have |= {h.chunk_id for h in out}
    # every passage holding the words, not one a page: a statement's rows run on across its page's passages
    rows = search(asked, k=ROW_LOOKUP_K, filters=within, mode="keyword", tuning=Tuning(per_page=ROW_LOOKUP_K))
    row = _named_row(question, [h for h in rows if h.chunk_id not in have])
    return [*out, row] if row else out


def _named_row(question: Question, hits: Sequence[Hit]) -> Hit | None:
    """Of `hits`, the one holding the table row the question names best ("Research and development
    2,410 2,105" for "how much did it spend on research and development"), if any names it well: a
    page of figures is seldom near a question for the embedder, and its many rows dilute the keyword rank."""
    words = _asked_words(question)
    if not words:
        return None
    best: tuple[float, int] = (ROW_MATCH_MIN, 0)
    found = None
    for h in hits:
        rows = [line for line in h.text.split("\n") if _table_row(line)]
        for line in rows:
            label = row_label(line)
            named = _content_words(label) if label else set()
            shared = len(words & named)
            if not named or shared < 2:
                continue
            # equal labels: the row of the fuller table, a statement rather than a note's few rows
            key = (shared / len(words) + shared / len(named), len(rows))
            if key > best:
                best, found = key, h
    return found


def _cosines(embedder: Embedder, question: str, texts: Sequence[str]) -> list[float]:
    """Cosine of the question to each text (the hits': a scale that holds whatever the search fused)."""
    if not texts:
        return []
    q = embedder.embed_query(question)
    return [float(x) for x in embedder.embed_documents(list(texts)) @ q]


def _subject(search: Search, question: Question, weights: Sequence[float], hits: Sequence[Hit],
             filters: Filters | None, aliases: Mapping[str, Alias] | None = None) -> Subject:
    """How much of the question's subject the passages hold: the best passage's weighted share of its
    content words, and the subject words that no document holds (looked up in the keyword index) nor
    spells out ("DPO"). A passage holds an alias ("qldy") where it holds the first word of a name it
    stands for ("Quillon")."""
    words = question.content
    weight = {w: max(0.0, c) for w, c in zip(words, weights)}
    total = sum(weight.values())
    if not total:
        return Subject()
    stems = {w: [_stem(w)] for w in words}
    for word, alias in (aliases or {}).items():
        if word.lower() in stems:
            stems[word.lower()] += [_word_stem(t[0]) for n in alias.names if (t := _TOKEN.findall(n.lower()))]
    texts = [_stems(_text(h)) for h in hits]
    held = [{w for w in words if any(_holds(t, s) for s in stems[w])} for t in texts]
    best = max(held, key=lambda have: sum(weight[w] for w in have))
    lacking = tuple(sorted((w for w in words if w not in best and weight[w] >= SUBJECT_MIN), key=lambda w: -weight[w]))
    anywhere = set().union(*held)
    written = "\n".join([question.text, *(h.text for h in hits)])  # the question may spell it out itself
    unknown: list[str] = []
    for word in words:
        # A made-up name means nothing to the embedder ("Initech": 0.28): its capital says it is one.
        subject = weight[word] >= SUBJECT_MIN or word in question.named
        if not subject or word in question.measures or word in anywhere or _spelled_out(word, question, written):
            continue
        try:
            if not search(word, k=1, filters=filters, mode="keyword"):
                unknown.append(word)
        except KBError:  # a lookup that failed says nothing
            continue
    # an abbreviation is not required to stand in the passage: it may be spelled out in other words
    weighed = [w for w in words if w not in question.abbreviations]
    weightiest = max(weighed, key=lambda w: weight[w]) if weighed else None
    lacks = weightiest is not None and weightiest not in best and weight[weightiest] >= WEIGHTIEST_SHARE * total
    return Subject(sum(weight[w] for w in best) / total, lacking, lacks, tuple(unknown))


# The stemmer of the catalog's keyword index (SQLite FTS5 `porter`). It keeps its state on the object
# while it stems, so threads (the server, MCP) take turns.
_PORTER = snowballstemmer.stemmer("porter")
_PORTER_LOCK = threading.Lock()
_TOKEN = re.compile(r"[^\W_]+(?:['’.&\-][^\W_]+)*")  # a word, with its inner marks ("Wi-Fi", "U.S.", "AT&T")
_MARK = re.compile(r"['’.&\-]")


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """The word's Porter stem, as the keyword index reads it: "days" and "day", "availability" and
    "available", "generally" and "general" are one word."""
    with _PORTER_LOCK:
        return _PORTER.stemWord(word)


def _word_stem(token: str) -> str:
    """The stem of a word written with inner marks, read as one word ("Quill-Rowe" as "quillrowe")."""
    return _stem("".join(_MARK.split(token)))


def _stems(text: str) -> list[str]:
    """The stems of `text`'s words, sorted: a word written with inner marks counts as its parts and as
    one word ("Wi-Fi" holds "wi", "fi" and "wifi")."""
    out: set[str] = set()
    for token in _TOKEN.findall(text.lower()):
        parts = _MARK.split(token)
        out.update(_stem(p) for p in parts)
        if len(parts) > 1:
            out.add(_word_stem(token))
    out.discard("")  # "s" of a possessive
    return sorted(out)


def _holds(stems: list[str], stem: str) -> bool:
    """Whether the sorted `stems` hold `stem` as a word, or as the start of one when it is long enough to
    be a word's own start ("fail" in "failover"), never inside one ("dress" is not in "address")."""
    i = bisect.bisect_left(stems, stem)
    if i == len(stems):
        return False
    return stems[i] == stem or (len(stem) >= PREFIX_MIN and stems[i].startswith(stem))


def _spelled_out(word: str, question: Question, text: str) -> bool:
    """Whether `word` is an abbreviation the question writes in capitals ("DPO", "EPS") and `text`
    spells out as the initials of consecutive words ("days payable outstanding"): no index holds
    that as a word. Lower-case words are not tried: too many runs of words start with "o", "h", "i"."""
    if word not in question.abbreviations:
        return False
    joined = r"\w*\W+(?:(?:and|of|&)\W+)?".join(word)  # "environmental, social and governance"
    return re.search(r"\b" + joined, text, re.IGNORECASE) is not None


def ground(question: Question, hits: Sequence[Hit], search: Search, filters: Filters | None = None,
           aliases: Mapping[str, Alias] | None = None) -> Grounding:
    """Which of the question's names and periods no passage mentions, and which retrieved passages
    come from documents about them. A term belongs to a document when its passages mention the term
    often (at least a quarter as often as the document that mentions it most: a report that names a
    customer once is not about that customer), and a question's one name to the document of the
    passage search ranks first when that passage mentions it (a one-page guide names its city once).
    The passages kept are those of the documents about the most terms. `search`: `(query, k=,
    filters=, mode=) -> hits`. `aliases`: the question's words that documents define as aliases
    ("NnW" of Nash & Wells): such a term is not missing, and belongs to the documents that define it
    as well as to those that mention it. Held, but not together (`_apart`: no document mentioning a
    name mentions a period), or not where the passages kept are (`_unheld`), the terms are reported
    too: either is a "not found"."""
    missing: list[Term] = []
    docs_of: list[set[int]] = []
    mentions: dict[Term, Counter[int]] = {}  # of each term held, how often the documents found mention it
    sources = {h.doc_id: h.source for h in hits}
    entities = sum(t.kind == "entity" for t in question.about)
    for term in question.about:
        try:
            found = search(term.query, k=LOOKUP_K, filters=filters, mode="keyword")
        except KBError:  # a lookup that failed says nothing: neither missing nor a focus
            continue
        seen = {h.chunk_id: h for h in [*hits, *found]}.values()
        defined = _defining(term, aliases or {})
        counts = Counter(h.doc_id for h in seen if h.doc_id in defined or term.found_in(_text(h)))
        sources.update((h.doc_id, h.source) for h in found)
        if not counts and defined:
            counts = Counter(defined)  # none of them among the passages: known all the same
        if not counts:
            missing.append(term)
            continue
        top = max(counts.values())
        docs = {d for d, n in counts.items() if n * 4 >= top}
        if hits and term.kind == "entity" and entities == 1 and term.found_in(_text(hits[0])):
            # the passage search ranks first is about the one name it mentions, whatever its document's
            # size: a one-page visitor guide names its city once, an annual report forty times in a loan
            # rate's name (of several names, a passage naming them all is about none of them alone)
            docs.add(hits[0].doc_id)
        docs_of.append(docs)
        mentions[term] = counts
    # A code is not written otherwise: its parts stand together wherever it is mentioned ("Nimbus 7" where
    # the documents hold only "Nimbus" is another version, not the same one spelled otherwise).
    lacking: list[Term] = [t for t in missing if isinstance(t, Name)]
    held = entities - sum(t.kind == "entity" for t in missing)
    otherwise: list[Term] = []
    if lacking and held >= 2 and held > len(lacking):
        # A question naming several things the documents hold ("the Aerostar that left Elyria, Ohio")
        # is about them: the one name they lack is written otherwise there ("Elyria, OH").
        missing, otherwise = [t for t in missing if not isinstance(t, Name)], lacking
    if missing:
        return Grounding(missing, list(hits), otherwise=otherwise)
    names = _asked_names(question, aliases or {}, otherwise)
    apart = _apart(names, question.periods, mentions, sources, search, filters)
    if apart:
        return Grounding([], list(hits), otherwise=otherwise, apart=apart)
    focused = list(hits)
    if docs_of:
        coverage = [sum(h.doc_id in docs for docs in docs_of) for h in hits]
        best = max(coverage)
        focused = [h for h, c in zip(hits, coverage) if c == best] if best else focused
    unheld = _unheld(names, focused, mentions, search, filters)
    if unheld:
        return Grounding([], focused, otherwise=otherwise, unheld=unheld)
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
    return Grounding([], focused, latest, otherwise)


def _asked_names(question: Question, aliases: Mapping[str, Alias], otherwise: Sequence[Term]) -> list[Term]:
    """The names a question asks the passages' documents to hold. Names in capitals are left out: as
    often as a holder, they name a measure a document spells out in words ("EBITDA", "PP&E"); so are
    aliases the documents define (their documents may write the name in full) and names taken to be
    written otherwise."""
    return [t for t in question.about if t.kind == "entity" and not t.text.isupper() and t not in otherwise
            and not _defining(t, aliases)]


def _apart(names: Sequence[Term], periods: Sequence[Term], mentions: Mapping[Term, Counter[int]],
           sources: Mapping[int, str], search: Search, filters: Filters | None) -> list[tuple[Term, Term]]:
    """The (name, period) pairs of the question when no document mentioning any of its names mentions
    any of its periods: each is held somewhere, but not together, so the passages answer for another
    period ("What were Amazon's net sales in 2010?" over its reports of 2017 and 2019). Of two periods,
    one held is enough (a report holds the period it is compared with); of two names, one (the other
    half of a comparison is still answered). When the lookups found no document mentioning both, the
    documents naming each name most are searched for the periods, a few at most (PAIR_DOCS), each for
    itself, and a period counts however they write it (`_said`)."""
    names = [t for t in names if t in mentions]
    periods = [t for t in periods if t in mentions]
    for name in names:
        if any(mentions[name].keys() & mentions[p].keys() for p in periods):
            return []
        docs = [d for d, _ in mentions[name].most_common(PAIR_DOCS)]
        if any(_mentions(search, p, sources.get(d), filters) for p in periods for d in docs):
            return []
    return [(name, p) for name in names for p in periods]


def _unheld(names: Sequence[Term], hits: Sequence[Hit], mentions: Mapping[Term, Counter[int]], search: Search,
            filters: Filters | None) -> list[Term]:
    """The question's names, when no document of `hits` mentions any of them: the folder holds them
    elsewhere, in passing ("Ford" once in a grocer's annual report), and the passages found answer about
    something else (another carmaker's deliveries)."""
    docs = {h.doc_id for h in hits}
    sources = list(dict.fromkeys(h.source for h in hits))
    for term in names:
        if docs & mentions.get(term, Counter()).keys() or any(term.found_in(_text(h)) for h in hits) \
                or any(_mentions(search, term, s, filters) for s in sources):
            return []
    return list(names)


def _mentions(search: Search, term: Term, source: str | None, filters: Filters | None) -> bool:
    """Whether the document at `source` mentions `term` (`_said`; its file name counts): a keyword lookup
    within it."""
    if source is None or term.found_in(source):
        return True  # a file name naming it holds it; a document of unknown path is given the benefit of the doubt
    within = dataclasses.replace(filters or Filters(), path=glob_escape(source))
    try:
        # a year is looked up as a fiscal year's two digits too ("FY23" is one word to the keyword index)
        fiscal = f" FY{term.year % 100:02d}" if isinstance(term, Period) and not term.quarter and not term.month else ""
        found = search(term.query + fiscal, k=LOOKUP_K, filters=within, mode="keyword")
    except KBError:  # a lookup that failed says nothing
        return True
    return any(_said(term, _text(h)) for h in found)


def _said(term: Term, text: str) -> bool:
    """Whether `text` mentions `term` as written (`found_in`), or a period however a report writes it: a
    quarter by a day its three months end on ("three months ended September 30, 2023" for Q3 2023, a
    quarter ended October 29, 2023 too), a year by any period of it the period grammar reads ("FY23",
    "Q3 FY23")."""
    if term.found_in(text):
        return True
    if not isinstance(term, Period) or term.month:
        return False  # a name, a day or a month: as written
    if term.quarter:
        return any(quarter_ended(day) == (term.year, term.quarter) for day in dates(text))
    return any(p.year == term.year for p in periods(text)[0])


def _defining(term: Term, aliases: Mapping[str, Alias]) -> set[int]:
    """The documents that define the alias `term` is, or one of its words is ("NnW", "QLDY")."""
    if not aliases or term.kind != "entity":
        return set()
    words = {term.text, *getattr(term, "words", ())}
    return {d for word, alias in aliases.items() if word in words for d in alias.docs}


def _text(hit: Hit) -> str:
    # The file name counts: "2023 Q3 Acme.pdf" says which quarter its passages are about.
    return f"{hit.source}\n{hit.section or ''}\n{hit.text}"
