"""What an answer is made of: the numbered `Source`s the model read, the `Citation`s it made, and
the `Answer` itself, whose `to_json()` is the `kb ask --json` contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kb.answer.citations import SentenceCheck
from kb.types import Hit, citation, shown


@dataclass
class Source:
    """A passage given to the model as `[n]`: one hit, or neighbouring hits of one document merged."""

    n: int
    hits: list[Hit]
    text: str
    page: int | None
    page_end: int | None
    relevance: float  # best cosine of its hits to the question
    before: str = ""  # the document's text just above it, where a table's header may be (extractive answers)

    @property
    def source(self) -> str:
        return self.hits[0].source

    @property
    def section(self) -> str | None:
        return self.hits[0].section

    @property
    def unit(self) -> str:
        return self.hits[0].unit

    def locate(self, quote: str) -> Hit:
        """The chunk of this source that holds `quote` (by its first words): a quote is cited with its
        own chunk's page and section, not the first chunk's of a merged source."""
        probe = " ".join(quote.split())[:80].rstrip("…")
        for h in self.hits:
            if probe and probe in " ".join(h.text.split()):
                return h
        return self.hits[0]

    @property
    def citation(self) -> str:
        return citation(shown(self.source), self.unit, self.page, self.page_end, self.section)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "source": self.source, "page": self.page, "page_end": self.page_end, "unit": self.unit,
                "section": self.section, "chunk_ids": [h.chunk_id for h in self.hits],
                "relevance": round(self.relevance, 4)}


@dataclass
class Citation:
    n: int
    source: str
    page: int | None
    page_end: int | None
    section: str | None
    quote: str
    supported: bool | None  # None: not checked (the check was off)
    chunk_ids: list[int] = field(default_factory=list)
    unit: str = "page"  # what `page` numbers (see `kb.types.UNITS`)

    @property
    def citation(self) -> str:
        return citation(shown(self.source), self.unit, self.page, self.page_end, self.section)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "source": self.source, "page": self.page, "page_end": self.page_end, "unit": self.unit,
                "section": self.section, "quote": self.quote, "supported": self.supported,
                "chunk_ids": self.chunk_ids}


@dataclass
class ModelAnswer:
    """A model's answer that is not shown as the answer (`Answer.model_answer`): its text, why
    (`kb.answer.decide`: UNSUPPORTED, no sentence passes the citation check; UNCITED, it cites no
    source) and the checks its sentences failed."""

    text: str
    reason: str
    checks: list[SentenceCheck] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "reason": self.reason,
                "unsupported": [c.to_json() for c in self.checks if not c.supported]}


@dataclass
class Answer:
    """What `KnowledgeBase.ask` returns; `to_json()` is the `kb ask --json` contract."""

    question: str
    answer: str
    citations: list[Citation]
    hits: list[Hit]
    llm: str | None
    mode: str  # llm | extractive | not_found
    found: bool = True
    sources: list[Source] = field(default_factory=list)  # what the model was given, as numbered
    removed_citations: list[int] = field(default_factory=list)  # [n] that pointed at no source
    checks: list[SentenceCheck] = field(default_factory=list)
    note: str | None = None
    timing: dict[str, float | int | None] = field(default_factory=dict)
    llm_error: str | None = None  # the model failed (to load, or while answering): this answer is extractive
    missing: list[str] = field(default_factory=list)  # names and periods of the question no document mentions
    rewritten: str | None = None  # a follow-up as the model rewrote it to stand alone: what was searched
    abstained: str | None = None  # why it is not an answer (`kb.answer.decide.REASONS`)
    model_answer: ModelAnswer | None = None  # the model's answer, not shown: the passages are quoted instead

    @property
    def unsupported(self) -> list[SentenceCheck]:
        return [c for c in self.checks if not c.supported]

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question, "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "hits": [h.to_json() for h in self.hits],
            "llm": self.llm, "mode": self.mode, "found": self.found,
            "unsupported": [c.to_json() for c in self.unsupported],
            "removed_citations": self.removed_citations,
            "sources": [s.to_json() for s in self.sources],
            "note": self.note, "timing": self.timing, "llm_error": self.llm_error,
            "missing": self.missing, "rewritten": self.rewritten, "abstained": self.abstained,
            "model_answer": self.model_answer.to_json() if self.model_answer else None,
        }
