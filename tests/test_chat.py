"""Answers as a conversation: a follow-up rewritten by the LLM from the earlier turns and searched as
rewritten (`kb.answer.chat`), searched as typed without a model or when the rewrite fails; `kb chat`
on piped stdin; `history` in POST /ask and /ask/stream; the packaged Gemma through the rewrite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase, Turn
from kb.answer import chat
from kb.answer.chat import FALLBACK, MAX_TURNS, rewrite
from kb.cli import main
from kb.llm.base import LLMError, Prompt
from tests.helpers import ScriptedLLM, assert_checkable, free_port, write_markdown

PAYMENTS = """# Payments service

The payments service takes card payments for the shop. It runs in the primary region, frankfurt-1.

## Failover

When the payment gateway returns error 5031, page the on-call engineer. The payments service fails
over to the secondary region named quokka-west.
"""
SEARCH = """# Search service

The search service indexes the product catalogue every night.

## Failover region

The failover region of the search service is wombat-east. Failover region drills for search run on
the first Monday of each month.
"""
EARLIER = [Turn("Who do I page when the payment gateway returns error 5031?",
                "Page the on-call engineer [1].")]
FOLLOW_UP = "what is its failover region?"
REWRITE = "What is the failover region of the payments service?"
ANSWER = "The payments service fails over to quokka-west [1]."


class Replier(ScriptedLLM):
    """A scripted model that tells the rewrite prompt from the answer prompt (by its instructions) and
    says `rewrite` to the one and `answer` to the other; `fail_rewrite` raises as a dead server does."""

    def __init__(self, rewrite: str = REWRITE, answer: str = ANSWER, *, fail_rewrite: bool = False,
                 window: int = 4096):
        super().__init__(answer, window)
        self.rewrite, self.reply, self.fail_rewrite = rewrite, answer, fail_rewrite
        self.rewrites: list[Prompt] = []

    def _stream(self, prompt: Prompt, options: Any) -> Iterator[str]:
        asked_to_rewrite = not isinstance(prompt, str) and prompt[0]["content"] == chat.SYSTEM
        if asked_to_rewrite:
            self.rewrites.append(prompt)
            if self.fail_rewrite:
                raise LLMError("the LLM server at http://127.0.0.1:9 did not answer")
        self.answer = self.rewrite if asked_to_rewrite else self.reply
        yield from super()._stream(prompt, options)


@pytest.fixture(autouse=True)
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Ollama probe at a closed port on this machine, whatever runs on the real one."""
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")


