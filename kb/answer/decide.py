"""Whether to answer at all: the one place that decides "not found", with the reason it gives.

Before any search (`vague`): a question of common words only. Before anything is written
(`decide`): no passage at all, none through the filters, none close enough to the question, a name,
period or subject word of the question that no document mentions, a name and a period that no
document mentions together, passages from no document that mentions the question's names, or no
passage that holds most of what the question asks about. After a model wrote (`judge`): it says the
sources do not hold the answer (a "not found" in its own words), or it cites none of its sources, or
none of its checked sentences is supported (nothing a reader could rely on: the passages' own
sentences are quoted instead).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.answer.citations import SentenceCheck
from kb.answer.retrieve import Passages
from kb.answer.types import Answer, Citation
from kb.question import STOPWORDS, Name, Question

if TYPE_CHECKING:
    from kb.filters import Filters
    from kb.question import Term

# Below this cosine (all-MiniLM-L6-v2, question vs passage text) the best passage is not about the
# question. Measured by `benchmarks/ask.py --calibrate` on sec-10q: the best passage of each of the
# 130 single-filing questions scores 0.54-0.74 (5th-95th percentile, none below 0.30); 20 off-topic
# questions (sourdough, chess, Hamlet) score 0.10-0.23, none 0.25 or more. 0.30 sits in the gap,
# nearer the off-topic side, since short notes score lower than 10-Q passages on real questions.
RELEVANCE_MIN = 0.30
# A passage holding less than this share of the question's weighted content words, or not its
# weightiest one, is about something else (another kind of leave, another drug's dose), unless it is
# this close to the question anyway (worded otherwise): half the subject, and a cosine that real
# answers reach and near misses seldom do.
COVERAGE_MIN = 0.5
RELEVANCE_SURE = 0.5
# Under a quarter of the subject, no cosine makes a passage an answer: what makes it near is something
# else, such as a name it shares with the question ("How much does the Nimbus dock weigh?" and a passage
# on the Nimbus launch party).
COVERAGE_FLOOR = 0.25
NOT_FOUND = "Not found in the knowledge base."

# The reasons not to answer, by name (`Answer.abstained`).
EMPTY = "empty"  # the knowledge base holds no passages
FILTERED = "filtered"  # no passage passes the filters
OFF_TOPIC = "off_topic"  # no passage is close enough to the question (RELEVANCE_MIN)
UNMENTIONED = "unmentioned"  # the question names something no document mentions
UNCOVERED = "uncovered"  # no passage holds what the question asks about
DECLINED = "declined"  # the model says the sources do not hold the answer
UNCITED = "uncited"  # the model cites none of its sources: quoted instead (not a "not found")
UNSUPPORTED = "unsupported"  # no sentence of the model's answer passes the citation check: quoted instead
UNQUOTABLE = "unquotable"  # no line of the passages is left to quote (an answer is never empty)
VAGUE = "vague"  # the question holds no word but common ones ("what is it?"): nothing to look for
REASONS = (EMPTY, FILTERED, OFF_TOPIC, UNMENTIONED, UNCOVERED, DECLINED, UNCITED, UNSUPPORTED, UNQUOTABLE, VAGUE)

_DECLINES = re.compile(
    r"(sources?|documents?|context|passages?|excerpts?|knowledge base)\s+(do|does)\s+not\s+"
    r"(contain|mention|provide|include|say|specify|state|answer)"
    r"|not\s+(found|contained|mentioned|provided|stated|specified|available)\s+in\s+the\s+"
    r"(provided\s+|given\s+)?(sources?|documents?|context|passages?|knowledge base)"
    r"|^\s*(i\s+(do\s+not|don't|cannot|can't)\s+(know|find|answer))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Abstain:
    """Not answering, and why: `reason` (one of REASONS), the note a reader sees, the answer's text."""

    reason: str
    note: str
    text: str = NOT_FOUND
    missing: tuple[Term, ...] = ()

    def answer(self, question: str, passages: Passages, llm: str | None, timing: dict[str, float | int | None],
               llm_error: str | None) -> Answer:
        return Answer(question, self.text, [], passages.hits, llm, "not_found", found=False, timing=timing,
                      llm_error=llm_error, note=self.note, missing=[t.text for t in self.missing],
                      abstained=self.reason)


