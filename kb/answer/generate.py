"""Answers: retrieve passages, give them to a language model as numbered, quoted sources fitted to
its context window, then check what it cites. Without a model, quote the best sentences
(`kb.answer.extractive`)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kb.answer.citations import (
    SentenceCheck,
    check_sentences,
    cited_numbers,
    clean_citations,
    first_sentence,
    shorten,
)
from kb.answer.extractive import extractive_answer
from kb.answer.grounding import ground, topic
from kb.answer.prompt import build_messages, fit_sources, merge_hits
from kb.answer.types import Answer, Citation, Source
from kb.filters import Filters, glob_escape
from kb.types import Hit

if TYPE_CHECKING:
    from kb.answer.chat import History
    from kb.config import Settings
    from kb.embed.base import Embedder
    from kb.llm.base import LLM, GenerationOptions

Search = Callable[..., list[Hit]]  # `KnowledgeBase.search`, or a reader's: (query, k=, filters=, mode=) -> hits

# Below this cosine (all-MiniLM-L6-v2, question vs passage text) the best passage is not about the
# question. Measured by `benchmarks/ask.py --calibrate` on sec-10q: the best passage of each of the
# 130 single-filing questions scores 0.54-0.74 (5th-95th percentile, none below 0.30); 20 off-topic
# questions (sourdough, chess, Hamlet) score 0.10-0.23, none 0.25 or more. 0.30 sits in the gap,
# nearer the off-topic side, since short notes score lower than 10-Q passages on real questions.
RELEVANCE_MIN = 0.30
NOT_FOUND = "Not found in the knowledge base."
KEYWORD_EXTRA = 3  # keyword passages of the best document added to the answer's sources
WIDE_K = 15  # passages retrieved before narrowing to the documents about the question's names
_NOT_FOUND = re.compile(
    r"(sources?|documents?|context|passages?|excerpts?|knowledge base)\s+(do|does)\s+not\s+"
    r"(contain|mention|provide|include|say|specify|state|answer)"
    r"|not\s+(found|contained|mentioned|provided|stated|specified|available)\s+in\s+the\s+"
    r"(provided\s+|given\s+)?(sources?|documents?|context|passages?|knowledge base)"
    r"|^\s*(i\s+(do\s+not|don't|cannot|can't)\s+(know|find|answer))",
    re.IGNORECASE,
)


def answer(search: Search, embedder: Embedder, question: str, *, k: int = 5, filters: Filters | None = None,
           llm: LLM | None = None, on_token: Callable[[str], None] | None = None, stream: bool = True,
           check: bool = True, llm_error: str | None = None, history: History = (),
           **generation: Any) -> Answer:
    """Answer `question` from what `search` finds. `llm`: the model (see `load_llm`), or None for an
    extractive answer. `on_token` sees the answer as it streams. `generation`: temperature, top_p,
    top_k, max_tokens, num_beams. `llm_error`: why the configured model could not be loaded.
    `history`: the conversation's earlier turns, oldest first: `Turn`s or {"question", "answer"}.

    A model that fails while answering (crashes, stops answering, refuses) gives way to the
    extractive answer, with the reason in `llm_error` and `note`: the question is never lost.

    A follow-up is rewritten by the model to stand alone (`kb.answer.chat.rewrite`); the rewrite is
    what is searched, grounded and put to the model, since "its" means nothing to a retriever or to
    a model that never saw the conversation. The answer keeps the question as typed, and the rewrite
    in `rewritten`."""
    from kb.answer.chat import rewrite, turns

    earlier = turns(history)
    asked = rewrite(question, earlier, llm) if earlier and llm is not None else None
    query = asked.query if asked else question
    result = _answer(search, embedder, query, k=k, filters=filters, llm=llm, on_token=on_token, stream=stream,
                     check=check, llm_error=llm_error, **generation)
    if asked is not None:
        result.question = question
        result.rewritten = query if asked.differs(question) else None
        result.timing["rewrite_s"] = round(asked.seconds, 3)
        if asked.note:
            result.note = f"{asked.note}; {result.note}" if result.note else asked.note
    return result


def _answer(search: Search, embedder: Embedder, question: str, *, k: int, filters: Filters | None,
            llm: LLM | None, on_token: Callable[[str], None] | None, stream: bool, check: bool,
            llm_error: str | None, **generation: Any) -> Answer:
    from kb.llm.base import GenerationOptions, LLMError

    options = GenerationOptions().update(**generation)
    started = time.perf_counter()
    # A wider net, narrowed to the documents about what the question names (`ground`).
    wide = search(question, k=max(k, min(3 * k, WIDE_K)), filters=filters)
    grounding = ground(question, wide, search, filters)
    focused = {h.chunk_id for h in grounding.focused}
    hits = [h for h in wide if h.chunk_id in focused][:k]
    if grounding.latest and not (filters and filters.path):
        within = dataclasses.replace(filters or Filters(), path=glob_escape(grounding.latest))
        hits = search(question, k=k, filters=within) or hits
    if hits and not (filters and filters.path):
        # The passages of the best document that hold the question's own words (a statement's row
        # "Total operating expenses"), which the fused ranking may leave below its discussion.
        within = dataclasses.replace(filters or Filters(), path=glob_escape(hits[0].source))
        have = {h.chunk_id for h in hits}
        asked = topic(question)
        extra = search(asked, k=KEYWORD_EXTRA, filters=within, mode="keyword") if asked.strip() else []
        hits += [h for h in extra if h.chunk_id not in have]
    relevance = _relevance(embedder, question, hits)
    timing: dict[str, float | int | None] = {"retrieve_s": round(time.perf_counter() - started, 3)}
    if not hits:
        why = (f"no passage passes the filters ({filters.describe()})" if filters and not filters.is_empty()
               else "the knowledge base holds no passages")
        return Answer(question, NOT_FOUND, [], hits, llm.name if llm else None, "not_found", found=False,
                      timing=timing, llm_error=llm_error, note=why)
    if max(relevance) < RELEVANCE_MIN:
        return Answer(question, NOT_FOUND, [], hits, llm.name if llm else None, "not_found", found=False,
                      timing=timing, llm_error=llm_error,
                      note=f"no passage is close enough to the question (best similarity "
                           f"{max(relevance):.2f} < {RELEVANCE_MIN}); nearest passages shown")
    if grounding.missing:
        missing = grounding.missing
        said = "; ".join(t.missing for t in missing)
        return Answer(question, f"{NOT_FOUND[:-1]}: {said}.", [], hits, llm.name if llm else None, "not_found",
                      found=False, timing=timing, llm_error=llm_error,
                      note=f"{said}; nearest passages shown", missing=[t.text for t in missing])
    sources = merge_hits(hits, relevance)
    shown: list[str] = []
    if llm is not None:
        def show(piece: str) -> None:
            shown.append(piece)
            if on_token:
                on_token(piece)

        try:
            return _generate(llm, question, sources, hits, embedder, options, show, stream, check, timing)
        except LLMError as e:
            llm_error = str(e)
    result = extractive_answer(question, sources, embedder)
    result.hits, result.timing = hits, timing
    if llm_error:
        result.llm_error = llm_error
        result.note = f"{llm_error}; the answer quotes the passages instead"
    if on_token:
        on_token(("\n\n" if shown else "") + result.answer)
    return result


def load_llm(settings: Settings, llm: LLM | str | None, cache: dict[tuple[Any, ...], Any]) -> tuple[LLM | None, str | None]:
    """`resolve_llm`, except that a model that cannot be loaded or reached gives (None, the reason):
    the question is then answered from the passages' own sentences. A wrong setting still raises."""
    from kb.errors import DependencyError
    from kb.llm.base import LLMError

    try:
        return resolve_llm(settings, llm, cache), None
    except (LLMError, DependencyError) as e:
        return None, str(e)