@pytest.fixture(scope="module")
def two_notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge base of two runbooks that both name a failover region (the real embedding model).
    Tests must not write to it."""
    root = tmp_path_factory.mktemp("two-notes")
    write_markdown(root / "docs" / "payments.md", PAYMENTS)
    write_markdown(root / "docs" / "search.md", SEARCH)
    with KnowledgeBase.open(root / "kb") as k:
        assert not k.ingest([str(root / "docs")]).failed
    return root / "kb"


@pytest.fixture
def kb(two_notes: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(two_notes) as k:
        yield k


def names(hits: Any) -> list[str]:
    return [os.path.basename(h["source"] if isinstance(h, dict) else h.source) for h in hits]


# --- the library -----------------------------------------------------------------------------------
def test_a_follow_up_is_rewritten_and_the_rewrite_is_searched(kb: KnowledgeBase) -> None:
    alone = kb.ask(FOLLOW_UP, k=2, llm=Replier())
    assert "search.md" in names(alone.hits)  # on its own, "its failover region" is the search service's too

    llm = Replier()
    answer = kb.ask(FOLLOW_UP, k=2, llm=llm, history=EARLIER)
    assert answer.question == FOLLOW_UP and answer.rewritten == REWRITE
    assert set(names(answer.hits)) == {"payments.md"}
    assert answer.mode == "llm" and answer.answer == ANSWER and names(answer.citations) == ["payments.md"]
    # the model saw the earlier turn (without its citation markers) when rewriting ...
    rewrite_prompt = llm.rewrites[0][-1]["content"]
    assert "Q: Who do I page when the payment gateway returns error 5031?" in rewrite_prompt
    assert "A: Page the on-call engineer." in rewrite_prompt and FOLLOW_UP in rewrite_prompt
    # ... and was asked the rewritten question, with the payments runbook's passage
    answer_prompt = llm.prompts[-1][-1]["content"]  # type: ignore[index]
    assert f"Question: {REWRITE}" in answer_prompt and "quokka-west" in answer_prompt
    data = answer.to_json()
    assert data["question"] == FOLLOW_UP and data["rewritten"] == REWRITE and data["timing"]["rewrite_s"] >= 0


def test_history_as_plain_mappings_and_an_unchanged_rewrite(kb: KnowledgeBase) -> None:
    history = [{"question": EARLIER[0].question, "answer": EARLIER[0].answer}]
    same = kb.ask(REWRITE, k=2, llm=Replier(rewrite=REWRITE), history=history)
    assert same.rewritten is None and same.question == REWRITE  # nothing to rewrite: null, no note
    assert same.note is None and set(names(same.hits)) == {"payments.md"}


def test_without_an_llm_the_question_is_searched_as_typed(kb: KnowledgeBase) -> None:
    answer = kb.ask(FOLLOW_UP, k=2, llm="none", history=EARLIER)
    typed = kb.ask(FOLLOW_UP, k=2, llm="none")
    assert answer.rewritten is None and answer.question == FOLLOW_UP and answer.mode == "extractive"
    assert [h.chunk_id for h in answer.hits] == [h.chunk_id for h in typed.hits]
    assert answer.answer == typed.answer and "search.md" in names(answer.hits)


def test_an_llm_error_during_the_rewrite_falls_back_to_the_question(kb: KnowledgeBase) -> None:
    llm = Replier(fail_rewrite=True)
    answer = kb.ask(FOLLOW_UP, k=2, llm=llm, history=EARLIER)
    assert answer.rewritten is None and answer.question == FOLLOW_UP
    assert answer.note is not None and answer.note.startswith(f"{FALLBACK}: the model could not rewrite it")
    assert "did not answer" in answer.note
    assert answer.mode == "llm" and answer.answer == ANSWER  # the answer itself still comes from the model
    assert f"Question: {FOLLOW_UP}" in llm.prompts[-1][-1]["content"]  # type: ignore[index]


@pytest.mark.parametrize(("reply", "why"), [("", "returned an empty rewrite"),
                                             ("What " + "exactly " * 300 + "?", "rewrite was too long")])
def test_an_empty_or_overlong_rewrite_falls_back(kb: KnowledgeBase, reply: str, why: str) -> None:
    answer = kb.ask(FOLLOW_UP, k=2, llm=Replier(rewrite=reply), history=EARLIER)
    assert answer.rewritten is None and answer.note is not None and why in answer.note
    assert answer.note.startswith(FALLBACK)


def test_the_rewrite_reads_the_last_turns_that_fit() -> None:
    history = [Turn(f"question number {i}?", f"answer number {i} " + "words " * 50) for i in range(10)]
    llm = Replier(rewrite='Standalone question: "What about number 9?"')
    assert rewrite("and that one?", history, llm).query == "What about number 9?"  # label and quotes dropped
    prompt = llm.rewrites[-1][-1]["content"]
    assert [f"question number {i}?" in prompt for i in range(10)] == [i >= 10 - MAX_TURNS for i in range(10)]

    small = Replier(window=300)  # room for about two turns beside the rewrite
    rewrite("and that one?", history, small)
    prompt = small.rewrites[-1][-1]["content"]
    assert "question number 9?" in prompt and "question number 4?" not in prompt
    assert small.count_prompt_tokens(small.rewrites[-1]) + chat.REWRITE_TOKENS <= 300
    labelled = Replier(rewrite="Rewritten question:\n\nWhat about number 9?\nA: it is nine.")
    assert rewrite("and that one?", history, labelled).query == "What about number 9?"  # the first real line
    assert rewrite("and that one?", history, None).query == "and that one?"
    assert rewrite("and that one?", [], llm).query == "and that one?"


# --- kb chat ---------------------------------------------------------------------------------------
def test_kb_chat_on_piped_stdin(two_notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kb.answer

    llm = Replier()
    monkeypatch.setattr(kb.answer, "load_llm", lambda settings, name, cache: (llm, None))
    lines = [EARLIER[0].question, FOLLOW_UP, "/new", FOLLOW_UP]
    result = CliRunner().invoke(main, ["chat", "--kb", str(two_notes), "-k", "2", "--json"],
                                input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["question"] for a in answers] == [EARLIER[0].question, FOLLOW_UP, FOLLOW_UP]
    assert [a["rewritten"] for a in answers] == [None, REWRITE, None]  # /new: nothing to follow up on
    assert set(names(answers[1]["hits"])) == {"payments.md"} and "search.md" in names(answers[2]["hits"])
    assert len(llm.rewrites) == 1 and "new conversation" in result.stderr

    text = CliRunner().invoke(main, ["chat", "--kb", str(two_notes), "-k", "2"],
                              input=f"{EARLIER[0].question}\n{FOLLOW_UP}\n/quit\nnever asked\n")
    assert text.exit_code == 0, text.output
    assert text.stdout.count("\nSources:\n  [1] ") == 2 and "never asked" not in text.output
    assert text.stdout.count(ANSWER) == 2
    assert text.stderr.count(f"searched for: {REWRITE}") == 1  # the follow-up, not the first question


def test_kb_chat_without_an_llm_says_follow_ups_are_searched_as_typed(two_notes: Path) -> None:
    exe = Path(sys.executable).with_name("kb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    out = subprocess.run([str(exe), "chat", "--kb", str(two_notes), "-k", "2", "--llm", "none"],
                         input=f"{EARLIER[0].question}\n\n{FOLLOW_UP}\n", capture_output=True, text=True,
                         timeout=300, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Sources:") == 2 and "on-call engineer" in out.stdout
    assert "wombat-east" in out.stdout  # "its failover region", searched as typed: the other service's
    assert "without an LLM, follow-ups are searched as typed" in out.stderr
    assert "No LLM configured" not in out.stderr  # no model wanted (--llm none): no hint on plugging one in


# --- HTTP ------------------------------------------------------------------------------------------
def test_http_ask_takes_the_history(two_notes: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kb.server import create_app

    history = [{"question": t.question, "answer": t.answer} for t in EARLIER]
    with TestClient(create_app(two_notes, llm=Replier(), docs=[two_notes])) as c:
        r = c.post("/ask", json={"question": FOLLOW_UP, "k": 2, "history": history})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["question"] == FOLLOW_UP and data["rewritten"] == REWRITE
        assert set(names(data["hits"])) == {"payments.md"}
        assert c.post("/ask", json={"question": FOLLOW_UP, "k": 2}).json()["rewritten"] is None

        r = c.post("/ask/stream", json={"question": FOLLOW_UP, "k": 2, "history": history})
        assert r.status_code == 200
        final = [json.loads(b.split("data: ", 1)[1]) for b in r.text.split("\n\n") if b.startswith("event: answer")]
        assert len(final) == 1 and final[0]["rewritten"] == REWRITE

        too_long = c.post("/ask", json={"question": FOLLOW_UP, "history": history * 11})
        assert too_long.status_code == 422 and "history" in too_long.text
        bad = c.post("/ask", json={"question": FOLLOW_UP, "history": [{"answer": "no question"}]})
        assert bad.status_code == 422


# --- a real model ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_gemma_on_a_follow_up(kb: KnowledgeBase, gemma: Any) -> None:
    rewritten = rewrite(FOLLOW_UP, EARLIER, gemma).query
    assert rewritten.strip() and "\n" not in rewritten and len(rewritten) <= chat.MAX_REWRITE_CHARS
    answer = kb.ask(FOLLOW_UP, k=2, llm=gemma, history=EARLIER, max_tokens=24, temperature=0.0)
    assert answer.question == FOLLOW_UP and answer.hits
    # Gemma 3 270M's greedy output moves with the CPU and the llama.cpp build, so the test asserts what
    # kb makes of any outcome: a rewrite that shares a word with the conversation is searched, any other
    # is set aside with the reason and the follow-up searched as typed; the answer is checkable.
    if answer.rewritten is None:
        assert answer.note.startswith("follow-up searched as typed: ") and answer.timing["rewrite_s"] > 0
    else:
        assert answer.rewritten == rewritten != FOLLOW_UP
    assert_checkable(json.loads(json.dumps(answer.to_json())), gemma.name)
    if answer.mode == "extractive" and answer.rewritten is None:  # the passages, for the follow-up as typed
        assert answer.answer.startswith("The failover region of the search service is wombat-east. [2]")
