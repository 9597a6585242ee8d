"""A table row read the way a person reads it: its label, the column the question asks about, that
column's header (period) and the table's unit.

PDF text keeps a table as lines: a header ("Three Months Ended Nine Months Ended / July 1, 2023
June 25, 2022 July 1, 2023 June 25, 2022"), then rows ("Total units shipped $ 81,797 $ 82,959 $ 293,787
$ 304,182"). `read_row` pairs each figure of a row with its column's date and span, so an answer
can say "Total units shipped, three months ended July 1, 2023: $81,797 million" instead of four bare
figures, and can refuse a row none of whose columns is the period the question asks about. A table of
one moment (a balance sheet) has dates over its columns and no span: its cells are read at their date.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from kb.dates import FISCAL, MONTH, QUARTER_AFTER, Period, first_date, periods, quarter_end, quarter_ended
from kb.question import Question

_SPAN = re.compile(r"(?i)\b(three|six|nine|twelve|thirteen|twenty-six|thirty-nine|fifty-two|\d{1,2})[- ](months?|weeks?)\s+"
                   r"(?:periods?\s+)?ended|\b(quarters?|years?|fiscal years?)\s+ended")
_UNIT = re.compile(r"(?i)\bin\s+(thousands|millions|billions)\b")
_VALUE = re.compile(r"(\$\s*)?(\(?-?\d[\d,]*(?:\.\d+)?\)?)(\s*%)?")
_SCALE = {"thousands": "thousand", "millions": "million", "billions": "billion"}
HEADER_WINDOW = 1500  # characters before a row in which its table's header is looked for


@dataclass(frozen=True)
class Cell:
    label: str  # the row's label: "Total units shipped"
    value: str  # as a reader should see it: "$81,797 million"
    period: str  # the column's header: "three months ended July 1, 2023", a balance sheet's "July 1, 2023"
    group: str = ""  # the line that heads the row's block within the table: "Gross margin percentage"
    date: date | None = None  # the column's date, to tell the latest

    def __str__(self) -> str:
        # in the middle of a line the heading reads in lower case ("net sales"), its acronyms kept ("AWS")
        group = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in self.group.split())
        label = f"{self.label} ({group})" if group else self.label
        return f"{label}, {self.period}: {self.value}" if self.period else f"{label} \u2014 {self.value}"


# A row's words before its first figure; a parenthesis of words is the label's ("expense/(benefit)"), one
# holding a figure is a negative value ("(1,316)", "(-5)") or a note's number ("(Note 5)"), and ends it.
_LABEL = re.compile(r"\s*([A-Za-z](?:[^$\d(]|\([^()\d$]*\))*?)\s*(?=[$\d]|\([^()]*\d)")
_WORD = re.compile(r"[A-Za-z]{3,}")  # a word after a row's first figure (not "NM", "n/a")
_BARE = re.compile(r"\d+\)?")  # digits alone, or closing a parenthesis of words ("Item 1)")


def row_label(row: str) -> str | None:
    """The words of table row `row` before its first figure ("Research and development"), or None."""
    fields = cells(row)
    if fields is not None:
        return fields[0] if re.search(r"[A-Za-z]", fields[0]) else None
    m = _LABEL.match(row)
    return m.group(1).strip(" :.") if m else None


def read_row(row: str, before: str, question: Question) -> Cell | None | bool:
    """The cell of table row `row` for the period `question` asks about, given the text `before` the
    row (where its header is). None: the row's columns cannot be told apart (no header with dates,
    or figures that do not line up with it). False: they can, and none is the period asked about."""
    fields = cells(row)
    if fields is not None:
        return _read_cells(fields, before, question)
    label_match = _LABEL.match(row)
    if not label_match:
        return None
    label = label_match.group(1).strip(" :.")
    rest = row[label_match.end():]
    found = list(_VALUE.finditer(rest))
    values = [(m.group(1) or "", m.group(2)) for m in found if not m.group(3)]
    percents = [("", m.group(2) + "%") for m in found if m.group(3)]
    if max(len(values), len(percents)) < 2:
        return None
    if _WORD.search(rest) and any(_BARE.fullmatch(figure) and not dollar for dollar, figure in values):
        # a bare number among words: a sentence broken across lines ("... in our 2022 annual report and",
        # "(see section 4) and"), not a row, whose amounts are written as amounts ("$ 5.2", "1,311", "(61)")
        return None
    window = before[-HEADER_WINDOW:]
    header_text = " ".join(window.split())
    spans = list(_SPAN.finditer(header_text))
    moment, start = _moment_header(window)
    if moment and all(m.end() < start - SPAN_GAP for m in _SPAN.finditer(window)):
        spans = []  # a span above is another table's or a sentence's: this one's columns are dates alone
    if spans:
        header = header_text[_group_start(spans):]
        spans = list(_SPAN.finditer(header))
        dates = _dates(header)
        if len(spans) == 1 and len(values) > len(dates) and re.search(r"(?i)\bchange\b", header):
            values = values[:len(dates)]  # "April 30, 2023 May 1, 2022 $ Change % Change": the dated columns come first
    else:
        dates = moment
    if len(values) != len(dates) and len(percents) == len(dates):
        values = percents  # a row of shares ("Gross margin percentage 43.3 % 43.3 %"): its figures are the %
    if len(values) != len(dates) or not dates:
        return None  # figures and dated columns do not line up: not this header's row, or no header
    if spans:
        per_span = len(dates) // len(spans) if len(dates) % len(spans) == 0 else len(dates)
        columns = [(_span_words(spans[min(i // per_span, len(spans) - 1)]), dates[i]) for i in range(len(dates))]
    else:
        columns = [("", d) for d in dates]  # a date alone: a balance at that date, or a roll-forward's step to it
    wanted = _wanted_column(columns, question)
    if wanted is None:
        return False
    dollar, figure = values[wanted]
    # the table's own "(In millions, except ... in thousands)", else the last unit the text states
    unit = re.findall(r"(?i)\(\s*(?:dollars\s+|amounts\s+)?in\s+(thousands|millions|billions)", header_text) \
        or _UNIT.findall(header_text)
    scale = f" {_SCALE[unit[-1].lower()]}" if unit and not figure.endswith("%") else ""
    dollar = "$" if (dollar or "$" in row) and not figure.endswith("%") else ""
    span, when = columns[wanted]
    return Cell(label, f"{dollar}{figure}{scale}", f"{span} {when}".strip(), _group(before, label), first_date(when))


GROUP_WORDS = 6  # a line that heads a block of rows is short ("Gross margin percentage:"); a longer one is prose


def _group(before: str, label: str) -> str:
    """The line that heads the row's block of rows ("Gross margin percentage:" above "Products 34.5 %"),
    found going up over the block's other rows; "" when none or when the label already says what it
    counts ("Total net sales" under "Net sales by category:")."""
    for line in reversed(before.rstrip().split("\n")[-30:]):
        line = line.strip()
        if not line or re.match(r"(?i)total\b.*\d", line):
            return ""  # a blank line, or a block's total row: the row's block ends above it
        if line.endswith(":") and not re.search(r"\d", line) and len(line.split()) <= GROUP_WORDS:
            group = line.rstrip(":").strip()
            return "" if _words(group) & _words(label) else group
        if not re.search(r"[A-Za-z].*\d", line):
            return ""  # the header or a heading: the row heads its own block
    return ""


_MONTH_DAY = rf"{MONTH}\s+\d{{1,2}},?"
_DATE_GROUP = re.compile(rf"(?i)((?:\b{_MONTH_DAY}\s+)+)((?:(?:19|20)\d\d\b\s*)+)")


def _dates(header: str) -> list[str]:
    """The header's column dates, in order, however the header prints them: "July 1, 2023 June 25,
    2022", the days on one line and the years under them ("April 30, May 1, / 2023 2022"), or one
    day over several years ("September 30, / 2023 2022")."""
    out: list[str] = []
    for m in _DATE_GROUP.finditer(header):
        days = [" ".join(d.rstrip(",").split()) for d in re.findall(rf"(?i)\b{_MONTH_DAY}", m.group(1))]
        years = re.findall(r"(?:19|20)\d\d", m.group(2))
        if len(days) == 1:
            days = days * len(years)
        if len(days) == len(years):
            out += [f"{d}, {y}" for d, y in zip(days, years)]
    return out


# A row with words among its figures ("... 1,200,000 shares issued and outstanding 5,310 4,980") ends in two.
_TRAILING_FIGURES = re.compile(r"(?:\s[$(]*-?\d[\d,.]*\)?%?){2,}\s*$")
SPAN_GAP = 40  # characters: a span this close above a table's date lines heads them ("Three Months Ended")
# A line of a header that holds only dates: "July 1,", "2023", "September 24, 2022", "As of June 30, 2023".
_DATE_LINE = re.compile(rf"(?i)(?:(?:as\s+of|at)\s+)?(?:(?:{_MONTH_DAY}|(?:19|20)\d\d)\s*)+")


def _moment_header(before: str) -> tuple[list[str], int]:
    """The column dates of a table of one moment, with no span over them (a balance sheet's "July 1,
    2023 / September 24, 2022"), and where they start in `before`: the run of date lines above the row,
    reached through the table's rows and short headings only; none past a line of prose (a date there
    is not this table's header): ([], -1)."""
    header: list[str] = []
    start = -1
    lines = before.split("\n")
    offsets = list(itertools.accumulate([0, *(len(line) + 1 for line in lines[:-1])]))
    for line, at in zip(reversed(lines), reversed(offsets)):
        text = line.strip()
        if not text:
            continue
        if _DATE_LINE.fullmatch(text):
            header.append(text)
            start = at
            continue
        if header:
            break
        label = _LABEL.match(text)
        rest = text[label.end():] if label else text
        row = re.search(r"\d", rest) and not _WORD.search(rest) or _TRAILING_FIGURES.search(text)
        heading = len(text.split()) <= GROUP_WORDS and not text.endswith(".") and not text[0].islower()
        if not (row or heading):  # a row, or a heading of the table ("Current assets:"), else prose
            return [], -1
    return _dates(" ".join(reversed(header))), start


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)}


