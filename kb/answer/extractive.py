"""Answers without a model: the sentences (or table lines) of the best passages that answer the
question, each with its [n], so the answer cannot say anything the documents do not."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from kb.answer.citations import first_sentence, shorten, split_sentences
from kb.answer.tables import GROUP_WORDS, Cell, cells, read_row, table_line
from kb.answer.types import Answer, Citation, Source
from kb.dates import DATE
from kb.errors import install_command
from kb.question import STOPWORDS, Question, read

if TYPE_CHECKING:
    import numpy as np

    from kb.embed.base import Embedder

# How to get a written answer: in `kb ask --help`, and shown by `kb ask` once per knowledge base (not in
# every answer's note).
WRITTEN_ANSWER = ("For a written answer: run Ollama (ollama serve; ollama pull llama3.2), or pass --llm llama-cpp "
                  "[--model FILE.gguf] after " + install_command("llm") + ".")
PLUG_IN_HINT = "No LLM configured, so these are the passages' own sentences. " + WRITTEN_ANSWER


def extractive_answer(question: str | Question, sources: Sequence[Source], embedder: Embedder,
                      max_sentences: int = 3) -> Answer:
    """The sentences (or table lines) of the passages that best answer the question, each with its
    [n]: an answer that cannot say anything the documents do not. The lines are gathered (`_units`),
    scored (`_scores`), the best chosen (`_choose`) and cited (`_cite`)."""
    asked = read(question) if isinstance(question, str) else question
    units = _units(sources)
    scores, vecs = _scores(asked, units, sources, embedder)
    order = sorted(range(len(units)), key=lambda i: -scores[i])
    words = _asked_words(asked)
    far = [scores[i] < scores[order[0]] - CELL_BAND for i in order]
    cell = _best_cell(asked, words, [units[i] for i in order], far)
    picked = _choose(asked, units, order, scores, vecs, cell, max_sentences)
    lines = [f"{cell[1]} [{cell[0].n}]"] if cell else []
    lines += [f"{_read_rows(asked, source, unit)} [{source.n}]" for source, unit in picked[1 if cell else 0:]]
    return Answer(asked.text, "\n".join(lines), _cite(picked), [], None, "extractive", sources=list(sources))


def _units(sources: Sequence[Source]) -> list[tuple[Source, str]]:
    """The lines worth quoting, with their source: sentences, and table rows under the line that
    introduces them."""
    units: list[tuple[Source, str]] = []
    for s in sources:
        sents = split_sentences(s.text)
        # the headings the passage sits under ("Red lentil soup > Method"): they name its topic, answer nothing
        headings = {h.strip().lower() for hit in s.hits for h in (hit.section or "").split(" > ")}
        for i, sent in enumerate(sents):
            if i == 0 and _starts_midway(sent) or i == len(sents) - 1 and _stops_midway(sent):
                continue  # the passage's edge cut this sentence: quoting it would cut it too
            if sent.strip().lower() in headings or i == 0 and s.hits[0].char_start == 0 and _title(sent):
                continue
            if _quotable(sent):
                if sent.endswith(":"):  # "... were as follows (in millions):" quotes the rows it introduces
                    after = itertools.takewhile(lambda x: not _prose(x), sents[i + 1:i + 14])
                    sent = "\n".join([sent, *[x for x in after if _table_row(x)][:3]])
                units.append((s, sent))
    return units or [(s, first_sentence(s.text)) for s in sources[:1]]


def _asked_words(question: Question) -> set[str]:
    """The question's content words but its names and periods: those chose the documents
    (kb.answer.retrieve), and within them they match every line ("Acme" in "Acme Foundry Services")."""
    named = {w for t in question.about for w in _content_words(t.text)}
    return _content_words(question.text) - named or _content_words(question.text)


def _scores(question: Question, units: list[tuple[Source, str]], sources: Sequence[Source],
            embedder: Embedder) -> tuple[list[float], np.ndarray]:
    """Each line's score, and the lines' vectors.

    A line's score is its cosine to the question, plus a share of the question's content words it
    holds (embeddings of short lines drift towards any line naming the company), plus a little for
    a figure when the question asks for an amount, plus a little for a better-ranked passage, plus
    the share of the line's own content words that the question holds (so the short table row
    "Total units shipped 81,797" beats a long sentence that merely mentions units shipped)."""
    q = embedder.embed_query(_FRAMING.sub(" ", question.text))
    vecs = embedder.embed_documents([u for _, u in units])
    cos = vecs @ q
    words = _asked_words(question)
    wants_amount = bool(_AMOUNT.search(question.text))
    top = max(s.relevance for s in sources)
    scores = []
    for i, (s, unit) in enumerate(units):
        unit_words = _content_words(unit)
        overlap = len(words & unit_words) / len(words) if words else 0.0
        precision = len(words & unit_words) / len(unit_words) if unit_words else 0.0
        figure = 1.0 if wants_amount and _FIGURE.search(_YEAR.sub(" ", DATE.sub(" ", unit))) else 0.0
        scores.append(float(cos[i]) + W_OVERLAP * overlap + W_PRECISION * precision + W_FIGURE * figure
                      + W_RANK * (s.relevance - top))
    return scores, vecs


def _choose(question: Question, units: list[tuple[Source, str]], order: list[int], scores: list[float],
            vecs: np.ndarray, cell: tuple[Source, Cell, str] | None, max_sentences: int) -> list[tuple[Source, str]]:
    """The lines to quote, best first: the table row read at the asked column (`cell`), then the best
    lines close to the best score, without repeats and rows of other periods."""
    best = scores[order[0]]
    picked: list[tuple[Source, str]] = [(cell[0], cell[2])] if cell else []
    chosen: list[int] = []
    for i in order:
        if len(picked) == max_sentences or scores[i] < best - 0.15:
            break
        if any(float(vecs[i] @ vecs[j]) > 0.92 or units[i][1] in units[j][1] or _same_figures(units[i][1], units[j][1])
               for j in chosen):
            continue  # the same line from overlapping passages, or the same table row printed twice
        chosen.append(i)
        source, unit = units[i]
        if _other_period(question, source, unit):
            continue  # a row of another period than the one asked about
        if cell and (cell[2] in unit or _same_figures(cell[2], unit)):
            continue  # the row the first line already reads
        if cell and cell[1].date and not question.periods and _older(question, source, unit, cell[1].date):
            continue  # no period asked: a row of an earlier period than the first line's is a superseded figure
        picked.append((source, unit))
    return picked


def _cite(picked: list[tuple[Source, str]]) -> list[Citation]:
    """One citation per source quoted, at the chunk that holds its first quoted line, in [n] order."""
    citations: list[Citation] = []
    for s, unit in picked:
        if any(c.n == s.n for c in citations):
            continue
        at = s.locate(unit)
        citations.append(Citation(s.n, s.source, at.page, at.page_end, at.section, shorten(unit), True,
                                  [h.chunk_id for h in s.hits], s.unit))
    citations.sort(key=lambda c: c.n)
    return citations


W_OVERLAP, W_PRECISION, W_FIGURE, W_RANK = 0.25, 0.3, 0.05, 0.1
# A table row whose label names one of the question's words and that scores this far below the best line
# answers a neighbouring question ("Interest on lease liabilities" for "when does the lease end"): a little
# more than holding all the question's words adds. One naming two is the statement row it asks for, however
# far the embedder puts a page of figures.
CELL_BAND = 0.3


def _best_cell(question: Question, words: set[str], units: list[tuple[Source, str]],
               far: Sequence[bool] = ()) -> tuple[Source, Cell, str] | None:
    """The table row among `units` (best-scoring first) whose label best matches the question, read at
    the column of the period it asks about: (its source, the cell, the row as printed). `far`: whether
    each unit scores more than CELL_BAND below the best line; a row of one needs a label naming two of
    the question's words."""
    best: tuple[int, float, int, int, int] | None = None
    found: tuple[Source, Cell, str] | None = None
    for rank, (s, unit) in enumerate(units):
        for row in unit.split("\n"):
            if not _table_row(row):
                continue
            cell = read_row(row, _above(s, row), question)
            if not isinstance(cell, Cell):
                continue
            label = _content_words(cell.label)
            shared = len(words & label)
            if not shared or shared < 2 and rank < len(far) and far[rank]:
                continue
            # a label naming two of the question's words before one naming a single word, however short
            # ("Other, net" is all "net"); equally good labels: the one with more of the question's words,
            # then the latest column when no period is asked, then the better passage
            latest = cell.date.toordinal() if cell.date and not question.periods else 0
            key = (min(shared, 2), shared / len(words) + shared / len(label), shared, latest, -rank)
            if best is None or key > best:
                best, found = key, (s, cell, row)
    return found


