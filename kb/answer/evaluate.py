"""Answers scored as a reader would (`kb eval --answers`): does kb refuse what nothing answers, and only
that; is the gold figure on the answer's first line; is the gold source cited?"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.answer.citations import Number, find_numbers, number_supported
from kb.answer.types import Answer
from kb.errors import ConfigError
from kb.query.evaluate import (
    PAGE_KEYS,
    QUESTION_KEYS,
    SOURCE_KEYS,
    parse_pages,
    parse_sources,
    pick,
    read_records,
    source_matches,
)

Asker = Callable[[str], Answer]

_ANSWER_KEYS = ("answer", "gold answer", "gold_answer", "expected answer", "expected_answer")
_UNANSWERABLE_KEYS = ("unanswerable",)
_SPLIT_KEYS = ("split",)
SPLITS = ("tune", "validate")
# A gold answer that fits on a line is the figure itself with a word of label ("0.66", "65.4%"): all
# its numbers but years count; in a longer one only amounts do, its other numbers being dates, note
# and list numbers.
SHORT_GOLD_CHARS = 80
# A gold answer's closing "Source(s): ..." line names where it came from; its numbers are no figures.
_SOURCES_LINE = re.compile(r"\(?SOURCES?(?:\(S\))?:.*", re.DOTALL)


@dataclass
class AnswerQuestion:
    """One question of an answer set: a gold answer and/or gold sources, or none (unanswerable)."""

    question: str
    answer: str | None = None  # the gold answer
    unanswerable: bool = False  # nothing in the folder answers it: kb should say "not found"
    sources: list[str] = field(default_factory=list)  # gold file names or globs
    pages: list[int] | None = None  # gold (evidence) pages in those files
    split: str | None = None  # "tune" or "validate"


# --- reading answer sets -----------------------------------------------------------------------
def load_answers(path: str | Path, split: str | None = None) -> list[AnswerQuestion]:
    """Questions from a CSV (header row) or JSONL file, those of `split` only when it is given.

    A record is unanswerable when its `unanswerable` field is true, or when it gives neither a gold
    answer nor gold sources (nothing to compare an answer with: only a refusal can be checked)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    questions = [q for n, r in enumerate(read_records(path), start=1) if (q := _question(r, path, n)) is not None]
    if not questions:
        raise ConfigError(f"{path}: no questions found")
    if split is not None:
        questions = [q for q in questions if q.split == split]
        if not questions:
            raise ConfigError(f"{path}: no question has split {split!r}")
    return questions


def _question(record: dict[str, Any], path: Path, n: int) -> AnswerQuestion | None:
    qkey, question = pick(record, QUESTION_KEYS)
    if qkey is None:
        raise ConfigError(f"{path}: record {n} needs a question field (found: {', '.join(map(str, record))})")
    if not str(question or "").strip():
        return None
    answer = str(pick(record, _ANSWER_KEYS)[1] or "").strip() or None
    sources = parse_sources(pick(record, SOURCE_KEYS)[1])
    flag = pick(record, _UNANSWERABLE_KEYS)[1]
    unanswerable = _truth(flag, path, n) if flag not in (None, "") else not answer and not sources
    if unanswerable and answer:
        raise ConfigError(f"{path}: record {n} is marked unanswerable but gives a gold answer")
    split = str(pick(record, _SPLIT_KEYS)[1] or "").strip().lower() or None
    if split is not None and split not in SPLITS:
        raise ConfigError(f"{path}: record {n}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    return AnswerQuestion(" ".join(str(question).split()), answer, unanswerable, sources,
                          parse_pages(pick(record, PAGE_KEYS)[1], path, n), split)


def _truth(value: object, path: Path, n: int) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ConfigError(f"{path}: record {n}: unanswerable must be true or false, got {value!r}")


# --- the gold answer's figures -------------------------------------------------------------------
def amounts(answer: str) -> list[Number]:
    """A gold answer's amounts: figures with a currency sign, a percent sign or a scale word, or written
    with thousands separators ("$81,797 million", "34.9%", "102,673,000"); not years, note numbers,
    list numbers or the figures of a closing "Source(s):" line."""
    return [n for n in find_numbers(_SOURCES_LINE.sub("", answer))
            if n.scale is not None or re.search(r"[$€£%]|\d,\d{3}", n.text)]


def short_answer_figures(answer: str) -> list[Number]:
    """Every figure of a short gold answer ("0.66", "$1,577.00", "65.4%") but years (1900 to 2099 as written)."""
    return [n for n in find_numbers(answer) if not (n.scale is None and re.fullmatch(r"(19|20)\d\d", n.text))]


def gold_figures(answer: str) -> list[Number]:
    """The figures an answer must give to match `answer`: see SHORT_GOLD_CHARS."""
    text = _SOURCES_LINE.sub("", answer).strip()
    return short_answer_figures(text) if len(text) <= SHORT_GOLD_CHARS else amounts(text)


