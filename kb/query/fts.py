"""Keyword search: any user text turned into a safe SQLite FTS5 query, ranked by BM25.

FTS5 has its own query language (`AND`, `OR`, `NOT`, `NEAR(...)`, `col:`, `*`, `^`, quotes,
parentheses). Users type questions, not that language, so every word (`kb.question.terms`) is
quoted as a literal and the words are OR-ed: BM25 then rewards the chunks that hold the most, and
the rarest, of them.
"""

from __future__ import annotations

# Defined in the catalog, which quotes terms too and may not import kb.query.
from kb.index.catalog import fts_quote as quote
from kb.question import terms


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH string that means 'any of these words', or None when there is no word at all.

    Every term is a double-quoted string, so nothing the user types is read as FTS5 syntax.
    """
    found = terms(query)
    if not found:
        return None
    return " OR ".join(quote(t) for t in found)
