"""Snippets: the window of a hit's text that shows why it matched, with the query's terms marked.

The terms are found by SQLite FTS5 itself, with the catalog's tokenizer, in a throwaway in-memory
table of the hits' texts: what is marked is exactly what the keyword index matches (stems, so
"bridge" marks "bridges"; figures such as 40,665 and "quoted phrases" as phrases; case and
accents folded). Dense hits get the same marks for whichever query terms they hold.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kb.query.fts import quote
from kb.question import literals, terms
from kb.types import Snippet

if TYPE_CHECKING:
    from kb.index.catalog import Catalog
    from kb.types import Hit

TOKENIZE = "porter unicode61"  # as the catalog's chunks_fts (tests/test_snippets.py checks they agree)
WIDTH = 300  # characters of a snippet, about three lines of a terminal
PHRASE_BONUS = 2.0  # a "quoted phrase" or figure found whole outweighs its words found apart
REPEAT = 0.1  # each further occurrence of a term in a window counts this share of its weight
_OPEN, _CLOSE = "\x02", "\x03"  # highlight() markers; removed from the texts first
_SPACE = re.compile(r"\s+")

Span = tuple[int, int]


def query_terms(query: str) -> list[str]:
    """What to look for: the keyword index's terms, then the query's verbatim literals (phrases)."""
    return list(dict.fromkeys([*terms(query), *literals(query)]))


def find(texts: Sequence[str], wanted: Sequence[str]) -> list[dict[str, list[Span]]]:
    """For each text, the character spans where FTS5 matches each term (terms absent: no key)."""
    found: list[dict[str, list[Span]]] = [{} for _ in texts]
    if not texts or not wanted:
        return found
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{TOKENIZE}')")
        # The markers are separators to the tokenizer, so blanking them moves no token and no offset.
        rows = [(i, text.replace(_OPEN, " ").replace(_CLOSE, " ")) for i, text in enumerate(texts)]
        db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", rows)
        sql = "SELECT rowid, highlight(t, 0, ?, ?) FROM t WHERE t MATCH ?"
        for term in wanted:
            for rowid, marked in db.execute(sql, (_OPEN, _CLOSE, quote(term))):
                spans = _spans(marked)
                if spans:
                    found[rowid][term] = spans
    finally:
        db.close()
    return found


def _spans(marked: str) -> list[Span]:
    """Offsets in the unmarked text of each `_OPEN`...`_CLOSE` run of highlight()'s output."""
    out: list[Span] = []
    shift = at = 0
    while (start := marked.find(_OPEN, at)) >= 0:
        end = marked.find(_CLOSE, start)
        if end < 0:
            break
        out.append((start - shift, end - shift - 1))
        shift += 2
        at = end + 1
    return out


def weights(wanted: Sequence[str], query: str, found: Sequence[dict[str, list[Span]]],
            catalog: Catalog | None = None, counted: Mapping[str, int] | None = None) -> dict[str, float]:
    """Each term's inverse document frequency, over the catalog's chunks (else over these texts);
    the query's literals (quoted phrases, figures) count `PHRASE_BONUS` times more. `counted`: the
    chunks holding some of the terms, as the search already counted them (not counted again)."""
    if catalog is not None:
        total = max(catalog.totals()[1], 1)
        df = _frequencies(catalog, wanted, counted or {})
    else:
        total = max(len(found), 1)
        df = {t: sum(1 for f in found if t in f) for t in wanted}
    verbatim = set(literals(query))
    out = {}
    for t in wanted:
        n = df.get(t, 0)
        idf = math.log(1.0 + (total - n + 0.5) / (n + 0.5))
        out[t] = idf * (PHRASE_BONUS if t in verbatim else 1.0)
    return out


_DF: OrderedDict[tuple[str, tuple[int, int], str], int] = OrderedDict()
_DF_SIZE = 4096
_DF_LOCK = threading.Lock()


