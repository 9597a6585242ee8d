"""Answers grounded in retrieved passages: `answer` retrieves (`retrieve`), decides whether to answer
at all (`decide`), writes with a `kb.llm` model (`prompt`, `generate`) or quotes the passages
without one (`extractive`, `tables`), and checks every cited sentence against its sources
(`citations`). The types: `Answer`, `Citation`, `Source`."""

from __future__ import annotations

from kb.answer.chat import KEPT_TURNS, MAX_TURNS, Turn, rewrite
from kb.answer.citations import strip_markers
from kb.answer.decide import NOT_FOUND, RELEVANCE_MIN
from kb.answer.extractive import PLUG_IN_HINT, extractive_answer
from kb.answer.generate import answer, load_llm, resolve_llm
from kb.answer.prompt import SYSTEM, build_messages, fit_sources, merge_hits
from kb.answer.types import Answer, Citation, Source

__all__ = ["KEPT_TURNS", "MAX_TURNS", "NOT_FOUND", "PLUG_IN_HINT", "RELEVANCE_MIN", "SYSTEM", "Answer", "Citation",
           "Source", "Turn", "answer", "build_messages", "extractive_answer", "fit_sources", "load_llm", "merge_hits",
           "resolve_llm", "rewrite", "strip_markers"]