def _group_start(spans: list[re.Match[str]]) -> int:
    """Where the last header starts: the first of the span phrases that follow one another closely."""
    start = spans[-1].start()
    for prev in reversed(spans[:-1]):
        if start - prev.end() > 40:
            break
        start = prev.start()
    return start


def _span_words(m: re.Match[str]) -> str:
    text = " ".join(m.group(0).split()).lower()
    text = re.sub(r"-(months?|weeks?)", r" \1", text)
    text = re.sub(r"\b(quarter|year)s ended", r"\1 ended", text)  # "Years Ended": each column is one year
    return re.sub(r"\bmonth periods? ended", "months ended", text)


def _wanted_column(columns: list[tuple[str, str]], question: Question) -> int | None:
    """The column the question asks about: its date, else its span ('nine months'), among those of
    the question's year if any; of those, the latest date, the first of them (the shortest span,
    as tables put it first). None: the question names a date no column has."""
    candidates = list(range(len(columns)))
    dated = [p for p in question.periods if p.date is not None]
    if dated:
        candidates = [i for i in candidates if any(t.found_in(columns[i][1]) for t in dated)]
        if not candidates:
            return None
    years = {str(p.year) for p in question.periods}
    candidates = [i for i in candidates if columns[i][1][-4:] in years] or candidates
    span = re.search(r"(?i)\b(three|six|nine|twelve)[- ]months?\b|\bquarter(?:ly)?\b", question.text)
    if span:
        word = span.group(1).lower() if span.group(1) else "three"
        candidates = [i for i in candidates if columns[i][0].startswith(word)] or candidates
    when = {i: first_date(columns[i][1]) for i in candidates}
    latest = max((d for d in when.values() if d is not None), default=None)
    return next(i for i in candidates if when[i] == latest)


