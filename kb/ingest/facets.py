"""Facets of a document read from its own text: its date (and year), stored in its metadata, where
`--where date=2023-07` filters on it and questions about "the latest" or "2022" are matched to it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta

from kb.dates import (
    HALF_QUARTER,
    QUARTER_AFTER,
    QUARTER_BEFORE,
    Period,
    first_date,
    periods,
    quarter_end,
    quarter_ended,
    quarters,
)
from kb.types import JSON, ParsedDocument

FIRST_UNITS = 2  # a cover page and the one after it: where a report, letter or form states its date
FIRST_CHARS = 4000  # and no more text than this, so a long first "page" (a whole text file) costs little
LINE_WORDS = 3  # a line with at most this many words besides its date is a date line (a cover's, a heading's)
LABEL_REACH = 40  # characters before a date where its label is read: a form's field name and some
DATELINE_LEAD = 60  # a press release's "City, State (July 20, 2023) -": the place before the date is short
_ISO_YEAR = re.compile(r"\d{4}(?=-|$)")

# A date that labels the document, said by the words just before it: the period it reports on ("for the
# quarter ended", "as of"), when it was written or holds ("Dated", "last reviewed", "in force from"), or a
# form's field so named ("Date:", "Date & Time:", "Version 3:"). "Date" alone is a field's name only: "the
# lease break date of 1 April 2025" is a date the text talks about.
_WRITTEN = (r"dated|effective|issued|published|updated|revised|reviewed|prepared|reported|filed|submitted"
            r"|in\s+force|valid")
_LABEL = re.compile(rf"(?i)(?:\b(?:ended|ending|as\s+(?:of|at))\W*"
                    rf"|\b(?:{_WRITTEN})\W*(?:(?:on|of|from|since|as\s+of)\s+)?"
                    rf"|\b(?:{_WRITTEN}|date|version|edition)[^.:;]{{0,20}}:)\s*$")
# "Minutes of 15 March 2022", "Meeting of ...": a line's one or two opening words, then "of" and the date.
_TITLE_OF = re.compile(r"^\W*[^\W\d]+(?:\s+[^\W\d]+)?\s+of\s+$")
# A date after which a sentence goes on about something that happens then ("General availability on
# 30 June 2024", "due by", "from ... to ..."): an event the document mentions, not the document's date.
_EVENT = re.compile(r"(?i)\b(?:on|by|until|till|before|after|from|since|to|through|between|and|or|at|in)\W*$")
# A press release's "New Brunswick, N.J. (July 20, 2023) -", a letter's or a title slide's "Leeds, 8 April
# 2024" / "Presented by Tom Hughes, 8 April 2024": a short lead ending in a comma or a bracket, the date
# then a dash, or the date ending the line.
_DATELINE = (re.compile(r"(?:,|\()\s*$"), re.compile(r"^\)?\s*(?:[-\u2013\u2014/]|[.)]?\s*$)"))
_OTHER_FIELD = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s|:")  # a list's item or another field ("Go-live: ...")
_WORDS = re.compile(r"[^\W\d_]{2,}")
_NAME_JOINS = re.compile(r"_|(?<=[^\W\d_])-(?=\d)")  # "report_2024-06-30", "dated-2022-05-20": a name's separators


def document_facets(doc: ParsedDocument, name: str = "") -> JSON:
    """Facets to merge into `doc.metadata` (`name`: its file's name): `date` (ISO: YYYY-MM-DD, or
    YYYY-MM for a month) and `year`.

    The date is one that labels the document, not one it mentions: first a date its opening pages
    label (`_LABEL`: "For the quarterly period ended July 1, 2023", "Dated: 3 May 2023", a press
    release's dateline), then a date in its title or file name, then a date alone on a line of its
    first page (a title page's "12 March 2023", "March 2023"). A date in running prose ("General
    availability on 30 June 2024") dates nothing: such a document has no date rather than a wrong one.
    A date the parser already found (a mail's Date header, a front matter's `date`) is the author's
    word and is kept; it only lends its year. File dates (a PDF's CreationDate, an Office file's
    "created") are not read: they say when a file was converted, copied or made from a template.
    """
    meta = doc.metadata
    if meta.get("date"):
        year = _year_of(str(meta["date"]))
        return {"year": year} if year and not meta.get("year") else {}
    labelled = next(_labelled(opening_text(doc)), None)
    found = _own_date(doc, name, labelled)
    if found is None:
        return {}
    return {"date": _iso(found), "year": str(found.year), **own_quarter(doc, found.date, labelled)}


QUARTER_MENTIONS = 3  # a report names its own quarter again and again; one named once or twice is talked about
QUARTER_SHARE = 0.25  # a quarter named under a quarter as often as the most named one is an outlook's or a note's
QUARTER_DAYS = 91  # a quarter's length in days, near enough to tell the year a fiscal year ends in
# A quarter ending on the report's date but named under half as often as the most named one is the one it
# compares with: a fiscal year from October names its own quarter as the calendar's next.
ON_DATE_SHARE = 0.5
_QUARTERLY = re.compile(r"(?i)\bquarter|\bthree\s+months|\b13\s+weeks")


def own_quarter(doc: ParsedDocument, dated: date | None, labelled: tuple[Period, str] | None) -> JSON:
    """The quarter a quarterly report is about (one whose date is labelled "for the quarterly period
    ended", "three months ended"): `quarter` ("2023-Q3", as a question without "fiscal" means it) and,
    where it counts its own fiscal year ("the third quarter of fiscal year 2024"), `fiscal_quarter`.

    A report names its quarter beside the same quarter a year before, and now and then an outlook's.
    `fiscal_quarter`: when a fiscal quarter is named `QUARTER_MENTIONS` times, of those named at least
    `QUARTER_SHARE` as often (and whose fiscal year ends when the report's date allows: an outlook's next
    year does not), the latest year's most named; `quarter` is then the calendar quarter most of the
    report's three months fall in (a quarter ended October 29, 2023 is Q3 2023). Otherwise `quarter` is
    the quarter its text names most of those ending on its date (up to `HALF_QUARTER` days before it,
    `QUARTER_BEFORE` after; named `ON_DATE_SHARE` as often as the most named), else of those ending up to
    `QUARTER_AFTER` days after it, named `QUARTER_SHARE` as often. {} for any other document, or a report
    naming no quarter often enough. `labelled`: the date its opening labels as its own, with the words
    before it (`_labelled`)."""
    if dated is None or labelled is None or labelled[0].date != dated or not _QUARTERLY.search(labelled[1]):
        return {}
    counts = Counter(q for block in doc.blocks for q in quarters(block.text))
    top = max(counts.values(), default=0)
    if top < QUARTER_MENTIONS:
        return {}
    # a fiscal quarter q of year y ends the year y (or y + 1, for a year named by its start) 4 - q quarters on
    fiscal = {q: n for q, n in counts.items() if q[2]
              and (dated + timedelta(days=QUARTER_DAYS * (4 - q[1]))).year in (q[0], q[0] + 1)}
    if max(fiscal.values(), default=0) >= QUARTER_MENTIONS:
        kept = [q for q, n in fiscal.items() if n >= QUARTER_SHARE * max(fiscal.values())]
        latest = max(q[0] for q in kept)
        year, quarter, _ = max((q for q in kept if q[0] == latest), key=fiscal.__getitem__)
        calendar = quarter_ended(dated)
        return {"quarter": f"{calendar[0]}-Q{calendar[1]}", "fiscal_quarter": f"{year}-Q{quarter}"}
    # first the quarters most of whose months the report's three fall in (its date a few days or weeks past
    # their end: a week's year), then those ending up to a quarter after it
    for before, after, share in ((HALF_QUARTER, QUARTER_BEFORE, ON_DATE_SHARE),
                                 (QUARTER_BEFORE, QUARTER_AFTER, QUARTER_SHARE)):
        near = {q: n for q, n in counts.items() if not q[2] and n >= share * top
                and -before <= (quarter_end(q[0], q[1]) - dated).days <= after}
        if near:
            year, quarter, _ = max(near, key=near.__getitem__)
            return {"quarter": f"{year}-Q{quarter}"}
    return {}


def own_date(doc: ParsedDocument, name: str = "") -> Period | None:
    """The date that labels `doc`, whose file is called `name` (see `document_facets`), or None."""
    return _own_date(doc, name, next(_labelled(opening_text(doc)), None))


def _own_date(doc: ParsedDocument, name: str, labelled: tuple[Period, str] | None) -> Period | None:
    if labelled is not None:
        return labelled[0]
    titled = [p for p in periods(_NAME_JOINS.sub(" ", f"{doc.title}\n{name}"))[0] if p.month]
    if titled:
        return next((p for p in titled if p.day), titled[0])
    return next(_alone(opening_text(doc, units=1)), None)


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


def _dated(text: str) -> Iterator[tuple[Period, str, str, str]]:
    """Each day and month the text names (not bare years or quarters), with the words before it (a
    label may end the line above: "FOR THE FISCAL YEAR ENDED" / "May 26, 2019"), the text before it
    on its line, and the rest of its line."""
    for period in periods(text)[0]:
        if period.month:
            at, end = period.at, period.at + len(period.text)
            start = text.rfind("\n", 0, at) + 1
            stop = len(text) if (stop := text.find("\n", end)) < 0 else stop
            words = " ".join(text[max(0, at - LABEL_REACH):at].split()) + " "
            yield period, words, text[start:at], text[end:stop]


def _labelled(text: str) -> Iterator[tuple[Period, str]]:
    """Each date the text labels as its own (`document_facets`), with the words before it."""
    for period, words, before, after in _dated(text):
        if (_LABEL.search(words) or _TITLE_OF.match(before)
                or (len(before) <= DATELINE_LEAD and _DATELINE[0].search(before) and _DATELINE[1].match(after))):
            yield period, words


def _alone(text: str) -> Iterator[Period]:
    for period, words, before, after in _dated(text):
        rest = periods(before + " " * len(period.text) + after)[1]
        if len(_WORDS.findall(rest)) <= LINE_WORDS and not _EVENT.search(words) and not _OTHER_FIELD.search(before):
            yield period


def _iso(period: Period) -> str:
    day = period.date
    return day.isoformat() if day else f"{period.year:04d}-{period.month:02d}"


def _year_of(text: str) -> str | None:
    """'2023' of '2023-07-01T10:00:00+00:00' (an ISO date, as parsers store one), or of a date in
    words ('Mon, 3 Jul 2023 10:00:00', a mail header that would not parse)."""
    m = _ISO_YEAR.match(text.strip())
    if m:
        return m.group(0)
    found = first_date(text)
    return str(found.year) if found else None
