"""Citations in an answer: find the [n] markers, drop the ones that point at no source, and check
each cited sentence against its sources (its numbers must be there; its meaning must be close)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# A cited sentence must be at least this close (cosine, all-MiniLM-L6-v2) to some sentence, line or
# pair of lines of a source it cites. Measured by `benchmarks/ask.py --check-gold-pages`: of the
# sec-10q gold answer sentences checked against their gold pages, 10% fall below 0.40 (6% below
# 0.35, 12% below 0.45); checked against another company's pages, 27% do; with the figure check the
# whole check fires on 22% of right answers (mostly figures the answer computed: "25.93%") and on 87%
# of sentences pointed at the wrong filing. Similarity mostly catches claims about something else;
# figures catch the wrong quarter or company, where 10-Q language is the same.
SUPPORT_SIMILARITY = 0.40

_CITE = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*(?:sources?\s*)?\d{1,3})*)\s*\]", re.IGNORECASE)
_ABBREV = re.compile(
    r"(?:\b(?:[A-Z]|Inc|Corp|Co|Ltd|No|Nos|Mr|Mrs|Ms|Dr|St|vs|etc|approx|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
    r"|U\.S|e\.g|i\.e|Fig|Ref|Rev|Vol|p|pp)\.)$"
)


# --- sentences ----------------------------------------------------------------------------------
def split_sentences(text: str) -> list[str]:
    """Sentences and stand-alone lines (table rows, list items), in order, stripped.

    Citation markers that follow a sentence's full stop (`... in 2023. [2]`) stay with it.
    """
    out: list[str] = []
    for line in unwrap(text):
        if not line:
            continue
        start = 0
        for m in re.finditer(r"[.!?](?:[\"')\]]*)(\s*(?:\[[^\]]{1,20}\]\s*)*)\s+(?=[\"'(\[]?[A-Z0-9$•*-])", line):
            end = m.end(1) if m.group(1).strip() else m.start(1)
            candidate = line[start:end].strip()
            if _ABBREV.search(line[start:m.start() + 1]):
                continue  # "Acme Inc. reported" is one sentence
            if candidate:
                out.append(candidate)
            start = m.end()
        tail = line[start:].strip()
        if tail:
            out.append(tail)
    return _glue_markers(out)


def first_sentence(text: str) -> str:
    return next(iter(split_sentences(text)), text[:200])


def shorten(text: str, width: int = 200) -> str:
    """`text` on one line, cut at a word boundary to at most `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rsplit(" ", 1)[0] + "…"


def unwrap(text: str) -> list[str]:
    """Lines with PDF hard wraps undone: a line that ends mid-phrase ("could in the future") joins
    the next when that one goes on in lower case or with a figure; table rows and headings stay."""
    lines: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        raws = [" ".join(raw.split()) for raw in para.split("\n")]
        widest = max(map(len, raws), default=0)
        prev = ""
        for line in raws:
            if not line:
                continue
            if lines and (re.search(r"[a-z,;(&/-]$", lines[-1]) and re.match(r"[a-z0-9(]", line)
                          or re.search(r"\b(the|of|and|or|in|to|a|an|for|by|with|on|at|from|as|its|their)$", lines[-1])
                          # "... from 53.6%" / "and 55.1% for ...": a figure ends the line, a lower-case word goes on
                          or re.search(r"[0-9%)]$", lines[-1]) and re.match(r"(and|or|to|for|in|of|from|compared|respectively)\b", line)
                          or _full_prose_line(prev, widest) and re.match(r"[A-Z][a-z]+\b", line)):
                glue = "" if lines[-1].endswith("-") and line[:1].islower() else " "  # year-\nover-year
                lines[-1] = f"{lines[-1]}{glue}{line}"
            else:
                lines.append(line)
            prev = line
        lines.append("")  # paragraphs never join
    return [x for x in lines if x]


FULL_LINE = 0.9  # of the paragraph's widest line: a line this wide ran into the margin, it did not end


def _full_prose_line(line: str, widest: int) -> bool:
    """A line of prose that runs to the right margin and ends on a word ("... (iii) Consolidated"): the
    sentence goes on below, even when the next line starts with a capital ("Statements of Income")."""
    return (len(line) >= max(80, FULL_LINE * widest) and bool(re.search(r"[a-z][A-Za-z]*$", line))
            and len(re.findall(r"\b[a-z]{2,}\b", line)) > 2 * len(re.findall(r"\d[\d,.]*", line)))


def _glue_markers(parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        lead = re.match(r"^((?:\s*\[[^\]]{1,20}\])+)\s*(.*)$", part)
        if lead and out and _CITE.search(lead.group(1)):
            out[-1] = f"{out[-1]} {lead.group(1).strip()}"
            part = lead.group(2)
        if part:
            out.append(part)
    return out


# --- citation markers -----------------------------------------------------------------------
def _numbers_in_marker(body: str) -> list[int]:
    nums: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", body):
        part = re.sub(r"(?i)sources?\s*", "", part).strip()
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            lo, hi = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            if 0 < hi - lo <= 20:
                nums.extend(range(lo, hi + 1))
                continue
        nums.extend(int(x) for x in re.findall(r"\d+", part))
    return nums


def cited_numbers(text: str) -> list[int]:
    """Source numbers cited in `text`, in order of first appearance."""
    seen: list[int] = []
    for m in _CITE.finditer(text):
        for n in _numbers_in_marker(m.group(1)):
            if n not in seen:
                seen.append(n)
    return seen


def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _CITE.sub("", text)).strip()


def clean_citations(text: str, valid: Sequence[int]) -> tuple[str, list[int]]:
    """`text` with citations of unknown sources taken out, and the numbers taken out.

    `[2, 7]` with 5 sources becomes `[2]`; `[7]` alone disappears.
    """
    allowed = set(valid)
    removed: list[int] = []

    def fix(m: re.Match[str]) -> str:
        nums = _numbers_in_marker(m.group(1))
        keep = [n for n in nums if n in allowed]
        removed.extend(n for n in nums if n not in allowed and n not in removed)
        return "".join(f"[{n}]" for n in dict.fromkeys(keep))

    cleaned = _CITE.sub(fix, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    return cleaned, removed


# --- numbers ----------------------------------------------------------------------------------
_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "mn": 1e6, "mm": 1e6, "m": 1e6,
    "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "t": 1e12,
}
_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)")
_SCALE_AFTER = re.compile(r"\s?(thousand|millions?|billions?|trillion|bn|mn)\b|(K|M|MM|B|BN|T)\b", re.IGNORECASE)
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Number:
    """A figure as written: its value before any scale word, the unit of its last significant digit,
    the scale word's factor if one follows ("billion": 1e9), and its significant digits."""

    text: str
    value: float  # "$1.6 billion" -> 1.6
    unit: float  # 0.1 for 1.6; 100 for 1,600; 1 for 1,577
    scale: float | None
    significant: int


def find_numbers(text: str, *, words: bool = False) -> list[Number]:
    """Figures in `text`; citation markers, Q3, 10-Q, FY23, 1st and COVID-19 are not figures.
    `words`: also number words ('three', 'twelve'), as sources often spell small counts."""
    text = _CITE.sub(" ", text)
    found: list[Number] = []
    for m in _NUMBER.finditer(text):
        raw, after = m.group(1), text[m.end():m.end() + 12]
        if m.start() >= 2 and text[m.start() - 1] == "-" and text[m.start() - 2].isalpha():
            continue  # COVID-19, Form 10-Q's "Q-3"
        scale_match = _SCALE_AFTER.match(after)
        if scale_match and scale_match.group(2) and not scale_match.group(2).isupper():
            scale_match = None  # "5 m" is metres, "5b" a footnote; only $1.6B and 300K count
        if not scale_match and re.match(r"-?[A-Za-z]", after):
            continue  # glued to letters: 10-Q, 1st, 3D
        digits = raw.replace(",", "")
        if "." in digits:
            whole, frac = digits.split(".")
            unit = 10.0 ** -len(frac)
            sig = len((whole + frac).lstrip("0")) or 1
        else:
            core = digits.lstrip("0") or "0"
            trailing = len(core) - len(core.rstrip("0")) if core != "0" else 0
            unit = 10.0**trailing
            sig = max(len(core) - trailing, 1)
        word = (scale_match.group(1) or scale_match.group(2)).lower() if scale_match else ""
        begin = m.start() - 1 if m.start() and text[m.start() - 1] == "$" else m.start()
        end = m.end() + (scale_match.end() if scale_match else 0)
        pct = re.match(r"\s?%", text[end:end + 2])
        shown = text[begin:end + (pct.end() if pct else 0)].strip()
        found.append(Number(shown, float(digits), unit, _SCALES.get(word), sig))
    if words:
        for m in _NUMBER_WORD.finditer(text):
            found.append(Number(m.group(0), float(_WORDS[m.group(0).lower()]), 1.0, None, 1))
    return found


def _candidates(n: Number) -> list[float]:
    """The absolute values a source figure may stand for: tables give figures 'in millions' in a
    header that the passage may not include, so a bare figure may be that many thousands, millions
    or billions; a scaled figure may also be quoted without its scale word."""
    if n.scale:
        return [n.value * n.scale, n.value]
    return [n.value * s for s in (1.0, 1e3, 1e6, 1e9)]


def number_supported(claim: Number, source_numbers: Sequence[Number]) -> bool:
    """Whether `claim` is one of the source's figures, allowing formatting, scale words and rounding:
    1,577 = 1577; $1.6 billion = 1,600 million = 1.6; $81.8 billion = 81,797 (in millions).

    Rounding is allowed only at the precision the claim is written in, and only for figures with at
    least two significant digits (so '2' does not stand for 1.5)."""
    scales = [claim.scale] if claim.scale else [1.0, 1e3, 1e6, 1e9]
    half_unit = 0.5 * claim.unit
    for src in source_numbers:
        for c in _candidates(src):
            for s in scales:
                x = c / s
                if math.isclose(x, claim.value, rel_tol=1e-9, abs_tol=1e-9):
                    return True
                if claim.significant >= 2 and abs(x - claim.value) <= half_unit + 1e-9 and _same_magnitude(x, claim.value):
                    return True
    return False


def _same_magnitude(a: float, b: float) -> bool:
    return a > 0 and b > 0 and 0.5 <= a / b <= 2


# --- the check ------------------------------------------------------------------------------
@dataclass
class SentenceCheck:
    sentence: str
    citations: list[int]
    supported: bool
    similarity: float  # best cosine to a sentence of its cited sources
    missing_numbers: list[str] = field(default_factory=list)
    best_quote: dict[int, str] = field(default_factory=dict)  # source n -> its closest sentence
    threshold: float = SUPPORT_SIMILARITY

    @property
    def reasons(self) -> list[str]:
        where = _refs(self.citations) if self.citations else "any source"
        why = [] if self.citations else ["cites no source"]
        why += [f"{x} is not in {where}" for x in self.missing_numbers]
        if self.similarity < self.threshold:
            why.append(f"no sentence of {where} says this (similarity {self.similarity:.2f})")
        return why

    def to_json(self) -> dict[str, object]:
        return {"sentence": self.sentence, "citations": self.citations, "supported": self.supported,
                "similarity": round(self.similarity, 3), "reasons": self.reasons}


def _refs(nums: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in nums)


Embed = Callable[[list[str]], "np.ndarray"]


def _share(figures: Sequence[Number], text: str) -> float:
    if not figures:
        return 0.0
    pool = find_numbers(text)
    return sum(number_supported(f, pool) for f in figures) / len(figures)


def source_units(text: str) -> list[str]:
    """What a claim is compared with: a source's sentences and lines, and pairs of neighbours
    (a table row often needs the line before it to say what its figures are)."""
    sents = [s for s in split_sentences(text) if len(s) >= 3]
    pairs = [f"{a} {b}" for a, b in itertools.pairwise(sents)]
    return sents + pairs


def check_sentences(answer: str, sources: dict[int, str], embed: Embed,
                    threshold: float = SUPPORT_SIMILARITY, uncited: bool = True) -> list[SentenceCheck]:
    """Every sentence of `answer` that cites a source, checked against the sources it cites; with
    `uncited`, also each sentence that states a figure without citing anything, against all of them
    (a small model often gives figures and no [n])."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np

    todo: list[tuple[str, list[int], list[int]]] = []  # (sentence, its citations, sources to check against)
    for sentence in split_sentences(answer):
        if len(strip_markers(sentence)) < 3:
            continue
        ns = [n for n in cited_numbers(sentence) if n in sources]
        if ns:
            todo.append((sentence, ns, ns))
        elif uncited and sources and not cited_numbers(sentence) and find_numbers(sentence):
            todo.append((sentence, [], list(sources)))
    if not todo:
        return []
    wanted = {n for _, _, against in todo for n in against}
    units = {n: source_units(text) for n, text in sources.items() if n in wanted}
    numbers = {n: find_numbers(text, words=True) for n, text in sources.items()}
    flat = [(n, u) for n, us in units.items() for u in us]
    claims = [strip_markers(s) for s, _, _ in todo]
    vectors = embed(claims + [u for _, u in flat]) if flat else embed(claims)
    claim_vecs, unit_vecs = vectors[: len(claims)], vectors[len(claims):]
    owner = np.array([n for n, _ in flat]) if flat else np.zeros(0, dtype=int)
    checks: list[SentenceCheck] = []
    for i, (sentence, ns, against) in enumerate(todo):
        pool = [x for n in against for x in numbers.get(n, [])]
        figures = find_numbers(claims[i])
        missing = [num.text for num in figures if not number_supported(num, pool)]
        sims = unit_vecs @ claim_vecs[i] if len(flat) else np.zeros(0)
        best = -1.0
        quotes: dict[int, str] = {}
        for n in against:
            mask = np.flatnonzero(owner == n)
            if len(mask) == 0:
                continue
            best = max(best, float(sims[mask].max()))
            if ns:
                # The quote shown for [n]: the closest line, preferring one that holds the claim's figures.
                j = max(mask, key=lambda u: float(sims[u]) + 0.2 * _share(figures, flat[u][1]))
                quotes[n] = flat[int(j)][1]
        ok = not missing and best >= threshold
        checks.append(SentenceCheck(sentence, ns, ok, max(best, 0.0), missing, quotes, threshold))
    return checks