def _above(source: Source, row: str) -> str:
    """The text above `row` in its document: the source's own text before it, after the document's text
    just above the source when the source starts inside the row's table (every line above the row a row)."""
    own = source.text[:max(0, source.text.find(row))]
    if source.before and all(_table_row(line) or table_line(line) or _label_part(line)
                             for line in own.split("\n") if line.strip()):
        return f"{source.before}\n{own}"
    return own


def _label_part(line: str) -> bool:
    """The first line of a row label that runs onto the next ("Less: Net income (loss) attributable to" /
    "non-controlling interests (8) (0.1)%"): a few words, no figure, no full stop."""
    return len(line.split()) <= GROUP_WORDS and not re.search(r"\d|\.$", line.strip())


def _older(question: Question, source: Source, unit: str, than: date) -> bool:
    """A table row of `unit` read at a column dated before `than`."""
    for row in unit.split("\n"):
        cell = read_row(row, _above(source, row), question) if _table_row(row) else None
        if isinstance(cell, Cell) and cell.date and cell.date < than:
            return True
    return False


def _other_period(question: Question, source: Source, unit: str) -> bool:
    """A table row whose columns are all of periods other than the one the question names."""
    for row in unit.split("\n"):
        if _table_row(row) and read_row(row, _above(source, row), question) is False:
            return True
    return False