# A table whose cells the parser kept apart (Markdown's pipes; Word, slides, web pages and spreadsheets
# joined as "a | b | c"): its header is its first row, over the same number of cells.
_RULE = re.compile(r"[\s|:+=-]*-[\s|:+=-]*")  # Markdown's "|---|:--:|" under the header: no cells
_KEYED = re.compile(r"[^:|]+:\s")  # "Sales: 1200": a spreadsheet row's cell names its column itself
# A header's words around its period that say what kind of period it is ("Year ended December 31, 2024",
# "Three months ended", "As of", "FY"): the header is still a period.
_PERIOD_WORDS = re.compile(r"(?i)(?:\b(?:years?|months?|weeks?|quarters?|fiscal|ended|ending|as|of|at|to|the|"
                           r"three|six|nine|twelve|fy|ytd|q[1-4]|13|26|39|52|53)\b|[^A-Za-z0-9])*")


def cells(line: str) -> list[str] | None:
    """The cells of a table line that separates them with "|" ("| Revenue | 12,450 | 11,980 |",
    "Revenue | 12,450 | 11,980", " | 2023 | 2022" with its first cell empty), or None for any other line
    and for a spreadsheet's row, whose cells name their columns ("Region: North | Sales: 1200")."""
    text = line.strip()
    if "|" not in text or _RULE.fullmatch(text):
        return None
    if len(text) > 1 and text.startswith("|") and text.endswith("|"):
        text = text[1:-1]  # Markdown's outer pipes; one pipe at one end only is an empty cell beside it
    fields = [f.strip() for f in text.split("|")]
    if len(fields) < 2 or all(_KEYED.match(f) for f in fields if f):
        return None
    return fields


