"""Keyword search: any user text turned into a safe SQLite FTS5 query, ranked by BM25.

FTS5 has its own query language (`AND`, `OR`, `NOT`, `NEAR(...)`, `col:`, `*`, `^`, quotes,
parentheses). Users type questions, not that language, so every word is quoted as a literal and
the words are OR-ed: BM25 then rewards the chunks that hold the most, and the rarest, of them.
"""

from __future__ import annotations

import re

# Defined in the catalog, which quotes terms too and may not import kb.query.
from kb.index.catalog import fts_quote as quote

# A "word" as a reader sees it: letters and digits, with inner apostrophes, hyphens, commas and
# dots kept together ("Wi-Fi", "40,665", "U.S.", "don't"); FTS5 splits these the same way its
# tokenizer does, so each becomes a quoted phrase of its parts.
_WORD = re.compile(r"\w+(?:['’.,\-/]\w+)*", re.UNICODE)
_PART = re.compile(r"[^\W_]+", re.UNICODE)
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)

# Question and glue words that carry no topic; dropped unless the query is made of nothing else.
_STOPWORDS = (
    """a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves s t"""
)
STOPWORDS = frozenset(_STOPWORDS.split())

MAX_TERMS = 48  # a pasted paragraph must not become a thousand-term query


def terms(query: str) -> list[str]:
    """The query's searchable terms, lower-cased, in order, without duplicates: words or phrases."""
    out: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(query):
        word = _POSSESSIVE.sub("", word)
        parts = [p.lower() for p in _PART.findall(word)]
        if not parts:
            continue
        for term in (" ".join(parts), *_figures_inside(parts)):
            if term not in seen:
                seen.add(term)
                out.append(term)
    kept = [t for t in out if t not in STOPWORDS]
    return (kept or out)[:MAX_TERMS]


_DIGITS = re.compile(r"\d{4,}")


def _figures_inside(parts: list[str]) -> list[str]:
    """The long numbers inside a word of letters and digits, as terms of their own: "FY2019" is about
    2019, which the text prints on its own ("fiscal 2019", "December 31, 2019")."""
    if len(parts) != 1 or parts[0].isdigit() or parts[0].isalpha():
        return []
    return _DIGITS.findall(parts[0])


_QUOTED = re.compile(r'"([^"]+)"')


def literals(query: str) -> list[str]:
    """What the user means verbatim: "quoted phrases" and figures (40,665; 5031; 2.45), as FTS terms.

    Embeddings blur exact figures and codes; hybrid search gives chunks that contain a rare
    literal a bonus of their own (see `kb.query.search`).
    """
    out: list[str] = []
    for phrase in _QUOTED.findall(query):
        parts = [p.lower() for p in _PART.findall(phrase)]
        if parts:
            out.append(" ".join(parts))
    for word in _WORD.findall(query):
        parts = _PART.findall(word)
        if parts and all(p.isdigit() for p in parts) and sum(len(p) for p in parts) >= 3:
            out.append(" ".join(parts))
    return list(dict.fromkeys(out))


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH string that means 'any of these words', or None when there is no word at all.

    Every term is a double-quoted string, so nothing the user types is read as FTS5 syntax.
    """
    found = terms(query)
    if not found:
        return None
    return " OR ".join(quote(t) for t in found)