# A question that asks for a quantity; a line with a figure then gets a little more.
_AMOUNT = re.compile(
    r"\b(how (much|many)|(amount|number|total|value|rate|percentage|share|cost|price|size|count) of"
    r"|what (was|were|is|are) (the )?(\w+'s )?(total|net|gross|average|mean|median|amount|number|value|rate"
    r"|percentage|cost|price))\b|\bhow did\b.*\bcompare"
    # "what effective tax rate was ...", "how significant was the revenue ...": a quantity named within the clause
    r"|^\W*(what|how)\b[^?,]{0,60}?\b(rates?|ratios?|revenues?|sales|income|margins?|profits?|costs?|expenses?"
    r"|prices?|amounts?|figures?|totals?|balances?|cash flows?|doses?|levels?|counts?)\b",
    re.IGNORECASE,
)
# Where the question says the answer is ("as stated in the most recent annual report"): words about the
# document itself, which draw the lines that name it (a certification, a cover page) over the answer.
_FRAMING = re.compile(
    r"(?i)\b(?:as\s+)?(?:(?:stated|reported|disclosed|revealed|mentioned|shown|given|presented|described)\s+)?"
    r"(?:in|from|according\s+to)\s+(?:its|their|the|this|that)\s+(?:(?:latest|most\s+recent|last|recent|current)\s+)?"
    r"(?:[\w-]+\s+){0,3}?(?:report|filing|document|release)s?\b")
# An amount in a line: a figure of two digits or more, or one with a currency sign (dates and years are not
# amounts: "for fiscal year 2024" answers no "how much").
_FIGURE = re.compile(r"\d[\d,.]*\d|[$€£]\s?\d|\d\s?%")
_YEAR = re.compile(r"(?<![\d$.,])(?:19|20)\d\d(?![\d%]|[.,]\d)")
# Generic English glue and question framing ("the latest", "compared with the same period"): words that
# say how a question is asked, not what it is about.
_STOP = STOPWORDS | frozenset({
    "whose", "per", "vs", "versus", "latest", "recent", "recently", "reported", "report", "reports", "same", "compare",
    "compared", "comparison", "period", "periods", "year", "years", "quarter", "quarterly", "month", "months",
    "week", "weeks", "date", "dates", "current", "previous", "prior", "last", "next", "first",
})
_PAGE_NUMBER = re.compile(r"\d{1,4}")
TITLE_WORDS = 12  # a heading is short; a run of capitalised words longer than this is a list of names
LONGEST_SENTENCE = 600  # characters: about 100 words, longer than the sentences people write to be read


def _running_line(line: str) -> bool:
    """A running header or footer: three or more fields split by "|", a bare page number at one end and
    words in every other field ("Acme Corporation | Annual Report 2024 | 17"). A table row ("Europe | 1200
    | 1350") has figures in more than one field."""
    fields = [f.strip() for f in line.split("|")]
    if len(fields) < 3:
        return False
    numbers = [i for i, f in enumerate(fields) if _PAGE_NUMBER.fullmatch(f)]
    return numbers in ([0], [len(fields) - 1]) and all(
        re.search(r"[A-Za-z]{2,}", f) for i, f in enumerate(fields) if i != numbers[0])


def _read_rows(question: Question, source: Source, unit: str) -> str:
    """`unit` as quoted: each table row whose columns can be told apart read at the asked column, with
    its label and its column's header; other lines as they are."""
    lines = unit.split("\n")
    out = []
    for line in lines:
        cell = read_row(line, _above(source, line), question) if _table_row(line) or cells(line) else None
        if isinstance(cell, Cell):
            # under the line that introduces the rows, the rows need not repeat it
            said = cell.group and cell.group.lower() in lines[0].lower()
            out.append(str(dataclasses.replace(cell, group="") if said else cell))
        else:
            out.append(line)
    return "\n".join(out)


