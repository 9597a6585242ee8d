"""`kb ask`: an answer from the knowledge base with numbered, checked citations."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from kb import Answer
from kb.answer.citations import shorten
from kb.cli.common import (
    CONTEXT,
    emit,
    filter_options,
    json_option,
    kb_option,
    llm_options,
    open_kb,
    pop_filters,
    stacked,
    store_options,
)
from kb.cli.snippets import snippet_line


def answer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that answers (`kb ask`, `kb chat`): knowledge base, store, -k, the
    LLM and its generation settings, filters, --json."""
    return stacked(
        kb_option,
        store_options,
        click.option("-k", "--k", "k", type=click.IntRange(1, 100), default=5,
                     help="Passages to retrieve (the answer may add up to 3 of the best document's, found by keyword)."),
        llm_options(),
        click.option("--temperature", type=click.FloatRange(0, 5), default=None,
                     help="Sampling temperature [default: 0.1]."),
        click.option("--top-p", type=click.FloatRange(0, 1), default=None, help="Nucleus sampling."),
        click.option("--top-k", type=click.IntRange(0), default=None, help="Sample among the k likeliest tokens."),
        click.option("--max-tokens", type=click.IntRange(1), default=512, help="Longest answer, in tokens."),
        click.option("--no-stream", is_flag=True,
                     help="Print the answer when it is complete, unsupported sentences marked."),
        filter_options,
        json_option,
    )(command)


@click.command(context_settings=CONTEXT)
@click.argument("question")
@answer_options
def ask(question: str, kb_dir: str | None, k: int, llm: str | None, llm_model: str | None, llm_base_url: str | None,
        temperature: float | None, top_p: float | None, top_k: int | None, max_tokens: int, no_stream: bool,
        as_json: bool, **kwargs: Any) -> None:
    """Answer QUESTION from the knowledge base, citing passages as [n].

    Uses the configured LLM; else an Ollama server on this machine; else quotes the sentences of
    the best passages. Each cited sentence is checked against its source: its figures must be
    there and its meaning close, or it is marked unsupported.
    """
    filters = pop_filters(kwargs)
    streaming = not as_json and not no_stream
    printed: list[str] = []

    def show(piece: str) -> None:
        printed.append(piece)
        click.echo(piece, nl=False)
        sys.stdout.flush()

    with open_kb(kb_dir, llm=llm, llm_model=llm_model, llm_base_url=llm_base_url) as kb:
        result = kb.ask(question, k=k, filters=filters, on_token=show if streaming else None, stream=streaming,
                        temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens)
    if as_json:
        emit(result.to_json())
        return
    print_answer(result, streamed="".join(printed))


def print_answer(result: Answer, streamed: str, *, hint: bool = True) -> None:
    """An answer's end on the terminal: the answer itself unless it `streamed`, then its sources (or the
    nearest passages), unsupported sentences, and what answered, messages on stderr. `hint`: the
    extractive answer's note (how to plug in a model); a conversation shows it once."""
    if streamed:
        click.echo()
    else:
        click.echo(_marked(result))
    if result.llm_error:
        click.echo(click.style(f"kb: {result.llm_error}; the answer quotes the passages instead", fg="yellow"),
                   err=True)
    if result.removed_citations:
        click.echo(click.style("kb: removed citations of sources that were not given: ", fg="yellow")
                   + ", ".join(f"[{n}]" for n in result.removed_citations), err=True)
    if not result.found:
        if result.mode == "not_found" and result.note and not result.sources:
            click.echo(f"kb: {result.note}", err=True)
        if result.hits:
            click.echo("\nNearest passages:")
            for h in result.hits:
                click.echo(f"  {h.rank}. " + click.style(h.citation, bold=True))
                click.echo(f"     {snippet_line(h)}")
        return
    if result.citations:
        click.echo("\nSources:")
        for c in result.citations:
            flag = "" if c.supported is not False else click.style("  (unsupported)", fg="yellow")
            click.echo(f"  [{c.n}] " + click.style(c.citation, bold=True) + flag)
            click.echo(f"      “{c.quote}”")
    elif result.mode == "llm":
        click.echo(click.style("\n(the answer cites no source)", fg="yellow"))
    unsupported = result.unsupported
    if unsupported and streamed:
        click.echo(click.style("\nNot supported by the sources:", fg="yellow"))
        for check in unsupported:
            click.echo(f"  • “{shorten(check.sentence, 160)}”: {'; '.join(check.reasons)}")
    if result.mode == "extractive" and result.note and not result.llm_error and hint:
        click.echo(click.style(f"\n{result.note}", dim=True), err=True)
    elif result.llm:
        click.echo(click.style(f"answered by {result.llm}", dim=True), err=True)


def _marked(result: Answer) -> str:
    """The answer with each unsupported sentence followed by a visible mark."""
    text = result.answer
    for c in result.unsupported:
        if c.sentence in text:
            reason = "; ".join(c.reasons)
            text = text.replace(c.sentence, c.sentence + click.style(f" ⚠ unsupported: {reason}", fg="yellow"), 1)
    return text
