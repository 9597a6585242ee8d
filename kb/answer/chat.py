"""Follow-up questions: a question that leans on earlier turns ("and the year before?", "what is
its failover region?") is rewritten by the LLM into one that stands alone, so that retrieval and
grounding see the names and periods it leaves out. The reader keeps seeing the question as typed.

The rewrite is a guess by a model, so it is guarded: a model that fails, writes nothing, or writes
something far longer than a question leaves the question as typed, with a one-line note saying so.
Without a model nothing is rewritten: each question is searched as typed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.answer.citations import strip_markers
from kb.llm.base import GenerationOptions, LLMError
from kb.question import STOPWORDS

if TYPE_CHECKING:
    from kb.llm.base import LLM, Message

MAX_TURNS = 6  # earlier turns the model reads; older ones rarely name what a follow-up leaves out
KEPT_TURNS = 10  # earlier turns a conversation keeps and sends (kb chat, the web page's API): the model reads the last MAX_TURNS
ANSWER_CHARS = 1200  # of each earlier answer: its opening names the subject, the rest costs context
REWRITE_TOKENS = 96  # a question, not an essay
MAX_REWRITE_CHARS = 500
FALLBACK = "follow-up searched as typed"  # starts the note of an answer whose rewrite was not used

SYSTEM = """You rewrite the user's last question so that it can be understood without the conversation \
before it. Replace words that point back (it, its, they, that, the same, the one before, what about X) \
with the names, periods and subjects they refer to in the conversation. Keep everything else as the user \
wrote it. Do not answer the question. If it already stands alone, repeat it unchanged.
Reply with the rewritten question only, on one line."""


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation: the question as the user typed it, and the answer given."""

    question: str
    answer: str = ""


History = Iterable[Turn | Mapping[str, str] | Sequence[str]]  # what `turns` accepts


@dataclass(frozen=True)
class Rewrite:
    """What retrieval searches (`query`), and why it is the question as typed when the rewrite was not used."""

    query: str
    note: str | None = None
    seconds: float = 0.0

    def differs(self, question: str) -> bool:
        return _norm(self.query) != _norm(question)


def turns(history: History | None) -> list[Turn]:
    """`history` as `Turn`s: `Turn`s, {"question", "answer"} mappings or (question, answer) pairs, oldest first."""
    out: list[Turn] = []
    for t in history or ():
        if isinstance(t, Turn):
            out.append(t)
        elif isinstance(t, Mapping):
            out.append(Turn(str(t.get("question") or ""), str(t.get("answer") or "")))
        else:
            q, *rest = list(t)
            out.append(Turn(str(q), str(rest[0]) if rest else ""))
    return [t for t in out if t.question.strip()]


def rewrite(question: str, history: Sequence[Turn], llm: LLM | None, *, max_turns: int = MAX_TURNS) -> Rewrite:
    """The query to search for `question` after `history` (oldest first): the question rewritten to stand
    alone, or as typed when there is no model, no history, or the rewrite is not usable; the note says
    why when the model was asked but its rewrite is not used."""
    earlier = list(history)[-max_turns:] if max_turns > 0 else []
    if llm is None or not earlier or not question.strip():
        return Rewrite(question)
    started = time.perf_counter()
    messages = _fit(llm, question, earlier)
    options = GenerationOptions(temperature=0.0, max_tokens=REWRITE_TOKENS, stop=("\nQ:", "\nA:", "\nConversation:"))
    try:
        raw = _first_line(llm.generate(messages, stream=True, options=options))
    except LLMError as e:
        reason = _one_line(str(e)).replace("; ", ", ")  # the note is one clause of the answer's note
        return Rewrite(question, f"{FALLBACK}: the model could not rewrite it ({reason})",
                       time.perf_counter() - started)
    seconds = time.perf_counter() - started
    text = _clean(raw)
    if not text:
        return Rewrite(question, f"{FALLBACK}: {llm.name} returned an empty rewrite", seconds)
    if len(text) > max(MAX_REWRITE_CHARS, 3 * len(question)):
        return Rewrite(question, f"{FALLBACK}: {llm.name}'s rewrite was too long ({len(text)} characters)", seconds)
    if not _words(text) & _words(" ".join([question, *(f"{t.question} {t.answer}" for t in earlier)])):
        # A small model may echo its instructions or a template token ("<</SYS>>") instead: a rewrite
        # shares words with the conversation it rewrites.
        return Rewrite(question, f"{FALLBACK}: {llm.name}'s rewrite shares no word with the conversation "
                                 f"({_shorten(text)})", seconds)
    return Rewrite(text, None, seconds)


def build_messages(question: str, history: Sequence[Turn]) -> list[Message]:
    lines = []
    for t in history:
        lines.append(f"Q: {_one_line(t.question)}")
        answer = _one_line(strip_markers(t.answer))
        if len(answer) > ANSWER_CHARS:
            answer = answer[:ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
        lines.append(f"A: {answer or '(no answer)'}")
    user = ("Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {_one_line(question)}\n"
            "The last question, rewritten to stand alone:")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _fit(llm: LLM, question: str, history: list[Turn]) -> list[Message]:
    """The prompt with as many of the latest turns as the model's window holds beside the rewrite (at
    least the last one, its answer cut shorter if need be)."""
    budget = llm.context_window - (REWRITE_TOKENS if llm.output_in_context else 0) - max(16, llm.context_window // 50)
    while len(history) > 1 and llm.count_prompt_tokens(build_messages(question, history)) > budget:
        history = history[1:]
    messages = build_messages(question, history)
    last = history[-1]
    chars = min(ANSWER_CHARS, len(last.answer))
    while chars > 0 and llm.count_prompt_tokens(messages) > budget:
        chars //= 2
        messages = build_messages(question, [Turn(last.question, last.answer[:chars])])
    return messages


_PREFIX = re.compile(r"^(?:(?:standalone|rewritten|last)\s+question|question|rewrite|q)\s*[:：]\s*", re.IGNORECASE)


def _clean(raw: str) -> str:
    """The first line the model wrote, without a label it may repeat ("Rewritten question:") or quotes."""
    for line in raw.splitlines():
        line = _PREFIX.sub("", line.strip().lstrip("*# ").strip())
        line = line.strip().strip("\"'“”‘’`*").strip()
        if line:
            return line
    return ""


def _first_line(pieces: Iterator[str]) -> str:
    """What the model writes up to the end of its first non-empty line: the rest is not read, so it is
    not waited for (the stream is closed there)."""
    out = ""
    for piece in pieces:
        out += piece
        if "\n" in out and _clean(out[: out.rindex("\n")]):  # a line with more than a label ("Question:")
            break
    if isinstance(pieces, Generator):
        pieces.close()
    return out


def _words(text: str) -> set[str]:
    """Content words, plural or possessive -s dropped ("payments" and "payment's" are one word)."""
    words = (w.lower() for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9'’-]*", text))
    return {re.sub(r"(?:['’]s|s['’]?)$", "", w) for w in words if w not in STOPWORDS and len(w) > 2}


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _norm(text: str) -> str:
    return _one_line(text).lower().rstrip("?.! ")
