"""Is what the question is about in the documents at all? The names (companies, people, products)
and periods (years, quarters, dates) a question asks about, read from its own text, and the ones
no retrieved passage (nor any other passage of the knowledge base) mentions.

A question about Tesla over a folder that never mentions Tesla must be answered "not found", not
with the nearest passage about another company: `ground` says what is missing, in words a
reader can check ("no document mentions Tesla"). Generic by construction: no list of companies or
of anything else; a name is a capitalised word the question did not capitalise for grammar.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from kb.errors import KBError
from kb.query.fts import STOPWORDS

if TYPE_CHECKING:
    from kb.filters import Filters
    from kb.types import Hit

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"  # a month, spelled out or cut short
ORDINALS = ("first", "second", "third", "fourth")
_YEAR = r"(?:19|20)\d\d"

# Periods, most specific first; each match is taken out of the question before the next looks.
DATE = re.compile(rf"(?i)\b({MONTH})\s+(\d{{1,2}}),?\s+({_YEAR})\b")  # "July 1, 2023", "Sept. 30 2024"
_QUARTER = re.compile(
    rf"(?i)\bQ([1-4])\s*(?:of\s+)?(?:fiscal\s+(?:year\s+)?)?(?:FY\s*)?'?(\d{{4}}|\d\d)\b"
    rf"|\b([1-4])Q\s*'?(\d{{4}}|\d\d)\b"
    rf"|\b(first|second|third|fourth|1st|2nd|3rd|4th)[\s-]+(?:fiscal\s+)?quarter\s+(?:of\s+)?(?:the\s+)?"
    rf"(?:fiscal\s+(?:year\s+)?)?(?:FY\s*)?'?({_YEAR})\b"
)
_MONTH_YEAR = re.compile(rf"(?i)\b({MONTH})\s+({_YEAR})\b")
_FISCAL = re.compile(r"(?i)\b(?:FY|fiscal\s+(?:year\s+)?)\s*'?(\d{4}|\d\d)\b")
_BARE_YEAR = re.compile(rf"(?<![\d$.,])({_YEAR})(?![\d%])")

# Words that are capitalised for grammar, not because they name something.
_FRAMING = STOPWORDS | frozenset({
    "please", "list", "describe", "explain", "give", "tell", "compare", "summarize", "summarise", "find", "show",
    "according", "based", "using", "given", "here", "there", "also", "provide", "identify", "calculate", "answer",
    "question", "yes", "no", "note", "assume", "consider", "does", "did", "has", "have", "is", "are", "was",
    "were", "will", "would", "can", "could", "should", "may", "might", "must", "i", "you", "we", "they",
    *MONTHS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
})
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[&.’'-][A-Za-z0-9]+)*")
_POSSESSIVE = re.compile(r"(?:['’]s|s['’])$")
_JOINERS = {"&", "of"}
_ACRONYM = re.compile(r"[A-Z]{2,5}")
LOOKUP_K = 50  # passages the keyword index is asked for, per name or period


@dataclass(frozen=True)
class Term:
    """A name or period the question is about: `text` as the question says it, `kind` entity | period."""

    kind: str
    text: str
    patterns: tuple[str, ...]  # regexes: the term is mentioned where any matches (all words for entities)
    query: str  # what to look it up with in the keyword index

    @cached_property
    def _compiled(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.patterns]

    def found_in(self, text: str) -> bool:
        if self.kind == "entity":
            return all(p.search(text) for p in self._compiled)
        return any(p.search(text) for p in self._compiled)

    @property
    def missing(self) -> str:
        """What to tell the reader when no document has it."""
        return f"no document mentions {self.text}" if self.kind == "entity" else f"no document covers {self.text}"


@lru_cache(maxsize=64)
def key_terms(question: str) -> tuple[Term, ...]:
    """The names and periods `question` asks about, in the order it names them (read once per
    question: grounding, line scoring and every table row ask again)."""
    periods, rest = _periods(question)
    return (*_entities(rest), *periods)


def topic(question: str) -> str:
    """The question without its names and periods: what it asks about them ("gross margin")."""
    for term in key_terms(question):
        question = question.replace(term.text, " ")
    return re.sub(r"['’]s\b", " ", question)


@dataclass
class Grounding:
    """What the knowledge base holds of a question's names and periods."""

    missing: list[Term]  # named by the question, mentioned by no passage
    focused: list[Hit]  # the retrieved passages of the documents that hold the most of the rest
    latest: str | None = None  # the question asks for the latest: the source of the most recent document about it


