"""Calendar dates written in text ("July 1, 2023", "1 July 2023", "2023-07-01", "07/01/2023") and
years named in it ("2023", "FY2019"): read the same way from a document's first page and from a
question, so the two can be matched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

_MONTHS = {name: n for n, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec")), start=1) for name in names}
_MONTH = r"(?P<{}>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{}>(?:1[6-9]|2\d)\d\d)"  # 1600-2999: a four-digit figure outside is no year

# One alternation, so the first date in the text wins whatever its form.
_DATE = re.compile(
    r"(?<![\w/.-])(?:"
    + _MONTH.format("m1") + r"\s+" + _DAY.format("d1") + r",?\s+" + _YEAR.format("y1")  # July 1, 2023
    + "|" + _DAY.format("d2") + r"\s+(?:of\s+)?" + _MONTH.format("m2") + r",?\s+" + _YEAR.format("y2")  # 1 July 2023
    + "|" + _YEAR.format("y3") + r"-(?P<m3>[01]?\d)-(?P<d3>[0-3]?\d)"  # 2023-07-01
    + "|" + r"(?P<a4>[0-3]?\d)(?P<s4>[/.])(?P<b4>[0-3]?\d)(?P=s4)" + _YEAR.format("y4")  # 07/01/2023, 9.19.2022
    + "|" + _MONTH.format("m5") + "-" + _DAY.format("d5") + "-" + _YEAR.format("y5")  # Oct-16-2023
    + r")(?![\w/-])",
    re.IGNORECASE,
)
# A year standing alone or glued to a fiscal-year prefix ("FY2019"), not a part of a longer figure.
_YEAR_ALONE = re.compile(r"(?<![\d,.$/-])(?:FY)?((?:19|20)\d\d)(?![\d,/]|\.\d)", re.IGNORECASE)


def dates(text: str) -> Iterator[date]:
    """Every valid calendar date written in `text`, in order (February 30 and the like are skipped)."""
    for m in _DATE.finditer(text):
        got = _date_of(m)
        if got is not None:
            yield got


def first_date(text: str) -> date | None:
    """The first valid calendar date in `text`, or None."""
    return next(dates(text), None)


def years(text: str) -> list[str]:
    """The four-digit years `text` names ("in 2022", "FY2019", "2023 Q1"), in order, without repeats."""
    return list(dict.fromkeys(m.group(1) for m in _YEAR_ALONE.finditer(text)))


def _date_of(m: re.Match[str]) -> date | None:
    g = m.groupdict()
    if g["y1"] or g["y2"] or g["y5"]:
        n = next(n for n in "125" if g["y" + n])
        return _valid(int(g["y" + n]), _MONTHS[g["m" + n].lower()], int(g["d" + n]))
    if g["y3"]:
        return _valid(int(g["y3"]), int(g["m3"]), int(g["d3"]))
    a, b = int(g["a4"]), int(g["b4"])
    return _valid(int(g["y4"]), a, b) or _valid(int(g["y4"]), b, a)  # 25/12/2023 is a day first


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
