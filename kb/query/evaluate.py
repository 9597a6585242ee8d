"""Retrieval evaluation: questions with gold sources in, recall@k (document and page), MRR, misses out.

Gold files are CSV or JSONL. A question's gold is one or more file names or globs (`*2023 annual
report*`), matched case-insensitively against each hit's file name (or its whole path when the
pattern has a `/`), and optionally pages (1-based) in those files.

- doc recall@k: share of questions with at least one hit from ANY gold file in the top k. A
  question whose gold names several files (`*acme*`: every Acme report) counts as found when one
  of them is there: the reader reaches a right document, not necessarily all of them.
- page recall@k: over the questions that have gold pages, share with a top-k hit from a gold file
  whose page span overlaps a gold page.
- MRR: mean of 1 / rank of the first hit from a gold file, within the largest k (0 when absent).
- misses: the questions with no gold hit within the largest k (at page level when they have
  gold pages), with what came back instead.
- groups: the same numbers for questions whose gold matches one indexed file ("single-doc"),
  several ("multi-doc"), or none at all ("gold-not-indexed": a gold file missing from the KB).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kb.config import check_mode
from kb.errors import ConfigError
from kb.query.search import Tuning
from kb.types import Hit

Searcher = Callable[[str, int], list[Hit]]

QUESTION_KEYS = ("question", "query", "q")
SOURCE_KEYS = ("sources", "source docs", "source_docs", "sourcedocs", "gold", "gold docs", "docs", "doc", "source")
PAGE_KEYS = ("pages", "gold pages", "gold_pages", "page")
_SPLIT = re.compile(r"[\n;,]+")


@dataclass
class GoldQuestion:
    question: str
    sources: list[str]  # file names or globs
    pages: list[int] | None = None  # gold pages in any of the gold files
    meta: dict[str, str] = field(default_factory=dict)  # other columns, kept for reports

    def matches(self, source: str) -> bool:
        return any(source_matches(pattern, source) for pattern in self.sources)


def source_matches(pattern: str, source: str) -> bool:
    """Whether a gold name or glob designates `source` (a path as ingested)."""
    pattern = pattern.strip().lower()
    source = source.lower()
    if "/" in pattern:
        return fnmatch.fnmatchcase(source, pattern) or fnmatch.fnmatchcase(source, "*/" + pattern.lstrip("/"))
    name = source.replace("\\", "/").rsplit("/", 1)[-1]
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.rsplit(".", 1)[0] == pattern


# --- reading gold files ---------------------------------------------------------------------
def load_gold(path: str | Path) -> list[GoldQuestion]:
    """Questions from a CSV (header row) or JSONL file; see the module docstring for columns."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    questions = [_question(r, path, n) for n, r in enumerate(read_records(path), start=1)]
    questions = [q for q in questions if q is not None]
    if not questions:
        raise ConfigError(f"{path}: no questions found")
    return questions  # type: ignore[return-value]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a question file: a CSV or TSV (header row), a JSONL file or a JSON list."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            return _read_jsonl(path)
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason})") from e
    raise ConfigError(f"{path}: gold questions must be a .csv, .tsv or .jsonl file")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not JSON: {e.msg}") from e
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{n}: each line must be a JSON object")
            out.append(obj)
    return out


