"""Answers: retrieve the passages (`kb.answer.retrieve`), decide whether to answer at all
(`kb.answer.decide`), write (a language model given the passages as numbered, quoted sources
fitted to its context window; without one, the passages' best sentences: `kb.answer.extractive`),
then verify what the model cites."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kb.answer.chat import rewrite, turns
from kb.answer.citations import (
    SentenceCheck,
    check_sentences,
    cited_numbers,
    clean_citations,
    first_sentence,
    shorten,
)
from kb.answer.decide import DECLINED, NOT_FOUND, UNCITED, UNQUOTABLE, UNSUPPORTED, decide, judge, vague
from kb.answer.extractive import extractive_answer
from kb.answer.prompt import build_messages, fit_sources, merge_hits
from kb.answer.retrieve import Aliases, Grounding, Names, Passages, Search, retrieve
from kb.answer.types import Answer, Citation, ModelAnswer, Source
from kb.errors import ConfigError, DependencyError
from kb.llm import NO_LLM, default_llm
from kb.llm.base import LLM, ContextOverflowError, GenerationOptions, LLMError
from kb.question import Question, read

if TYPE_CHECKING:
    from kb.answer.chat import History
    from kb.config import Settings
    from kb.embed.base import Embedder
    from kb.filters import Filters
    from kb.types import Hit

OnToken = Callable[[str], None]
Before = Callable[["Hit"], str]  # the text of a hit's document just above it (`KnowledgeBase.ask`)

# The longest question taken, in characters: the embedding model reads about 256 word pieces (some
# 1,000 characters), so a longer text is not a question search or the citation check can read whole;
# the HTTP API and MCP take the same bound.
QUESTION_MAX = 2000


class _Rejected(LLMError):
    """The model's answer is not one to show (`judge`: UNCITED, UNSUPPORTED): the passages are quoted
    instead, and its text is kept in `Answer.model_answer`."""

    def __init__(self, message: str, rejected: ModelAnswer):
        super().__init__(message)
        self.rejected = rejected


def check_question(question: str) -> str:
    """`question` stripped, or `ConfigError` (a usage error) when it is empty or too long to read."""
    text = question.strip()
    if not text:
        raise ConfigError("the question is empty")
    if len(text) > QUESTION_MAX:
        raise ConfigError(f"the question is {len(text):,} characters long; at most {QUESTION_MAX:,} are read")
    return text


def answer(search: Search, embedder: Embedder, question: str, *, k: int = 5, filters: Filters | None = None,
           llm: LLM | None = None, on_token: OnToken | None = None, stream: bool = True,
           check: bool = True, llm_error: str | None = None, history: History = (),
           aliases: Aliases | None = None, names: Names | None = None, before: Before | None = None,
           **generation: Any) -> Answer:
    """Answer `question` from what `search` finds. `llm`: the model (see `load_llm`), or None for an
    extractive answer. `on_token` sees the answer as it streams. `generation`: temperature, top_p,
    top_k, max_tokens, num_beams. `llm_error`: why the configured model could not be loaded.
    `history`: the conversation's earlier turns, oldest first: `Turn`s or {"question", "answer"}.
    `aliases`: the aliases a text names that the documents define (`KnowledgeBase.aliases`): a
    question naming one ("NnW") is not answered "not found" for want of that word. `names`: the words
    of a text the documents write as names (`KnowledgeBase.names`), read as names however the question
    writes them ("brackwater operating income"). `before`: the text
    of a hit's document just above it, where the extractive answer looks for a table row's header.

    A model that fails while answering (crashes, stops answering, refuses) gives way to the
    extractive answer, with the reason in `llm_error` and `note`: the question is never lost.

    A follow-up is rewritten by the model to stand alone (`kb.answer.chat.rewrite`); the rewrite is
    what is searched, grounded and put to the model, since "its" means nothing to a retriever or to
    a model that never saw the conversation. The answer keeps the question as typed, and the rewrite
    in `rewritten`.

    A question that is empty or longer than `QUESTION_MAX` characters raises `ConfigError`."""
    question = check_question(question)
    started = llm.take_start_s() if llm is not None else None  # the model started for this question
    earlier = turns(history)
    asked = rewrite(question, earlier, llm) if earlier and llm is not None else None
    query = asked.query if asked else question
    result = _answer(search, embedder, query, k=k, filters=filters, llm=llm, on_token=on_token, stream=stream,
                     check=check, llm_error=llm_error, options=GenerationOptions().update(**generation),
                     aliases=aliases, names=names, before=before)
    if not result.found:
        result.hits = nearest(result.hits)
    if asked is not None:
        result.question = question
        result.rewritten = query if asked.differs(question) else None
        result.timing["rewrite_s"] = round(asked.seconds, 3)
        if asked.note:
            result.note = f"{asked.note}; {result.note}" if result.note else asked.note
    if llm is not None:
        again = llm.take_start_s()  # restarted while answering (a server that had died)
        if started is not None or again is not None:
            result.timing["model_start_s"] = round((started or 0.0) + (again or 0.0), 3)
    return result


def _answer(search: Search, embedder: Embedder, question: str, *, k: int, filters: Filters | None,
            llm: LLM | None, on_token: OnToken | None, stream: bool, check: bool, llm_error: str | None,
            options: GenerationOptions, aliases: Aliases | None = None, names: Names | None = None,
            before: Before | None = None) -> Answer:
    """Retrieve, decide, write (the model, or the passages' own sentences when there is none or it
    fails), verify."""
    started = time.perf_counter()
    asked = read(question, names(question) if names else frozenset())
    empty = vague(asked)
    if empty is not None:
        return empty.answer(question, Passages([], [], Grounding([], [])), llm.name if llm else None, {}, llm_error)
    passages = _numbered(retrieve(search, embedder, asked, k, filters, aliases))
    timing: dict[str, float | int | None] = {"retrieve_s": round(time.perf_counter() - started, 3)}
    abstain = decide(passages, filters)
    if abstain is not None:
        return abstain.answer(question, passages, llm.name if llm else None, timing, llm_error)
    sources = merge_hits(passages.hits, passages.relevance)
    shown: list[str] = []  # what the model streamed before it failed, if it did
    rejected: ModelAnswer | None = None

    def show(piece: str) -> None:
        shown.append(piece)
        if on_token:
            on_token(piece)

    if llm is not None:
        try:
            written = _write(llm, question, sources, options, show, stream, timing)
            return _verify(llm, question, written, passages.hits, embedder, check, timing)
        except _Rejected as e:
            llm_error, rejected = str(e), e.rejected
        except LLMError as e:
            llm_error = str(e)
    if before is not None:
        sources = [dataclasses.replace(s, before=before(s.hits[0])) for s in sources]
    result = _quote(asked, sources, passages.hits, embedder, timing, llm_error)
    result.model_answer = rejected
    if on_token:
        on_token(("\n\n" if shown else "") + result.answer)
    return result


def _quote(question: Question, sources: list[Source], hits: list[Hit], embedder: Embedder,
           timing: dict[str, float | int | None], llm_error: str | None) -> Answer:
    """The passages' own sentences (`extractive_answer`); `llm_error`: why not the model's answer.
    When no line is left to quote, "not found" (UNQUOTABLE): an answer is never empty."""
    result = extractive_answer(question, sources, embedder)
    result.hits, result.timing = hits, timing
    if not result.answer.strip():
        note = "no sentence of the passages answers the question; nearest passages shown"
        result = Answer(question.text, NOT_FOUND, [], hits, None, "not_found", found=False, note=note,
                        timing=timing, abstained=UNQUOTABLE)
    if llm_error:
        result.llm_error = llm_error
        instead = "the answer quotes the passages instead" if result.found else "nothing in the passages to quote instead"
        result.note = f"{llm_error}; {instead}" + (f" ({result.note})" if result.note and not result.found else "")
    return result


def _numbered(passages: Passages) -> Passages:
    """The passages ranked 1, 2, 3... in the order they are given: retrieval adds the best document's
    keyword passages after the ranked ones, each with its own search's rank."""
    hits = [dataclasses.replace(h, rank=i) for i, h in enumerate(passages.hits, 1)]
    return dataclasses.replace(passages, hits=hits)


