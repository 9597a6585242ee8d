"""Facets of a document read from its own text: its date (and year), stored in its metadata, where
`--where date=2023-07` filters on it and questions about "the latest" or "2022" are matched to it."""

from __future__ import annotations

import re

from kb.dates import first_date
from kb.types import JSON, ParsedDocument

FIRST_UNITS = 2  # a cover page and the one after it: where a report, letter or form states its date
FIRST_CHARS = 4000  # and no more text than this, so a long first "page" (a whole text file) costs little
_ISO_YEAR = re.compile(r"\d{4}(?=-|$)")


def document_facets(doc: ParsedDocument) -> JSON:
    """Facets to merge into `doc.metadata`: `date` (ISO, YYYY-MM-DD) and `year` ("2023").

    The date is the first full calendar date in the document's opening text: the one a title page,
    a letter head, a form's header or a report's "period ended" line gives. A date the parser already
    found (a mail's Date header, a front matter's `date`) is kept; it only lends its year.
    """
    meta = doc.metadata
    if meta.get("date"):
        year = _year_of(str(meta["date"]))
        return {"year": year} if year and not meta.get("year") else {}
    found = first_date(opening_text(doc))
    if found is None:
        return {}
    return {"date": found.isoformat(), "year": str(found.year)}


def opening_text(doc: ParsedDocument, units: int = FIRST_UNITS, limit: int = FIRST_CHARS) -> str:
    """The text of the document's first `units` pages (slides, messages...), at most `limit` characters."""
    first = next((b.page for b in doc.blocks if b.page is not None), None)
    parts: list[str] = []
    size = 0
    for block in doc.blocks:
        if first is not None and block.page is not None and block.page >= first + units:
            break
        parts.append(block.text)
        size += len(block.text) + 1
        if size >= limit:
            break
    return "\n".join(parts)[:limit]


def _year_of(text: str) -> str | None:
    """'2023' of '2023-07-01T10:00:00+00:00' (an ISO date, as parsers store one), or of a date in
    words ('Mon, 3 Jul 2023 10:00:00', a mail header that would not parse)."""
    m = _ISO_YEAR.match(text.strip())
    if m:
        return m.group(0)
    found = first_date(text)
    return str(found.year) if found else None