def _starts_midway(sentence: str) -> bool:
    """A passage's first line that starts inside a sentence: its first word is all lower case
    ("net sales increased ..."), as no sentence, heading or row starts ("iPhone" is a name)."""
    return bool(re.match(r"[a-z]+\b(?![.)])", sentence)) and len(sentence.split()) > 3


def _stops_midway(sentence: str) -> bool:
    """A passage's last line that stops inside a sentence: prose (more words than figures, several of
    them) with no full stop, colon or closing mark at its end ("... as of April 1, 2023, $3.1")."""
    words = re.findall(r"[A-Za-z]{2,}", sentence)
    figures = re.findall(r"\d[\d,.]*", DATE.sub(" ", sentence))
    return len(words) > PROSE_WORDS and len(words) > 2 * len(figures) and not re.search(r"[.!?:;)\"”’]$", sentence)


PROSE_WORDS = 6  # a table row or heading has fewer words than this; a sentence has more


def _content_words(text: str) -> set[str]:
    words = set()
    for w in re.findall(r"[A-Za-z][A-Za-z'’-]+", text.lower()):
        w = re.sub(r"['’]s$", "", w)
        if w in _STOP or len(w) < 3:
            continue
        words.add(w[:-1] if w.endswith("s") and len(w) > 4 else w)
    return words


def _table_row(line: str) -> bool:
    """A label and at least two figures: "Total gross margin $ 36,413 $ 35,885". Dates are not figures,
    so a column header ("March 26, 2022 Change") is not a row."""
    line = DATE.sub(" ", line)
    return bool(re.findall(r"[A-Za-z]{2,}", line)) and len(re.findall(r"\d[\d,.]*", line)) >= 2


def _same_figures(a: str, b: str) -> bool:
    """Two table rows with the same figures ("Total units $ 81,797 $ 82,959" and "Total units
    81,797 82,959 (1)%"): a table and the discussion of it in one document."""
    fa, fb = (set(re.findall(r"\d[\d,]*\d", DATE.sub(" ", x))) for x in (a, b))
    return len(fa) >= 2 and len(fb) >= 2 and (fa <= fb or fb <= fa)


def _prose(line: str) -> bool:
    return line.endswith(".") and len(line.split()) > 8


def _quotable(sentence: str) -> bool:
    """A line worth quoting: some words, not a page header or footer, not a heading in capitals."""
    words = re.findall(r"[A-Za-z]{2,}", sentence)
    # a short line says something when it has a figure ("250 g red lentils", "Go-live: 2 September 2024"),
    # unless it is a heading in capitals ("Step 2: FINAL CHECK", "Note 5 — DEBT")
    said = len(words) >= 2 and re.search(r"\d", sentence) and not any(w.isupper() and len(w) > 2 for w in words)
    if len(sentence) < 12 or len(words) < 4 and not _table_row(sentence) and not said:
        return False
    if len(sentence) > LONGEST_SENTENCE:
        return False  # text run together (a flattened table or list), not a sentence to quote whole
    if _running_line(sentence):
        return False
    letters = re.sub(r"[^A-Za-z]", "", sentence)
    return not (letters.isupper() and len(words) < 12) and not _heading(sentence)


def _title(line: str) -> bool:
    """A document's first line as a title ("Flapjacks for the charity bake sale"): short, no figure, no
    closing punctuation."""
    return len(line.split()) <= TITLE_WORDS and not re.search(r"\d|[.!?:;)\"”]$", line.strip())


# A table of contents' line in any case: a title and its pages ("Cash and borrowings Pages 37 - 38").
_CONTENTS_LINE = re.compile(r"(?i)[^\d.!?]+\bpages?\s+\d{1,3}(?:\s*[-–]\s*\d{1,3})?")


def _heading(line: str) -> bool:
    """A title ("Liquidity and Capital Resources", "We Face Significant Inventory Risk"), or a line of a
    table of contents (a title and its page: "f) Notes to Financial Statements 8"): no other figure, no
    closing punctuation, and every word but the short joining ones capitalised. It names a topic; it
    answers nothing."""
    if _CONTENTS_LINE.fullmatch(line.strip()):
        return True
    line = re.sub(r"^\s*(?:[a-z]\)|\d{1,3}\.?)\s+(?=[A-Z])|\s+\d{1,3}$", "", line)  # a list label, a page number
    if re.search(r"\d|[.!?:;]$", line):
        return False
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*", line)
    return len(words) <= TITLE_WORDS and all(w[0].isupper() for w in words if len(w) > 3)