def nearest(hits: list[Hit]) -> list[Hit]:
    """The passages a "not found" shows: each page once (its best passage), numbered once. A passage
    without a page is its own entry."""
    seen: set[tuple[str, int | str]] = set()
    out: list[Hit] = []
    for h in hits:
        key = (h.source, h.page if h.page is not None else f"chunk {h.chunk_id}")
        if key not in seen:
            seen.add(key)
            out.append(dataclasses.replace(h, rank=len(out) + 1))
    return out


def load_llm(settings: Settings, llm: LLM | str | None, cache: dict[tuple[Any, ...], Any]) -> tuple[LLM | None, str | None]:
    """`resolve_llm`, except that a model that cannot be loaded or reached gives (None, the reason):
    the question is then answered from the passages' own sentences. A wrong setting still raises."""
    try:
        return resolve_llm(settings, llm, cache), None
    except (LLMError, DependencyError) as e:
        return None, str(e)


def resolve_llm(settings: Settings, llm: LLM | str | None, cache: dict[tuple[Any, ...], Any]) -> LLM | None:
    """`llm` as given (an `LLM`, a backend name, "none"), or the configured default; loaded once per
    settings into `cache` (the caller's, e.g. one per knowledge base). Call it before retrieving: a
    misconfigured LLM is an error even when nothing is found."""
    if isinstance(llm, LLM):
        return llm
    if isinstance(llm, str):
        if llm.strip().lower() in NO_LLM:
            return None
        settings = settings.replace(llm=llm)
    key = (settings.llm, settings.llm_model, settings.llm_base_url, settings.llm_context)
    if key not in cache:
        cache[key] = default_llm(settings)
    return cache[key]


