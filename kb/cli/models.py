"""`kb models`: the models `kb ask` can use here, and the one it takes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kb.cli.common import CONTEXT, emit, json_option, kb_option, llm_options, print_table
from kb.config import Settings, resolve_kb_dir
from kb.errors import size
from kb.llm import check_choice
from kb.types import plural, shown

if TYPE_CHECKING:
    from rich.table import Table

    from kb.llm.inventory import Inventory

MODELS_HELP = """The models `kb ask` can use here, and the one it takes (marked *).

\b
Listed: the GGUF files in the models folder (the `models_dir` setting), the Gemma 3 270M of the llm
extra, the models of an Ollama server on this machine ($OLLAMA_HOST) and of the OpenAI-compatible
server configured (--base-url, `llm_base_url`); a server that does not answer is named, with why.

\b
Which one --llm auto takes, in order: the configured --model or --base-url (its backend inferred:
a .gguf file is llama-cpp); else the first chat model of the Ollama server; else none: the answer
quotes the passages. The models folder's files and the packaged Gemma are never taken unasked:
--llm llama-cpp runs the Gemma, --model NAME.gguf a file of the folder (by its name as listed),
--model hf:ORG/REPO/FILE.gguf downloads one into it.
"""


@click.command("models", context_settings=CONTEXT, help=MODELS_HELP)
@kb_option
@llm_options()
@json_option
def models_command(kb_dir: str | None, llm: str | None, llm_model: str | None, llm_base_url: str | None,
                   as_json: bool) -> None:
    from kb.llm.inventory import inventory  # lazy: kb --help does not need it

    check_choice(llm)
    settings = Settings.load(resolve_kb_dir(kb_dir), {"llm": llm, "llm_model": llm_model,
                                                       "llm_base_url": llm_base_url})
    found = inventory(settings)
    if as_json:
        emit(found.to_json())
        return
    if found.models:
        print_table(_table(found))
    else:
        click.echo(f"no models: none in {shown(found.models_dir)}, no packaged Gemma, no server listing any", err=True)
    click.echo(f"Models folder: {shown(found.models_dir)}")
    for server in found.servers:
        name = "Ollama" if server.kind == "ollama" else "OpenAI-compatible server"
        state = server.error or plural(server.models, "model")
        click.echo(f"{name} at {server.base_url}: {state}")
    chosen = found.chosen
    if chosen is None:
        said = "no model: the answer quotes the passages " + ("(no model configured, no Ollama model)"
                                                              if found.llm == "auto" else f"(--llm {found.llm})")
    else:
        model = chosen.model or ("the packaged Gemma" if chosen.backend == "llama-cpp" else "the server's first model")
        said = f"{model} ({chosen.name}{', ' + chosen.base_url if chosen.base_url else ''}): {chosen.reason}"
    click.echo(f"* kb ask takes {said}")


def _table(found: Inventory) -> Table:
    from rich.table import Table  # lazy: only commands that draw a table load rich

    from kb.llm.inventory import PACKAGE

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("", no_wrap=True)  # * the one kb ask takes
    table.add_column("Model", overflow="fold")  # what --model takes
    table.add_column("Size", justify="right", no_wrap=True)
    table.add_column("--llm", no_wrap=True)
    table.add_column("Where", overflow="fold")
    folder = Path(found.models_dir)
    for m in found.models:
        if m.kind == "packaged":
            where = f"the {PACKAGE} package"
        elif m.path:
            where = "models folder" if Path(m.path).parent.is_relative_to(folder) else shown(m.path)
        else:
            where = m.base_url or ""
        if m.note:
            where = f"{where} ({m.note})" if where else m.note
        table.add_row("*" if m.chosen else "", m.name, size(m.bytes) if m.bytes is not None else "", m.llm, where)
    return table