def ground(question: str, hits: Sequence[Hit], search: Callable[..., list[Hit]],
           filters: Filters | None = None) -> Grounding:
    """Which of the question's names and periods no passage mentions, and which retrieved passages
    come from documents about them. A term belongs to a document when a retrieved passage of it
    mentions the term, or when the keyword index finds the term there often (at least a quarter as
    often as in the document that mentions it most): a report that names a customer once is not
    about that customer. `search`: `(query, k=, filters=, mode=) -> hits`."""
    terms = key_terms(question)
    missing: list[Term] = []
    docs_of: list[set[int]] = []
    sources = {h.doc_id: h.source for h in hits}
    for term in terms:
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
    if _LATEST.search(question) and not any(t.kind == "period" for t in terms):
        # "the latest report": the most recent document about every name the question gives, by the
        # period its own name says ("2023 Q3 ...", "..._2023Q2_...", "report-2024-06")
        about = set.intersection(*docs_of) if docs_of else {h.doc_id for h in focused}
        dated = [(period, d) for d in about if d in sources and (period := _period_of(sources[d])) is not None]
        if dated:
            latest = sources[max(dated)[1]]
    return Grounding([], focused, latest)


_LATEST = re.compile(r"(?i)\b(latest|most recent|newest|most current|last reported)\b")


def _period_of(source: str) -> tuple[int, int] | None:
    """(year, quarter or month) from a file name: '2023 Q3 Acme.pdf' -> (2023, 3); 'ACME_2023Q2_report' ->
    (2023, 2); 'report-2024-06.pdf' -> (2024, 6); 'ACME_2017_annual' -> (2017, 0); no year -> None."""
    name = re.split(r"[\\/]", source)[-1]
    years = [int(y) for y in re.findall(r"(?<!\d)((?:19|20)\d\d)(?!\d{2})", name)]
    if not years:
        return None
    year = max(years)
    part = re.search(rf"{year}\s*[-_ ]?\s*Q([1-4])(?![0-9a-z])|(?<![0-9a-z])Q([1-4])\s*[-_ ]?\s*{year}"
                     rf"|{year}[-_.](0[1-9]|1[0-2])(?![0-9a-z])", name, re.I)
    return year, int(next((g for g in part.groups() if g), 0)) if part else 0


def _text(hit: Hit) -> str:
    # The file name counts: "2023 Q3 Acme.pdf" says which quarter its passages are about.
    return f"{hit.source}\n{hit.section or ''}\n{hit.text}"


# --- periods ---------------------------------------------------------------------------------------
def _year(text: str) -> str:
    return text if len(text) == 4 else ("20" if int(text) < 70 else "19") + text


def _year_pattern(year: str) -> str:
    return rf"(?<!\d){year}(?!\d)"


def _periods(question: str) -> tuple[list[Term], str]:
    """The periods in `question`, and the question with them blanked out (so "March" in a date is
    not also read as a name)."""
    found: list[tuple[int, Term]] = []
    text = question

    def take(m: re.Match[str], term: Term) -> None:
        nonlocal text
        found.append((m.start(), term))
        text = text[:m.start()] + " " * (m.end() - m.start()) + text[m.end():]

    for m in list(DATE.finditer(text)):
        month, day, year = m.group(1)[:3].lower(), int(m.group(2)), m.group(3)
        take(m, Term("period", m.group(0), (rf"\b{month}[a-z]*\.?\s+0?{day},?\s+{year}\b",), f"{_full(month)} {day} {year}"))
    for m in list(_QUARTER.finditer(text)):
        if m.group(1):
            n, year = int(m.group(1)), _year(m.group(2))
        elif m.group(3):
            n, year = int(m.group(3)), _year(m.group(4))
        else:
            n, year = _ordinal(m.group(5)), m.group(6)
        ordinal, yy = ORDINALS[n - 1], year[2:]
        fiscal = r"(?:of\s+)?(?:the\s+)?(?:fiscal\s+(?:year\s+)?)?(?:FY\s*)?"
        # file names join with "_" ("ACME_2023Q3_report"): edges are letters and digits, not word boundaries
        a, z = r"(?<![0-9a-z])", r"(?![0-9a-z])"
        patterns = (
            rf"{a}Q{n}\s*{fiscal}'?(?:{year}|{yy}){z}",
            rf"{a}{ordinal}[\s-]+(?:fiscal\s+)?quarter\s+{fiscal}{year}{z}",
            rf"{a}{year}\s*[-_ ]?\s*Q{n}{z}",
            rf"{a}{n}Q\s*'?(?:{year}|{yy}){z}",
        )
        take(m, Term("period", m.group(0), patterns, f"Q{n} {year} {ordinal} quarter {year}"))
    for m in list(_MONTH_YEAR.finditer(text)):
        month, year = m.group(1)[:3].lower(), m.group(2)
        take(m, Term("period", m.group(0), (rf"\b{month}[a-z]*\.?\s+(?:\d{{1,2}},?\s+)?{year}\b",), f"{_full(month)} {year}"))
    for m in list(_FISCAL.finditer(text)):
        year = _year(m.group(1))
        take(m, Term("period", m.group(0), (_year_pattern(year),), year))
    for m in list(_BARE_YEAR.finditer(text)):
        take(m, Term("period", m.group(0), (_year_pattern(m.group(1)),), m.group(1)))
    found.sort(key=lambda x: x[0])
    unique: dict[str, Term] = {}
    for _, term in found:
        unique.setdefault(term.text.lower(), term)
    return list(unique.values()), text