def _write(llm: LLM, question: str, all_sources: list[Source], options: GenerationOptions, on_token: OnToken,
           stream: bool, timing: dict[str, float | int | None]) -> tuple[str, list[Source]]:
    """What the model writes from the sources that fit its window (streamed to `on_token`), and those
    sources; its speed goes into `timing`."""
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
            # Streamed from the model even when the caller wants one piece: the first piece's time
            # splits reading the prompt from writing the answer.
            for piece in llm.generate(messages, stream=True, options=options.update(max_tokens=allowance)):
                if first is None:
                    first = time.perf_counter()
                pieces.append(piece)
                if stream:
                    on_token(piece)
            if not stream and pieces:
                on_token("".join(pieces))
            break
        except ContextOverflowError as e:
            # The server's window is smaller than it said (llama_cpp.server does not say at all):
            # learn it from the refusal and fit again, once, if nothing was shown yet.
            if attempt or pieces or not e.context_window or llm.learn_context_window(e.context_window) is False:
                raise
    end = time.perf_counter()
    raw = "".join(pieces).strip()
    timing.update(speed(timing["prompt_tokens"], llm.count_tokens(raw) if raw else 0, len(pieces), t0, first, end))
    return raw, sources


def speed(prompt_tokens: int | float | None, out_tokens: int, pieces: int, t0: float, first: float | None,
          end: float) -> dict[str, float | int | None]:
    """A model call's timing (docs/json.md): the prompt sent at `t0`, the first of `pieces` at `first`,
    the last at `end`. The time to the first piece is reading the prompt (and writing that piece):
    `prompt_tokens_per_s`; the rest is writing the other `out_tokens - 1`: `tokens_per_s`. An answer
    that came in one piece, or all at once, has no generation speed to tell (None)."""
    reading = first - t0 if first is not None else None
    writing = end - first if first is not None else None
    # Pieces that came within 50 ms came together (a server holds back text that may begin a stop
    # string, then sends it at once), not at the model's pace: no speed is told from them.
    paced = writing is not None and writing >= 0.05 and pieces > 1 and out_tokens > 1
    return {
        "first_token_s": round(reading, 3) if reading is not None else None,
        "prompt_tokens_per_s": (round(prompt_tokens / reading, 1) if prompt_tokens and reading else None),
        "generation_s": round(writing, 3) if writing is not None else None,
        "generate_s": round(end - t0, 3),
        "output_tokens": out_tokens,
        "tokens_per_s": round((out_tokens - 1) / writing, 2) if paced and writing else None,
    }


def _verify(llm: LLM, question: str, written: tuple[str, list[Source]], hits: list[Hit], embedder: Embedder,
            check: bool, timing: dict[str, float | int | None]) -> Answer:
    """The model's answer with its citations cleaned and checked against the sources it cites. An
    answer that is empty raises `LLMError`, one that cites none of its sources or has no supported
    sentence `_Rejected`: the passages are quoted instead."""
    raw, sources = written
    text, removed = clean_citations(raw, [s.n for s in sources])
    if not text:  # nothing to read (a small model may stop at once): the passages' own sentences instead
        raise LLMError(f"{llm.name} returned an empty answer")
    by_n = {s.n: s for s in sources}
    checks = check_sentences(text, {n: s.text for n, s in by_n.items()}, embedder.embed_documents) if check else []
    citations = _citations(text, by_n, checks, check)
    verdict = judge(text, citations, checks)
    if verdict == UNCITED:
        raise _Rejected(f"{llm.name} gave an answer that cites none of the sources", ModelAnswer(text, verdict, checks))
    if verdict == UNSUPPORTED:
        raise _Rejected(f"{llm.name}'s answer is not supported by the sources it cites (no sentence passes the "
                        "citation check)", ModelAnswer(text, verdict, checks))
    found = verdict != DECLINED
    note = None
    if removed:
        note = "removed citations of sources that were not given: " + ", ".join(f"[{n}]" for n in removed)
    return Answer(question, text, citations, hits, llm.name, "llm" if found else "not_found", found=found,
                  sources=sources, removed_citations=removed, checks=checks, note=note, timing=timing,
                  abstained=verdict)


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
