"""`kb chat`: questions in a row, each answered like `kb ask`; a follow-up is read in the light of the
earlier turns (rewritten by the LLM to stand alone before it is searched). The conversation lives in
this process only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

from kb import Answer
from kb.answer.chat import FALLBACK, KEPT_TURNS, Turn
from kb.answer.generate import check_question
from kb.cli.ask import answer_options, hint_due, print_answer
from kb.cli.common import CONTEXT, emit, open_kb, pop_filters
from kb.errors import ConfigError, KBError
from kb.llm import check_choice

NEW = ("/new", "/reset", "/clear")
QUIT = ("/quit", "/exit", "/q")


@click.command(context_settings=CONTEXT)
@answer_options
def chat(kb_dir: str | None, k: int, llm: str | None, llm_model: str | None, llm_base_url: str | None,
         temperature: float | None, top_p: float | None, top_k: int | None, max_tokens: int, no_stream: bool,
         as_json: bool, **kwargs: Any) -> None:
    """Ask questions in a conversation: a follow-up ("and the year before?", "what about the other
    service?") is rewritten by the LLM, with the earlier turns, into a question that stands alone, and
    that is what is searched. Without an LLM each question is searched as typed.

    Questions come from the terminal, or one per line from stdin when it is piped. /new starts a new
    conversation; /quit, Ctrl-D or Ctrl-C ends. The conversation is kept in this process only.
    With --json, each answer is one `kb ask --json` object per line ("rewritten": what was searched).
    """
    filters = pop_filters(kwargs)
    quiet = bool(kwargs.pop("quiet", False))
    streaming = not as_json and not no_stream
    interactive = sys.stdin.isatty()
    history: list[Turn] = []
    failed = told = hinted = False
    check_choice(llm)  # a usage error is told before a missing knowledge base
    with open_kb(kb_dir, existing=True, llm=llm, llm_model=llm_model, llm_base_url=llm_base_url) as kb:
        if interactive:
            click.echo("kb chat: ask a question; /new starts a new conversation, /quit or Ctrl-D ends.", err=True)
        try:
            for question in _questions(interactive):
                if question.lower() in QUIT:
                    break
                if question.lower() in NEW:
                    history.clear()
                    click.echo("kb: new conversation", err=True)
                    continue
                try:
                    check_question(question)
                except ConfigError as e:  # this question cannot be read (too long); the next may be
                    click.echo(f"kb: error: {e}", err=True)
                    failed = True
                    continue
                printed: list[str] = []

                def show(piece: str, printed: list[str] = printed) -> None:
                    printed.append(piece)
                    click.echo(piece, nl=False)
                    sys.stdout.flush()

                try:
                    result = kb.ask(question, k=k, filters=filters, on_token=show if streaming else None,
                                    stream=streaming, history=history, temperature=temperature, top_p=top_p,
                                    top_k=top_k, max_tokens=max_tokens)
                except ConfigError:
                    raise  # a wrong setting: every question would fail alike
                except KBError as e:  # this question failed (e.g. nothing ingested yet); the next may not
                    if printed:
                        click.echo()
                    click.echo(f"kb: error: {e}", err=True)
                    failed = True
                    continue
                history[:] = [*history, Turn(question, result.answer)][-KEPT_TURNS:]
                if as_json:
                    emit(result.to_json())
                    continue
                hint = not hinted and hint_due(kb, result, quiet)
                print_answer(result, streamed="".join(printed), hint=hint)
                hinted = hinted or hint
                _print_rewrite(result)
                if len(history) > 1 and result.llm is None and not told:
                    click.echo(click.style("kb: without an LLM, follow-ups are searched as typed", dim=True), err=True)
                    told = True
                click.echo()
        except KeyboardInterrupt:
            click.echo("\nkb: bye", err=True)
    if failed:
        sys.exit(1)


def _questions(interactive: bool) -> Iterator[str]:
    """Non-empty lines typed at a prompt (with line editing where `readline` exists), or read from stdin."""
    if interactive:
        try:
            # lazy: readline changes input() for the whole process; only an interactive chat wants it
            import readline  # noqa: F401  (input() gains editing and up-arrow history)
        except ImportError:  # pragma: no cover - not on Windows
            pass
        while True:
            try:
                line = input("? ")
            except EOFError:
                click.echo(err=True)
                return
            if line.strip():
                yield line.strip()
    else:
        for line in sys.stdin:
            if line.strip():
                yield line.strip()


def _print_rewrite(result: Answer) -> None:
    """What was searched, when it is not what was typed, and why a follow-up was searched as typed."""
    if result.rewritten:
        click.echo(click.style(f"searched for: {result.rewritten}", dim=True), err=True)
    elif result.note and result.note.startswith(FALLBACK):
        click.echo(click.style(f"kb: {result.note.split('; ')[0]}", fg="yellow"), err=True)
