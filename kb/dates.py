"""Dates and periods written in text: calendar dates ("July 1, 2023", "1 July 2023", "2023-07-01",
"07/01/2023"), quarters ("Q3 2023", "3Q23", "third quarter of fiscal 2023"), months ("March 2023"),
fiscal and bare years ("FY2019", "2022"). One grammar, read the same way from a document's first
page, from a question and from a table's header, so the three can be matched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_MONTH_NUMBERS = {name: n for n, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec")), start=1) for name in names}
_MONTH_NAMES = "|".join(sorted(_MONTH_NUMBERS, key=len, reverse=True))
MONTH = rf"(?:{_MONTH_NAMES})\.?"  # a month, spelled out or cut short ("Sept.")
_MONTH = r"(?P<{}>" + _MONTH_NAMES + r")\.?"
_DAY = r"(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{}>(?:1[6-9]|2\d)\d\d)"  # 1600-2999: a four-digit figure outside is no year

# One alternation, so the first date in the text wins whatever its form.
DATE = re.compile(
    r"(?<![\w/.-])(?:"
    + _MONTH.format("m1") + r"\s+" + _DAY.format("d1") + r",?\s+" + _YEAR.format("y1")  # July 1, 2023
    + "|" + _DAY.format("d2") + r"\s+(?:of\s+)?" + _MONTH.format("m2") + r",?\s+" + _YEAR.format("y2")  # 1 July 2023
    + "|" + _YEAR.format("y3") + r"-(?P<m3>[01]?\d)-(?P<d3>[0-3]?\d)"  # 2023-07-01
    + "|" + r"(?P<a4>[0-3]?\d)(?P<s4>[/.])(?P<b4>[0-3]?\d)(?P=s4)" + _YEAR.format("y4")  # 07/01/2023, 9.19.2022
    + "|" + _MONTH.format("m5") + "-" + _DAY.format("d5") + "-" + _YEAR.format("y5")  # Oct-16-2023
    + r")(?![\w/-])",
    re.IGNORECASE,
)
_CENTURY_YEAR = r"(?:19|20)\d\d"
ORDINALS = ("first", "second", "third", "fourth")
_QUARTER = re.compile(
    rf"(?i)\bQ([1-4])\s*(?:of\s+)?(?:fiscal\s+(?:year\s+)?)?(?:FY\s*)?'?(\d{{4}}|\d\d)\b"
    rf"|\b([1-4])Q\s*'?(\d{{4}}|\d\d)\b"
    rf"|\b(first|second|third|fourth|1st|2nd|3rd|4th)[\s-]+(?:fiscal\s+)?quarter\s+(?:of\s+)?(?:the\s+)?"
    rf"(?:fiscal\s+(?:year\s+)?)?(?:FY\s*)?'?({_CENTURY_YEAR})\b"
    # the year first, on one line: "2022 Q2", "FY24 Q3", "fiscal 2024 Q2"
    rf"|\b(?:(?:FY|fiscal\s+(?:year\s+)?)\s*'?(\d{{4}}|\d\d)|({_CENTURY_YEAR}))[ \t]*[-_]?[ \t]*Q([1-4])\b"
)
_MONTH_YEAR = re.compile(rf"(?i)\b({MONTH})\s+({_CENTURY_YEAR})\b")
_FISCAL = re.compile(r"(?i)\b(?:FY|fiscal\s+(?:year\s+)?)\s*'?(\d{4}|\d\d)\b")
# A year standing alone, not a part of a figure ("2,019", "$2018", "2019.5", "2019%"); a comma or a
# slash after it is punctuation ("In Q3 2023, ...", "2022/2023").
_BARE_YEAR = re.compile(rf"(?<![\d$.,])({_CENTURY_YEAR})(?![\d%]|[.,]\d)")


@dataclass(frozen=True)
class Period:
    """A period a text names, as written (`text`), with its year and, as far as it says them, its
    quarter, month and day; `query` is what to look it up with in a keyword index."""

    text: str
    year: int
    quarter: int | None = None
    month: int | None = None
    day: int | None = None
    at: int = 0  # where the text names it

    kind = "period"

    @property
    def date(self) -> date | None:
        return date(self.year, self.month, self.day) if self.month and self.day else None

    @property
    def query(self) -> str:
        if self.quarter:
            return f"Q{self.quarter} {self.year} {ORDINALS[self.quarter - 1]} quarter {self.year}"
        if self.month:
            month = MONTHS[self.month - 1]
            return f"{month} {self.day} {self.year}" if self.day else f"{month} {self.year}"
        return str(self.year)

    @cached_property
    def _patterns(self) -> tuple[re.Pattern[str], ...]:
        year, yy = str(self.year), str(self.year)[2:]
        patterns: tuple[str, ...]
        if self.quarter:
            n, ordinal = self.quarter, ORDINALS[self.quarter - 1]
            fiscal = r"(?:of\s+)?(?:the\s+)?(?:fiscal\s+(?:year\s+)?)?(?:FY\s*)?"
            # file names join with "_" ("ACME_2023Q3_report"): edges are letters and digits, not word boundaries
            a, z = r"(?<![0-9a-z])", r"(?![0-9a-z])"
            patterns = (rf"{a}Q{n}[\s_-]*{fiscal}'?(?:{year}|{yy}){z}",  # "Q1 2023", "Q1_FY2023", "Q1-23"
                        rf"{a}{ordinal}[\s-]+(?:fiscal\s+)?quarter\s+{fiscal}{year}{z}",
                        rf"{a}{year}\s*[-_ ]?\s*Q{n}{z}",
                        rf"{a}FY[\s_-]*'?(?:{year}|{yy})[\s_-]*Q{n}{z}",  # "FY2023_Q1", "FY23 Q1"
                        rf"{a}{n}Q\s*'?(?:{year}|{yy}){z}")
        elif self.month and not self.day:
            month = MONTHS[self.month - 1][:3]
            patterns = (rf"\b{month}[a-z]*\.?\s+(?:\d{{1,2}},?\s+)?{year}\b",)
        else:
            patterns = (rf"(?<!\d){year}(?!\d)",)
        return tuple(re.compile(p, re.IGNORECASE) for p in patterns)

    def found_in(self, text: str) -> bool:
        """Whether `text` mentions this period: a day written in any form `dates` reads, a quarter
        in any of the ways a filing or its file name writes one, a month with its year or a day in it
        ("2024-02-20" for February 2024), a year."""
        if self.date is not None:
            return self.date in dates(text)
        if any(p.search(text) for p in self._patterns):
            return True
        return bool(self.month) and any((d.year, d.month) == (self.year, self.month) for d in dates(text))


def dates(text: str) -> Iterator[date]:
    """Every valid calendar date written in `text`, in order (February 30 and the like are skipped)."""
    for m in DATE.finditer(text):
        got = _date_of(m)
        if got is not None:
            yield got


def first_date(text: str) -> date | None:
    """The first valid calendar date in `text`, or None."""
    return next(dates(text), None)


def periods(text: str) -> tuple[list[Period], str]:
    """The periods `text` names, in order and without repeats, and the text with them blanked out
    (so "March" in a date is not also read as a name). The most specific form is read first: a
    day, a quarter, a month, a fiscal year, a bare year."""
    found: list[Period] = []

    def take(m: re.Match[str], period: Period) -> None:
        nonlocal text
        found.append(period)
        text = text[:m.start()] + " " * (m.end() - m.start()) + text[m.end():]

    for m in list(DATE.finditer(text)):
        day = _date_of(m)
        if day is not None:
            take(m, Period(m.group(0), day.year, None, day.month, day.day, m.start()))
    for m in list(_QUARTER.finditer(text)):
        year, n = _quarter_of(m)
        take(m, Period(m.group(0), year, n, at=m.start()))
    for m in list(_MONTH_YEAR.finditer(text)):
        take(m, Period(m.group(0), int(m.group(2)), month=_MONTH_NUMBERS[m.group(1).rstrip(".").lower()],
                       at=m.start()))
    for m in list(_FISCAL.finditer(text)):
        take(m, Period(m.group(0), _year(m.group(1)), at=m.start()))
    for m in list(_BARE_YEAR.finditer(text)):
        take(m, Period(m.group(0), int(m.group(1)), at=m.start()))
    unique: dict[str, Period] = {}
    for period in sorted(found, key=lambda p: p.at):
        unique.setdefault(period.text.lower(), period)
    return list(unique.values()), text


# A period written as a fiscal year's ("Q2 of FY2024", "the third quarter of fiscal 2024"): a company's own
# calendar, whose quarters need not be the calendar's.
FISCAL = re.compile(r"(?i)fiscal|FY")
HALF_QUARTER = 45  # days before a quarter's end: the month most of it falls in
# days: a quarter as a company counts it ends a few days after the calendar's (a week's year), or up to a
# quarter after it (a fiscal year from October: "the first quarter of 2023" ended December 31, 2022)
QUARTER_BEFORE, QUARTER_AFTER = 10, 100


def quarters(text: str) -> Iterator[tuple[int, int, bool]]:
    """Each quarter `text` names, as (year, quarter, fiscal): fiscal when it is written as a fiscal
    year's ("the third quarter of fiscal year 2024", "Q3 FY24"), whose year a company counts its own way."""
    for m in _QUARTER.finditer(text):
        year, n = _quarter_of(m)
        yield year, n, bool(FISCAL.search(m.group(0)))