def first_line(text: str) -> str:
    """The first non-empty line: what a reader takes for the answer."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# --- scoring -------------------------------------------------------------------------------------
@dataclass
class AnswerRow:
    """How one question went. The gold checks are None where they do not apply: no gold figure, an
    unanswerable question, gold that names several indexed files (only single-file gold is scored)."""

    question: str
    unanswerable: bool
    split: str | None
    mode: str
    refused: bool
    seconds: float
    answer: str
    llm_error: str | None
    gold_files: int | None  # indexed files the gold sources name (None: no gold sources)
    cites_gold_file: bool | None = None
    cites_gold_page: bool | None = None
    gold_figure_first_line: bool | None = None
    gold_figure_in_answer: bool | None = None  # anywhere in the answer
    cited: list[tuple[str, int | None, int | None]] = field(default_factory=list)


def gold_files(question: AnswerQuestion, sources: Sequence[str]) -> int | None:
    """How many of the indexed `sources` the question's gold names (None: it names none)."""
    if not question.sources:
        return None
    return sum(1 for s in sources if any(source_matches(p, s) for p in question.sources))


def judge(question: AnswerQuestion, answer: Answer, seconds: float, sources: Sequence[str]) -> AnswerRow:
    """One answer scored against its question's gold. `sources`: every indexed file."""
    row = AnswerRow(question.question, question.unanswerable, question.split, answer.mode, not answer.found,
                    round(seconds, 2), answer.answer[:400], answer.llm_error, gold_files(question, sources))
    cited = [(Path(c.source).name, c.page, c.page_end) for c in answer.citations]
    row.cited = cited[:4]
    if question.unanswerable or row.gold_files not in (None, 1):
        return row
    if question.sources:
        right_file = [c for c in answer.citations if any(source_matches(p, c.source) for p in question.sources)]
        row.cites_gold_file = bool(right_file)
        if question.pages:
            row.cites_gold_page = any(c.page is not None and any(c.page <= g <= (c.page_end or c.page)
                                                                  for g in question.pages) for c in right_file)
    gold = gold_figures(question.answer) if question.answer else []
    if gold:
        row.gold_figure_in_answer = _says(gold, answer.answer)
        row.gold_figure_first_line = _says(gold, first_line(answer.answer))
    return row


def _says(gold: Sequence[Number], text: str) -> bool:
    said = find_numbers(text)
    return any(number_supported(g, said) for g in gold)


def share(rows: Sequence[AnswerRow], key: str) -> dict[str, Any]:
    """{"share", "n", "yes"} of a yes/no check over the rows where it applies."""
    values = [v for r in rows if (v := getattr(r, key)) is not None]
    return {"share": round(sum(values) / len(values), 3) if values else None, "n": len(values), "yes": sum(values)}


@dataclass
class AnswerEvalResult:
    """The figures `kb eval --answers` prints; `to_json()` is its --json object."""

    llm: str
    questions: list[AnswerRow]
    seconds: float

    @property
    def answerable(self) -> list[AnswerRow]:
        return [r for r in self.questions if not r.unanswerable]

    @property
    def unanswerable(self) -> list[AnswerRow]:
        return [r for r in self.questions if r.unanswerable]

    @property
    def not_found(self) -> dict[str, Any]:
        """Over the unanswerable questions: recall = unanswerable answered "not found" / unanswerable;
        precision = unanswerable among all the questions answered "not found"."""
        refused = [r for r in self.questions if r.refused]
        right = sum(1 for r in refused if r.unanswerable)
        return {"precision": round(right / len(refused), 3) if refused else None,
                "recall": round(right / len(self.unanswerable), 3) if self.unanswerable else None,
                "answered_not_found": len(refused), "unanswerable_not_found": right,
                "unanswerable": len(self.unanswerable)}

    def to_json(self) -> dict[str, Any]:
        rows = self.questions
        return {
            "llm": self.llm,
            "counts": {"questions": len(rows), "answerable": len(self.answerable),
                       "unanswerable": len(self.unanswerable),
                       "gold_not_indexed": sum(1 for r in rows if r.gold_files == 0),
                       "multi_file_gold": sum(1 for r in rows if r.gold_files is not None and r.gold_files > 1)},
            "not_found": self.not_found,
            "answerable_refused": share(self.answerable, "refused"),
            "gold_figure_first_line": share(rows, "gold_figure_first_line"),
            "gold_figure_in_answer": share(rows, "gold_figure_in_answer"),
            "gold_file_cited": share(rows, "cites_gold_file"),
            "gold_page_cited": share(rows, "cites_gold_page"),
            "llm_errors": sum(1 for r in rows if r.llm_error),
            "median_seconds": round(statistics.median(r.seconds for r in rows), 2) if rows else None,
            "seconds": round(self.seconds, 1),
            "questions": [asdict(r) for r in rows],
        }


def evaluate_answers(questions: Sequence[AnswerQuestion], ask: Asker, sources: Sequence[str], *, llm: str,
                     on_row: Callable[[int, AnswerRow], None] | None = None) -> AnswerEvalResult:
    """Ask every question (`ask(question)`, e.g. `KnowledgeBase.ask` with its options) and score the
    answers. `sources`: every indexed file, to tell single-file gold from gold naming several files.
    `llm`: what answered, for the report. `on_row(i, row)` sees each row as it is scored (progress)."""
    started = time.perf_counter()
    rows = []
    for i, q in enumerate(questions, start=1):
        t0 = time.perf_counter()
        answer = ask(q.question)
        rows.append(judge(q, answer, time.perf_counter() - t0, sources))
        if on_row is not None:
            on_row(i, rows[-1])
    return AnswerEvalResult(llm, rows, time.perf_counter() - started)
