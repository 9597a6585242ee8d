"""`kb ask`: an answer from the knowledge base with numbered, checked citations."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from kb import Answer, KnowledgeBase
from kb.answer import PLUG_IN_HINT
from kb.answer.citations import SentenceCheck, shorten
from kb.answer.extractive import WRITTEN_ANSWER
from kb.answer.generate import QUESTION_MAX, check_question
from kb.cli.common import (
    CONTEXT,
    emit,
    filter_options,
    inherited,
    json_option,
    kb_option,
    llm_options,
    open_kb,
    pop_filters,
    stacked,
    store_options,
)
from kb.cli.snippets import snippet_line
from kb.llm import NO_LLM, check_choice
from kb.llm.base import RenderedPrompt, Watched

HINT_SHOWN = "llm-hint-shown"  # a file in the knowledge base's folder: the hint on plugging in a model was shown


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
        click.option("-q", "--quiet", is_flag=True, callback=inherited,
                     help="No hint on how to plug in a model for a written answer."),
    )(command)


ASK_HELP = f"""Answer QUESTION from the knowledge base, citing passages as [n].

Uses the configured LLM; else an Ollama server on this machine; else quotes the sentences of the
best passages. Each cited sentence is checked against its source: its figures must be there and
its meaning close, or it is marked unsupported; a model's answer with no supported sentence is not
shown as the answer (the passages are quoted instead). "Not found" lists the nearest passages.

{WRITTEN_ANSWER} Without one, kb says so once per knowledge base (never with --llm none or -q).