def vague(asked: Question) -> Abstain | None:
    """Before any search: a question of common words only ("what is it?") has nothing to look for, and
    any passage would be as near as any other."""
    if all(t in STOPWORDS for t in asked.terms):
        return Abstain(VAGUE, "the question has no word to look for but common ones")
    return None


def decide(passages: Passages, filters: Filters | None) -> Abstain | None:
    """Whether to answer from `passages` at all: None to answer, else why not."""
    if not passages.hits:
        if filters and not filters.is_empty():
            return Abstain(FILTERED, f"no passage passes the filters ({filters.describe()})")
        return Abstain(EMPTY, "the knowledge base holds no passages")
    best = max(passages.relevance)
    if best < RELEVANCE_MIN:
        return Abstain(OFF_TOPIC, f"no passage is close enough to the question (best similarity {best:.2f} < "
                                  f"{RELEVANCE_MIN}); nearest passages shown")
    missing: list[Term] = list(passages.grounding.missing)
    # a name said once, not twice ("Tesla"), and the words of one written otherwise not at all
    named = {w.lower() for t in [*missing, *passages.grounding.otherwise] for w in re.findall(r"\w+", t.text)}
    missing += [Name(w, (w,)) for w in passages.subject.unknown if w not in named]
    if missing:
        said = "; ".join(_missing(t) for t in missing)
        return Abstain(UNMENTIONED, f"{said}; nearest passages shown", f"{NOT_FOUND[:-1]}: {said}.", tuple(missing))
    apart, unheld = passages.grounding.apart, passages.grounding.unheld
    if apart:
        said = "; ".join(f"no document mentions both {name.text} and {period.text}" for name, period in apart)
        return Abstain(UNMENTIONED, f"{said}; nearest passages shown", f"{NOT_FOUND[:-1]}: {said}.",
                       tuple(dict.fromkeys(period for _, period in apart)))
    if unheld:
        said = "; ".join(f"no passage found is from a document that mentions {t.text}" for t in unheld)
        return Abstain(UNMENTIONED, f"{said}; nearest passages shown", f"{NOT_FOUND[:-1]}: {said}.", tuple(unheld))
    subject = passages.subject
    if ((subject.coverage < COVERAGE_MIN or subject.lacks_weightiest) and best < RELEVANCE_SURE) \
            or subject.coverage < COVERAGE_FLOOR:
        lacking = ", ".join(subject.lacking[:3])
        said = f"no passage is about {lacking}" if lacking else "no passage holds what the question asks about"
        return Abstain(UNCOVERED, f"{said} (it holds {subject.coverage:.0%} of the question's subject); "
                                  "nearest passages shown", f"{NOT_FOUND[:-1]}: {said}.")
    return None


def judge(text: str, citations: Sequence[Citation], checks: Sequence[SentenceCheck] = ()) -> str | None:
    """What a model's answer says of itself: DECLINED (it says the sources do not hold the answer),
    UNCITED (it answers, citing none of its sources), UNSUPPORTED (of its sentences that were
    checked, none passes: nothing in it a reader could rely on), or None (an answer to show)."""
    if _DECLINES.search(text[:300]):
        return DECLINED
    if not citations:  # a small model's stray label or echo
        return UNCITED
    if checks and not any(c.supported for c in checks):
        return UNSUPPORTED
    return None


def _missing(term: Term) -> str:
    """What to tell the reader when no document has it."""
    return f"no document mentions {term.text}" if term.kind == "entity" else f"no document covers {term.text}"