def resolve_llm(settings: Settings, llm: LLM | str | None, cache: dict[tuple[Any, ...], Any]) -> LLM | None:
    """`llm` as given (an `LLM`, a backend name, "none"), or the configured default; loaded once per
    settings into `cache` (the caller's, e.g. one per knowledge base). Call it before retrieving: a
    misconfigured LLM is an error even when nothing is found."""
    from kb.llm import NO_LLM, default_llm
    from kb.llm.base import LLM

    if isinstance(llm, LLM):
        return llm
    if isinstance(llm, str):
        if llm.strip().lower() in NO_LLM:
            return None
        settings = settings.replace(llm=llm)
    key = (settings.llm, settings.llm_model, settings.llm_base_url, settings.llm_context)
    if key not in cache:
        cache[key] = default_llm(settings)
    return cache[key]  # type: ignore[no-any-return]


def _relevance(embedder: Embedder, question: str, hits: Sequence[Hit]) -> list[float]:
    """Cosine of the question to each hit's text: a scale that holds whatever the search fused."""
    if not hits:
        return []
    q = embedder.embed_query(question)
    return [float(x) for x in embedder.embed_documents([h.text for h in hits]) @ q]


def _generate(llm: LLM, question: str, all_sources: list[Source], hits: list[Hit], embedder: Embedder,
              options: GenerationOptions, on_token: Callable[[str], None] | None, stream: bool, check: bool,
              timing: dict[str, float | int | None]) -> Answer:
    from kb.llm.base import ContextOverflowError, LLMError

    if not options.stop:
        # A model without a chat template reads the prompt as text to continue: stop it before it
        # writes the next question or source itself.
        options = options.update(stop=("\nQuestion:", "<source", "\nSources:"))
    for attempt in range(2):
        sources, allowance = fit_sources(llm, question, all_sources, options.max_tokens)
        messages = build_messages(question, sources)
        timing["prompt_tokens"] = llm.count_prompt_tokens(messages)
        pieces: list[str] = []
        t0 = time.perf_counter()
        first: float | None = None
        try:
            for piece in llm.generate(messages, stream=stream, options=options.update(max_tokens=allowance)):
                if first is None:
                    first = time.perf_counter()
                pieces.append(piece)
                if on_token:
                    on_token(piece)
            break
        except ContextOverflowError as e:
            # The server's window is smaller than it said (llama_cpp.server does not say at all):
            # learn it from the refusal and fit again, once, if nothing was shown yet.
            if attempt or pieces or not e.context_window or llm.learn_context_window(e.context_window) is False:
                raise
    end = time.perf_counter()
    raw = "".join(pieces).strip()
    out_tokens = llm.count_tokens(raw) if raw else 0
    timing.update({
        "first_token_s": round(first - t0, 3) if first else None,
        "generate_s": round(end - t0, 3),
        "output_tokens": out_tokens,
        # after the first token: the time before it is prompt reading, reported as first_token_s (an
        # answer that came in one piece, not streamed, has no such split: then over the whole call)
        "tokens_per_s": (round((out_tokens - 1) / (end - first), 2) if first and end - first > 0.05 and out_tokens > 1
                         else round(out_tokens / (end - t0), 2) if out_tokens and end > t0 else None),
    })
    text, removed = clean_citations(raw, [s.n for s in sources])
    if not text:  # nothing to read (a small model may stop at once): the passages' own sentences instead
        raise LLMError(f"{llm.name} returned an empty answer")
    by_n = {s.n: s for s in sources}
    checks = check_sentences(text, {n: s.text for n, s in by_n.items()}, embedder.embed_documents) if check else []
    found = not _NOT_FOUND.search(text[:300])
    citations = _citations(text, by_n, checks, check)
    if found and not citations:  # nothing a reader could check (a small model's stray label or echo)
        raise LLMError(f"{llm.name} gave an answer that cites none of the sources")
    note = None
    if removed:
        note = "removed citations of sources that were not given: " + ", ".join(f"[{n}]" for n in removed)
    return Answer(question, text, citations, hits, llm.name, "llm" if found else "not_found", found=found,
                  sources=sources, removed_citations=removed, checks=checks, note=note, timing=timing)


def _citations(text: str, by_n: dict[int, Source], checks: list[SentenceCheck], checked: bool) -> list[Citation]:
    out: list[Citation] = []
    for n in cited_numbers(text):
        s = by_n.get(n)
        if s is None:
            continue
        mine = [c for c in checks if n in c.citations]
        quote = next((c.best_quote[n] for c in mine if n in c.best_quote), None) or first_sentence(s.text)
        supported: bool | None = all(c.supported for c in mine) if checked else None
        at = s.locate(quote)
        out.append(Citation(n, s.source, at.page, at.page_end, at.section, shorten(quote), supported,
                            [h.chunk_id for h in s.hits], s.unit))
    return sorted(out, key=lambda c: c.n)