--show-prompt prints what the model receives, then answers: the exact text (kb's messages in the
model's chat template) for a GGUF or transformers model, the messages as JSON for a server, which
applies its own template.

Exit status: 0 answered or "not found"; 1 the command failed (e.g. nothing ingested yet); 2 usage
error (an empty question, one over {QUESTION_MAX:,} characters, an unknown option or backend).
"""


@click.command(context_settings=CONTEXT, help=ASK_HELP)
@click.argument("question")
@answer_options
@click.option("--show-prompt", is_flag=True,
              help="Print what the model receives before its answer (with --json: under \"prompt\").")
def ask(question: str, kb_dir: str | None, k: int, llm: str | None, llm_model: str | None, llm_base_url: str | None,
        temperature: float | None, top_p: float | None, top_k: int | None, max_tokens: int, no_stream: bool,
        as_json: bool, quiet: bool, show_prompt: bool, **kwargs: Any) -> None:
    filters = pop_filters(kwargs)
    check_question(question)  # a usage error is told before a missing knowledge base
    check_choice(llm)
    streaming = not as_json and not no_stream
    printed: list[str] = []
    prompts: list[RenderedPrompt] = []

    def show(piece: str) -> None:
        printed.append(piece)
        click.echo(piece, nl=False)
        sys.stdout.flush()

    with open_kb(kb_dir, existing=True, llm=llm, llm_model=llm_model, llm_base_url=llm_base_url) as kb:
        model = kb.load_llm()[0] if show_prompt else None  # what kb.ask would take: loaded once, cached
        watched = None
        if model is not None:
            def sent(prompt: RenderedPrompt) -> None:
                prompts.append(prompt)
                if not as_json:
                    print_prompt(prompt, model.name)

            watched = Watched(model, sent)
        result = kb.ask(question, k=k, filters=filters, llm=watched, on_token=show if streaming else None,
                        stream=streaming, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens)
        if as_json:
            out = result.to_json()
            if show_prompt:
                out["prompt"] = prompts[-1].to_json() if prompts else None  # the one the answer came from
            emit(out)
            return
        if show_prompt and not prompts:
            why = "kb answered without the model" if model is not None else "no model answers here"
            click.echo(click.style(f"kb: no prompt was sent ({why})", dim=True), err=True)
        print_answer(result, streamed="".join(printed), hint=hint_due(kb, result, quiet))


def print_prompt(prompt: RenderedPrompt, model: str) -> None:
    """`kb ask --show-prompt`: what `model` receives, between rules, on stdout before its answer."""
    if prompt.text is not None:
        how = prompt.template or "plain text"
        body = prompt.text
    else:
        how = "the messages kb sends; the server applies its chat template"
        body = json.dumps(prompt.messages, ensure_ascii=False, indent=2)
    click.echo(click.style(f"── prompt to {model} ({how}) ──", dim=True))
    click.echo(body, nl=not body.endswith("\n"))  # the text as it is: a trailing newline is part of it
    click.echo(click.style("── answer ──", dim=True))
    sys.stdout.flush()


def hint_due(kb: KnowledgeBase, result: Answer, quiet: bool) -> bool:
    """Whether to say how to plug in a model after `result`: after an answer quoted because no model is
    configured (not one standing in for a model that failed: that says why), never with -q or when no
    model is wanted (--llm none, KB_LLM=none, `llm = "none"`), and once per knowledge base, remembered
    by a file in its folder. `kb ask --help` says it always."""
    if quiet or result.mode != "extractive" or result.llm_error or kb.settings.llm.strip().lower() in NO_LLM:
        return False
    marker = kb.path / HINT_SHOWN
    if marker.exists():
        return False
    try:
        marker.write_text("kb ask showed how to plug in a model for a written answer\n")
    except OSError:  # a folder this user cannot write: said each time rather than never
        pass
    return True


def print_answer(result: Answer, streamed: str, *, hint: bool = False) -> None:
    """An answer's end on the terminal: the answer itself unless it `streamed`, then its sources (or the
    nearest passages), unsupported sentences, and what answered, messages on stderr. `hint`: say how to
    plug in a model (`hint_due`)."""
    if streamed:
        click.echo()
    else:
        click.echo(_marked(result))
    if result.llm_error:
        said = result.note or f"{result.llm_error}; the answer quotes the passages instead"
        if result.model_answer and streamed:
            said = f"the model's answer above is not the answer: {said}"
        click.echo(click.style(f"kb: {said}", fg="yellow"), err=True)
    if result.model_answer and streamed:
        _unsupported("The model's answer is not supported by the sources:", result.model_answer.checks)
    if result.removed_citations:
        click.echo(click.style("kb: removed citations of sources that were not given: ", fg="yellow")
                   + ", ".join(f"[{n}]" for n in result.removed_citations), err=True)
    if not result.found:
        if result.mode == "not_found" and result.note and not result.sources and not result.llm_error:
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
    if streamed:
        _unsupported("Not supported by the sources:", result.unsupported)
    if hint:
        click.echo(click.style(f"\n{PLUG_IN_HINT}", dim=True), err=True)
    elif result.mode == "extractive" and result.note and not result.llm_error:
        click.echo(click.style(f"\nkb: {result.note}", dim=True), err=True)
    elif result.llm:
        said = timing_summary(result.timing)
        click.echo(click.style(f"answered by {result.llm}" + (f" ({said})" if said else ""), dim=True), err=True)
    if result.llm_error and result.timing.get("first_token_s") is not None:  # it wrote an answer not shown
        click.echo(click.style(f"the model's answer took: {timing_summary(result.timing)}", dim=True), err=True)


def timing_summary(timing: dict[str, float | int | None]) -> str:
    """How long the model took, apart: starting it, reading the prompt, writing the answer
    ("model start 2.1 s; prompt 1,468 tokens in 3.2 s; 40 tokens at 25.3 tokens/s")."""
    parts = []
    start = timing.get("model_start_s")
    if start:
        parts.append(f"model start {start:.1f} s")
    first, prompt = timing.get("first_token_s"), timing.get("prompt_tokens")
    if first is not None:
        parts.append(f"prompt {prompt:,} tokens in {first:.1f} s" if prompt else f"first token in {first:.1f} s")
    out, rate = timing.get("output_tokens"), timing.get("tokens_per_s")
    if out:
        parts.append(f"{out:,} tokens at {rate:.1f} tokens/s" if rate else f"{out:,} tokens")
    return "; ".join(parts)


def _unsupported(heading: str, checks: list[SentenceCheck]) -> None:
    """The sentences that failed the citation check, with why."""
    failed = [c for c in checks if not c.supported]
    if failed:
        click.echo(click.style(f"\n{heading}", fg="yellow"))
        for check in failed:
            click.echo(f"  • “{shorten(check.sentence, 160)}”: {'; '.join(check.reasons)}")


def _marked(result: Answer) -> str:
    """The answer with each unsupported sentence followed by a visible mark."""
    text = result.answer
    for c in result.unsupported:
        if c.sentence in text:
            reason = "; ".join(c.reasons)
            text = text.replace(c.sentence, c.sentence + click.style(f" ⚠ unsupported: {reason}", fg="yellow"), 1)
    return text