def _frequencies(catalog: Catalog, wanted: Sequence[str], counted: Mapping[str, int]) -> dict[str, int]:
    """How many chunks hold each term: those in `counted` as given, the others remembered per catalog
    state (`Catalog.version`): a common term costs a millisecond or more to count, a search's other
    work about as much as ten of them."""
    stamp = (str(catalog.path), catalog.version())
    known = {t: counted[t] for t in wanted if t in counted}
    with _DF_LOCK:
        known.update({t: _DF[stamp + (t,)] for t in wanted if t not in known and stamp + (t,) in _DF})
    missing = [t for t in wanted if t not in known]
    if missing:
        fresh = {t: sum(per_doc.values()) for t, per_doc in catalog.document_term_chunks(missing).items()}
        known.update(fresh)
        with _DF_LOCK:
            for t, n in fresh.items():
                _DF[stamp + (t,)] = n
            while len(_DF) > _DF_SIZE:
                _DF.popitem(last=False)
    return known


def merged(spans: Sequence[Span]) -> list[Span]:
    """Overlapping or touching spans as one, in order."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def best_window(text: str, found: dict[str, list[Span]], weight: dict[str, float], width: int = WIDTH) -> Span:
    """The `width` characters of `text` holding the most, and the rarest, of the terms: each term
    present counts its weight once, repeats a little; ties go to the earlier window. The matches
    are centred in it, and it is cut at word boundaries."""
    n = len(text)
    if n <= width:
        return 0, n
    spans = sorted((s, e, t) for t, found_spans in found.items() for s, e in found_spans)
    if not spans:
        return 0, _cut_end(text, width, 0)
    best: tuple[float, int, int] | None = None  # score, window start, end of the last match inside
    for i, (start, _, _) in enumerate(spans):
        counts: dict[str, int] = {}
        last = start
        for _, e, t in spans[i:]:
            if e > start + width:
                break
            counts[t] = counts.get(t, 0) + 1
            last = max(last, e)
        score = sum(weight.get(t, 0.0) * (1.0 + REPEAT * min(c - 1, 3)) for t, c in counts.items())
        if best is None or score > best[0] + 1e-9:
            best = (score, start, last)
    assert best is not None
    _, first, last = best
    slack = max(0, width - (last - first))
    a = max(0, first - slack // 2)
    if a + width > n:
        a = n - width
    if a < width // 10 and last <= width - width // 10:
        a = 0  # a few words before the match are not worth an ellipsis
    b = a + width
    if a > 0 and not text[a - 1].isspace():
        space = _SPACE.search(text, a, first)  # move to the start of the next word, if before the match
        if space:
            a = space.end()
    return a, max(_cut_end(text, b, last), last)


def _cut_end(text: str, b: int, floor: int) -> int:
    """`b` moved back to a word boundary, not before `floor`."""
    if b >= len(text) or text[b].isspace() or text[b - 1].isspace():
        return min(b, len(text))
    cut = text.rfind(" ", floor, b)
    cut = max(cut, text.rfind("\n", floor, b))
    return cut if cut > floor else b


def snippet(text: str, window: Span, marks: Sequence[Span]) -> Snippet:
    """`text[window]` on one line (whitespace runs as one space), "…" where it was cut, and the
    marks moved to match."""
    a, b = window
    pieces: list[tuple[str, bool]] = []
    pos = a
    for s, e in marks:
        s, e = max(s, a), min(e, b)
        if s >= e or s < pos:
            continue
        pieces += [(text[pos:s], False), (text[s:e], True)]
        pos = e
    pieces.append((text[pos:b], False))
    line = "…" if a > 0 else ""
    spans: list[Span] = []
    for piece, marked in pieces:
        flat = _SPACE.sub(" ", piece)
        if flat.startswith(" ") and (line in ("", "…") or line.endswith(" ")):
            flat = flat[1:]  # no leading space, and no double space where pieces meet
        if marked and flat:
            spans.append((len(line), len(line) + len(flat)))
        line += flat
    line = line.rstrip()
    if b < len(text):
        line += "…"
    return Snippet(line, tuple(spans))


def annotate(hits: Sequence[Hit], query: str, catalog: Catalog | None = None, width: int = WIDTH,
             counted: Mapping[str, int] | None = None) -> None:
    """Give each hit its `highlights` (spans of the query's terms in its text) and its `snippet`.
    `counted`: how many of the catalog's chunks hold each term, where the search counted them already."""
    wanted = query_terms(query)
    found = find([h.text for h in hits], wanted)
    weight = weights(wanted, query, found, catalog, counted) if any(found) else {}
    for hit, where in zip(hits, found):
        marks = merged([s for spans in where.values() for s in spans])
        hit.highlights = marks
        hit.snippet = snippet(hit.text, best_window(hit.text, where, weight, width), marks)