def _read_csv(path: Path, delimiter: str) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def pick(record: dict[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    lowered = {str(k).strip().lower(): k for k in record if k is not None}
    for key in keys:
        if key in lowered:
            return lowered[key], record[lowered[key]]
    return None, None


def _question(record: dict[str, Any], path: Path, n: int) -> GoldQuestion | None:
    qkey, question = pick(record, QUESTION_KEYS)
    skey, sources = pick(record, SOURCE_KEYS)
    if qkey is None or skey is None:
        raise ConfigError(f"{path}: record {n} needs a question column and a sources column "
                          f"(found: {', '.join(map(str, record))})")
    if not str(question or "").strip():
        return None
    pkey, pages = pick(record, PAGE_KEYS)
    meta = {str(k): str(v) for k, v in record.items() if k not in (qkey, skey, pkey) and isinstance(v, (str, int, float))}
    return GoldQuestion(" ".join(str(question).split()), parse_sources(sources), parse_pages(pages, path, n), meta)


def parse_sources(value: Any) -> list[str]:
    items = value if isinstance(value, list) else _SPLIT.split(str(value or ""))
    return [s.strip().strip("'\"").strip() for s in map(str, items) if s.strip().strip("'\"").strip()]


def parse_pages(value: Any, path: Path, n: int) -> list[int] | None:
    if value is None or value == "" or value == []:
        return None
    items = value if isinstance(value, list) else _SPLIT.split(str(value))
    pages: list[int] = []
    try:
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            lo, _, hi = text.partition("-")
            pages.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ConfigError(f"{path}: record {n}: pages must be numbers or ranges like 3-5, got {value!r}") from None
    return sorted(set(pages)) or None


# --- scoring -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """How one question went: rank (1-based) of the first gold document and gold page hit."""

    question: GoldQuestion
    doc_rank: int | None
    page_rank: int | None
    top: list[str]  # citations of the first hits, for the misses report


@dataclass
class EvalResult:
    name: str
    questions: int
    ks: list[int]
    doc_recall: dict[str, float]
    page_recall: dict[str, float] | None
    mrr: float
    page_mrr: float | None
    page_questions: int
    groups: dict[str, dict[str, Any]]
    misses: list[dict[str, Any]]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(question: GoldQuestion, hits: Sequence[Hit]) -> Outcome:
    doc_rank = page_rank = None
    wanted = set(question.pages or ())
    for n, hit in enumerate(hits, start=1):
        if not question.matches(hit.source):
            continue
        if doc_rank is None:
            doc_rank = n
        if wanted and page_rank is None and hit.page is not None:
            last = hit.page_end if hit.page_end is not None else hit.page
            if any(p in wanted for p in range(hit.page, last + 1)):
                page_rank = n
    return Outcome(question, doc_rank, page_rank, [h.citation for h in hits[:3]])


def summarise(
    name: str, outcomes: Sequence[Outcome], ks: Sequence[int], *, gold_docs: Callable[[GoldQuestion], int] | None = None,
    seconds: float = 0.0,
) -> EvalResult:
    ks = sorted(set(ks))
    top = ks[-1]
    paged = [o for o in outcomes if o.question.pages]
    groups: dict[str, list[Outcome]] = {}
    if gold_docs is not None:
        for o in outcomes:
            n = gold_docs(o.question)
            groups.setdefault("single-doc" if n == 1 else "multi-doc" if n else "gold-not-indexed", []).append(o)
    misses = [
        {
            "question": o.question.question,
            "gold": o.question.sources,
            "pages": o.question.pages,
            "doc_rank": o.doc_rank,
            "page_rank": o.page_rank,
            "got": o.top,
        }
        for o in outcomes
        if o.doc_rank is None or (o.question.pages and o.page_rank is None)
    ]
    return EvalResult(
        name=name,
        questions=len(outcomes),
        ks=ks,
        doc_recall=_recall(outcomes, ks, "doc_rank"),
        page_recall=_recall(paged, ks, "page_rank") if paged else None,
        mrr=_mrr(outcomes, "doc_rank", top),
        page_mrr=_mrr(paged, "page_rank", top) if paged else None,
        page_questions=len(paged),
        groups={
            g: {"questions": len(os), "doc_recall": _recall(os, ks, "doc_rank"), "mrr": _mrr(os, "doc_rank", top)}
            for g, os in sorted(groups.items(), key=lambda item: _GROUP_ORDER.index(item[0]))
        },
        misses=misses,
        seconds=round(seconds, 2),
    )


_GROUP_ORDER = ["single-doc", "multi-doc", "gold-not-indexed"]


def _recall(outcomes: Sequence[Outcome], ks: Iterable[int], attr: str) -> dict[str, float]:
    n = len(outcomes) or 1
    return {str(k): round(sum(1 for o in outcomes if (r := getattr(o, attr)) is not None and r <= k) / n, 4) for k in ks}


def _mrr(outcomes: Sequence[Outcome], attr: str, top: int) -> float:
    n = len(outcomes) or 1
    return round(sum(1 / r for o in outcomes if (r := getattr(o, attr)) is not None and r <= top) / n, 4)


def evaluate(
    questions: Sequence[GoldQuestion],
    search: Searcher,
    ks: Sequence[int] = (1, 5, 10),
    *,
    name: str = "",
    sources: Sequence[str] | None = None,
) -> EvalResult:
    """Run every question through `search(question, max k)` and score the hits.

    `sources`: every indexed source, to tell single-document gold from multi-document gold.
    """
    if not ks or min(ks) < 1:
        raise ConfigError("k values must be positive")
    started = time.perf_counter()
    outcomes = [judge(q, search(q.question, max(ks))) for q in questions]
    gold_docs = (lambda q: sum(1 for s in sources if q.matches(s))) if sources is not None else None
    return summarise(name, outcomes, ks, gold_docs=gold_docs, seconds=time.perf_counter() - started)


# --- runs to compare ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One configuration in a comparison: a mode and optional tuning changes."""

    name: str
    mode: str
    tuning: dict[str, float] = field(default_factory=dict)
    rerank: str | None = None


def parse_run(spec: str) -> RunSpec:
    """`hybrid`, `dense`, `keyword`, or `hybrid:keyword_weight=0.5,title_weight=0` (Tuning fields)."""
    mode, _, knobs = spec.strip().partition(":")
    known = {f.name: f for f in fields(Tuning)}
    tuning: dict[str, float] = {}
    rerank = None
    for part in filter(None, (p.strip() for p in knobs.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise ConfigError(f"run {spec!r}: expected name=value, got {part!r}")
        if key == "rerank":
            rerank = value.strip()
            continue
        if key not in known:
            raise ConfigError(f"run {spec!r}: unknown setting {key!r} (known: rerank, {', '.join(known)})")
        try:
            tuning[key] = int(value) if known[key].type in (int, "int") else float(value)
        except ValueError:
            raise ConfigError(f"run {spec!r}: {key} must be a number, got {value!r}") from None
    return RunSpec(spec.strip(), check_mode(mode), tuning, rerank)