def _full(month: str) -> str:
    return next(m for m in MONTHS if m.startswith(month))


def _ordinal(word: str) -> int:
    word = word.lower()
    return ORDINALS.index(word) + 1 if word in ORDINALS else int(word[0])


# --- names -----------------------------------------------------------------------------------------
def _entities(question: str) -> list[Term]:
    """Runs of capitalised words that name something: "Tesla", "Johnson & Johnson", "iPhone",
    "AWS". A capitalised word that starts a sentence counts only when it plainly names something
    (possessive, all capitals, inner capitals): "Summarise ..." is grammar, "Tesla's ..." is a name."""
    runs: list[list[str]] = []
    current: list[str] = []
    pending: list[str] = []  # joiners ("of", "&") that count only between two names
    owners: set[str] = set()  # names the question puts in the possessive
    sentence_start = True
    position = 0
    for m in _TOKEN.finditer(question):
        gap = question[position:m.start()].strip()
        position = m.end()
        if gap and gap != "&":  # punctuation ends a name
            runs.append(current)
            current, pending = [], []
            sentence_start = sentence_start or bool(re.search(r"[.?!:;]", gap))
        elif gap == "&" and current:
            pending.append("&")
        word = m.group(0)
        bare = _POSSESSIVE.sub("", word)
        if _names(word, bare, sentence_start):
            current += [*pending, bare]
            pending = []
            if word != bare:  # a possessive ends the name: "ACME's Data Center" names two things
                owners.add(bare)
                runs.append(current)
                current = []
        elif current and bare.lower() in _JOINERS:
            pending.append(bare)
        else:
            runs.append(current)
            current, pending = [], []
        sentence_start = False
    runs.append(current)
    out: list[Term] = []
    seen: set[str] = set()
    # Abbreviations the question spells out ("days payable outstanding (DPO)", "DIO is defined as")
    # are its own shorthand, and one after a name ("Pepsico AGM") says what of it.
    defined = set(re.findall(r"\(([A-Z]{2,6})\)", question)) | set(re.findall(r"\b([A-Z]{2,6})\s+(?:is|are)\s+defined",
                                                                              question))
    runs = [[w for i, w in enumerate(run) if w not in defined and not (i and _ACRONYM.fullmatch(w))] for run in runs]
    # A bare abbreviation ("COGS", "EPS") is as often a term the documents spell out as a name; one
    # in the possessive ("AMD's") is a name.
    runs = [run for run in runs if not (len(run) == 1 and _ACRONYM.fullmatch(run[0]) and run[0] not in owners)]
    for run in filter(None, runs):
        text = " ".join(run)
        words = [w for part in run if part.lower() not in _JOINERS for w in re.split(r"[&.’'-]+", part) if w]
        if not words or text.lower() in seen:
            continue
        seen.add(text.lower())
        out.append(Term("entity", text, tuple(rf"\b{re.escape(w)}\b" for w in words), " ".join(words)))
    return out


def _names(word: str, bare: str, sentence_start: bool) -> bool:
    if not word[0].isupper() and not any(c.isupper() for c in word[1:]):
        return False  # no capital at all
    if re.fullmatch(r"(?i)(?:Q[1-4]|[1-4]Q|H[12]|FY\d*|\d+)", bare):
        return False  # a period, read elsewhere
    lower = bare.lower()
    inner_capitals = any(c.isupper() for c in bare[1:])
    if lower in _FRAMING and not inner_capitals:
        return False
    if len(bare) < 2:
        return False
    if sentence_start:
        return inner_capitals or word != bare  # "ACME", "iPhone", "Tesla's"
    return True