def table_line(line: str) -> bool:
    """A line of a table of cells: a row, or Markdown's rule under the header."""
    return cells(line) is not None or bool(_RULE.fullmatch(line.strip()) and "|" in line)


def _read_cells(row: list[str], before: str, question: Question) -> Cell | None | bool:
    """`read_row` for a row of cells. With periods in the header ("Q1 2024 | Q4 2023", "Year ended December
    31, 2024", "FY24"): the column of the period the question asks about, of the span it asks for ("nine
    months", a whole year); with no period asked, the latest; other columns ("Change") are not read.
    False only when every column is a period at least as precise as the one asked and none is it. With a
    header of other words, only where Markdown's rule under it shows it is a header (a table of another
    format may have none): the column whose header the question names ("Phone"), else every cell with its
    header ("Department: Finance, Phone: 4411"). None: no header known (the table's first rows out of
    reach, or a header of neither kind), or a label of no words."""
    label, values = row[0], row[1:]
    found = _cell_header(before, len(row))
    if found is None or not re.search(r"[A-Za-z]", label) or not any(values):
        return None
    header, ruled = found
    if _period_of(header[0]) is not None:
        return None  # a header with no corner cell: its columns sit one to the left of the row's figures
    heads = header[1:]
    when = {i: p for i, h in enumerate(heads) if (p := _period_of(h)) is not None}
    if when:  # the dated columns ("2023 | 2022 | Change": a change column is no period's)
        asked = question.periods
        hits = [i for i in when if any(_covers(when[i], heads[i], p) for p in asked)] if asked else list(when)
        if not hits:
            precise = len(when) == len(heads) and all(_precision(when[i]) >= _precision(p) for i in when for p in asked)
            return False if precise and not FISCAL.search(question.text) and not _maybe_own(when, asked) else None
        wanted = max(hits, key=lambda i: (_span_fits(heads[i], when[i], question), _order(when[i])))
    elif ruled:
        words = _words(question.text)
        named_columns = [i for i, h in enumerate(heads) if _words(h) & words]
        if len(named_columns) != 1:
            pairs = [f"{h}: {v}" if h else v for h, v in zip(heads, values) if v]
            return Cell(label, ", ".join(pairs), "")
        wanted = named_columns[0]
    else:
        return None  # a header of words that may be a first row of data
    value = values[wanted]
    if not value:
        return None
    period = when.get(wanted)
    return Cell(label, value, heads[wanted], date=_end(period) if period else None)


_SPANS = re.compile(r"(?i)\b(three|six|nine|twelve)[- ]months?\b|\b(quarter(?:ly)?|13[- ]weeks?)\b")
_QUARTER_SPAN = re.compile(r"(?i)\bthree[- ]months?|\bquarter|\b13[- ]weeks?")  # a column's header of one quarter
_WHOLE_YEAR = re.compile(r"(?i)\b(?:years?|twelve[- ]months|fy|fiscal)\b")


def _period_of(head: str) -> Period | None:
    """The one period a header cell names, when it names nothing else ("Year ended December 31, 2024",
    "FY24"; not "Budget 2024", "2024 (restated)", "FY2023-24")."""
    named, rest = periods(head)
    return named[0] if len(named) == 1 and _PERIOD_WORDS.fullmatch(rest) else None