def quarter_end(year: int, quarter: int) -> date:
    """The calendar's last day of `quarter` of `year`."""
    return date(year, 12, 31) if quarter == 4 else date(year, 3 * quarter + 1, 1) - timedelta(days=1)


def quarter_ended(day: date) -> tuple[int, int]:
    """(year, quarter) of three months that end on `day`: the calendar quarter most of them fall in (a
    quarter ended October 29, 2023 is Q3 2023; one ended July 1, 2023 is Q2)."""
    middle = day - timedelta(days=HALF_QUARTER)
    return middle.year, (middle.month - 1) // 3 + 1


def _quarter_of(m: re.Match[str]) -> tuple[int, int]:
    if m.group(1):
        return _year(m.group(2)), int(m.group(1))
    if m.group(3):
        return _year(m.group(4)), int(m.group(3))
    if m.group(5):
        return int(m.group(6)), _ordinal(m.group(5))
    return (_year(m.group(7)) if m.group(7) else int(m.group(8))), int(m.group(9))


def name_period(source: str) -> tuple[int, int] | None:
    """(year, quarter or month) from a file's name, as a series of reports names them: '2023 Q3 Acme.pdf'
    -> (2023, 3); 'ACME_2023Q2_report' -> (2023, 2); 'report-2024-06.pdf' -> (2024, 6); 'ACME_2017_annual'
    -> (2017, 0); no year -> None."""
    name = re.split(r"[\\/]", source)[-1]
    years = [int(y) for y in re.findall(r"(?<!\d)((?:19|20)\d\d)(?!\d{2})", name)]
    if not years:
        return None
    year = max(years)
    part = re.search(rf"{year}\s*[-_ ]?\s*Q([1-4])(?![0-9a-z])|(?<![0-9a-z])Q([1-4])\s*[-_ ]?\s*{year}"
                     rf"|{year}[-_.](0[1-9]|1[0-2])(?![0-9a-z])", name, re.I)
    return year, int(next((g for g in part.groups() if g), 0)) if part else 0


def _date_of(m: re.Match[str]) -> date | None:
    g = m.groupdict()
    if g["y1"] or g["y2"] or g["y5"]:
        n = next(n for n in "125" if g["y" + n])
        return _valid(int(g["y" + n]), _MONTH_NUMBERS[g["m" + n].lower()], int(g["d" + n]))
    if g["y3"]:
        return _valid(int(g["y3"]), int(g["m3"]), int(g["d3"]))
    a, b = int(g["a4"]), int(g["b4"])
    return _valid(int(g["y4"]), a, b) or _valid(int(g["y4"]), b, a)  # 25/12/2023 is a day first


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _year(text: str) -> int:
    """A year written in two digits or four: '23' -> 2023, '98' -> 1998."""
    return int(text) if len(text) == 4 else (2000 if int(text) < 70 else 1900) + int(text)


def _ordinal(word: str) -> int:
    word = word.lower()
    return ORDINALS.index(word) + 1 if word in ORDINALS else int(word[0])