def _maybe_own(when: dict[int, Period], asked: Sequence[Period]) -> bool:
    """Whether a column ends up to a quarter before a quarter asked: that quarter as a company whose year
    starts a quarter before the calendar's may name it ("the first quarter of 2024" ended December 31,
    2023), so the row is not surely of another period."""
    ends = [quarter_end(p.year, p.quarter) for p in asked if p.quarter and not p.month]
    return any(c.date is not None and 0 <= (end - c.date).days <= QUARTER_AFTER for c in when.values() for end in ends)


def _precision(period: Period) -> int:
    return 3 if period.day else 2 if period.month else 1 if period.quarter else 0


def _span_fits(head: str, column: Period, question: Question) -> bool:
    """Whether the column is of the span the question asks for: "nine months", a quarter ("three
    months", a quarter's period), or with only a year asked, the whole year."""
    asked = _SPANS.search(question.text)
    if asked and asked.group(1):
        return asked.group(1).lower() in head.lower()
    if asked or any(p.quarter for p in question.periods):
        return bool(_QUARTER_SPAN.search(head)) or bool(column.quarter)
    if question.periods and all(_precision(p) == 0 for p in question.periods):
        # "Fiscal Year 2023", "Twelve months ended ...", "2023": not "Fourth Quarter Fiscal 2023"
        quarterly = column.quarter or _QUARTER_SPAN.search(head)
        return not quarterly and (bool(_WHOLE_YEAR.search(head)) or _precision(column) == 0)
    return True


def _covers(column: Period, head: str, asked: Period) -> bool:
    """Whether the column headed `head` (read as `column`) is of the period asked: as written ("Q4
    2023"), or as read ("FY23" for 2023, "Jun 2024" for Q2 2024, "4Q23" for 2023, a quarter ended
    October 29, 2023 for Q3 2023)."""
    if asked.found_in(head):
        return True
    if asked.quarter is not None and not asked.month and column.date is not None:
        # a span ended on a day is the quarter most of its last three months fall in (a week's year ends
        # a few days off the calendar's), as a report's own quarter is read
        return quarter_ended(column.date) == (asked.year, asked.quarter)
    if column.year != asked.year:
        return False
    if asked.date is not None:
        return column.date == asked.date
    if asked.month is not None:
        return column.month == asked.month
    if asked.quarter is not None:
        month = column.month or (3 * column.quarter if column.quarter else None)
        return month is not None and (month - 1) // 3 + 1 == asked.quarter
    return True


def _cell_header(before: str, width: int) -> tuple[list[str], bool] | None:
    """The first row of the table of cells that ends `before`, and whether Markdown's rule stands under
    it: going up over the table's rows (each of `width` cells) to the line above the table. None when
    the table's top is not in `before` (it starts before the text reaches), when a row of another width
    breaks it, or when the row asked about is the table's first. A table the text starts with is headed
    by its first row only under Markdown's rule."""
    first: list[str] | None = None
    ruled = rule_below = False
    for line in reversed(before.rstrip().split("\n")):
        if _RULE.fullmatch(line.strip()) and "|" in line:
            rule_below = True
            continue
        fields = cells(line)
        if fields is None:
            return (first, ruled) if first is not None else None  # the line above the table
        if len(fields) != width:
            return None
        first, ruled, rule_below = fields, rule_below, False
    # the text starts with the table: its first row is its header when Markdown's rule says so, else the
    # text may start inside it, its header out of reach
    return (first, True) if first is not None and ruled else None


def _order(period: Period) -> tuple[int, int, int]:
    """A period's place in time, to tell the latest: its year, then its quarter or month, then its day."""
    month = period.month or (period.quarter * 3 if period.quarter else 12)
    return period.year, month, period.day or 31


def _end(period: Period) -> date:
    """The last day of `period`, as a table's column of it is dated."""
    if period.date:
        return period.date
    if period.quarter and not period.month:
        return quarter_end(period.year, period.quarter)
    year, month, _ = _order(period)
    return date(year, 12, 31) if month == 12 else date(year, month + 1, 1) - timedelta(days=1)
