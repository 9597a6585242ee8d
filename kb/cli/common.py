"""What every command shares: the click context, common options (knowledge base, store, filters,
ingest rules, embedding model, LLM, --json), opening the knowledge base, output, and where the library's log messages go."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from kb.api import KnowledgeBase
from kb.config import OCR_MODES, default_kb_dir
from kb.errors import KBError
from kb.filters import Filters, parse_where
from kb.index import STORES
from kb.ingest.base import file_types
from kb.types import IngestReport, plural, shown

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}

UNBOUNDED = 10_000  # columns of a table printed where no terminal limits its width
GLOBAL_META = "kb.global"  # click context key: options given before the subcommand (`kb --kb DIR status`)


def inherited(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An option given after the subcommand wins; else the same option given before it (as in git);
    else the environment and the default."""
    given = ctx.meta.get(GLOBAL_META, {})
    if param.name in given and ctx.get_parameter_source(param.name or "") is not ParameterSource.COMMANDLINE:
        return given[param.name]
    return value


def _kb_help() -> str:
    return f"Knowledge base folder [default: nearest .kb/ here or above, else {default_kb_dir()}]."


kb_option = click.option("--kb", "kb_dir", envvar="KB_DIR", show_envvar=True, metavar="DIR", callback=inherited,
                         help=_kb_help())
json_option = click.option("--json", "as_json", is_flag=True, callback=inherited, help="Print one JSON object on stdout.")
quiet_option = click.option("-q", "--quiet", is_flag=True, callback=inherited, help="No progress bar.")
# kb ingest and kb watch
model_option = click.option("--model", envvar="KB_MODEL", show_envvar=True,
                            help="Embedding model name or folder (sentence-transformers).")
workers_option = click.option("--workers", type=int, envvar="KB_WORKERS", show_envvar=True,
                              help="Parser processes (0: by core count).")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def stacked(*decorators: Decorator) -> Decorator:
    """Several option decorators as one; the first listed is the first in --help, as when stacked."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


# --ocr, --ocr-lang: reading scans and photos (kb ingest, kb watch).
ocr_options = stacked(
    click.option("--ocr", type=click.Choice(OCR_MODES, case_sensitive=False), envvar="KB_OCR", show_envvar=True,
                 help="OCR (tesseract) for images and for PDF pages without usable text (auto), every PDF page "
                      "(always), or none (never) [default: the `ocr` setting, auto]."),
    click.option("--ocr-lang", envvar="KB_OCR_LANG", show_envvar=True, metavar="LANGS",
                 help="Tesseract language(s) of the scans, e.g. 'eng+deu' (Debian: tesseract-ocr-deu) "
                      "[default: eng]."),
)

# --include, --exclude: which files of the folders given are ingested (kb ingest, kb watch).
rule_options = stacked(
    click.option("--include", multiple=True, metavar="GLOB",
                 help="Only files matching (gitignore syntax, relative to each folder given), e.g. '*.pdf'; "
                      "repeatable."),
    click.option("--exclude", multiple=True, metavar="GLOB",
                 help="Leave out files or folders matching, e.g. 'drafts/'; repeatable. A .kbignore file in a "
                      "folder does the same for it and below."),
)


def llm_options(purpose: str = "") -> Decorator:
    """--llm, --model, --base-url: what answers (kb ask, kb chat, kb serve, kb mcp); the command receives
    `llm`, `llm_model`, `llm_base_url`. `purpose` opens --llm's help ("What the ask tool answers with: ")."""
    return stacked(
        click.option("--llm", envvar="KB_LLM", show_envvar=True, metavar="NAME",
                     help=f"{purpose}auto | llama-cpp | openai | ollama | transformers | none (quote the passages) "
                          "[default: auto]."),
        click.option("--model", "llm_model", envvar="KB_LLM_MODEL", show_envvar=True,
                     help="GGUF file (llama-cpp: a path, a file of the models folder, or hf:ORG/REPO/FILE.gguf, "
                          "downloaded there once), model name on the server (openai), or Hugging Face id/folder "
                          "(transformers). `kb models` lists them."),
        click.option("--base-url", "llm_base_url", envvar="KB_LLM_BASE_URL", show_envvar=True, metavar="URL",
                     help="OpenAI-compatible server [default: Ollama, http://127.0.0.1:11434/v1]."),
    )


def open_kb(kb_dir: str | None, *, existing: bool = False, **overrides: Any) -> KnowledgeBase:
    """The knowledge base a command works on, with the store options given (--store, --store-uri,
    --collection). `existing`: one that must be there already (a command that reads: status, search,
    ask...), so that a mistyped --kb is named rather than shown as an empty knowledge base."""
    ctx = click.get_current_context(silent=True)
    store = ctx.meta.get(STORE_META, {}) if ctx else {}
    kb = KnowledgeBase.open(kb_dir, **{**store, **overrides})
    # A team store's knowledge base lives on its server: a new member's local folder is made on first use.
    if existing and not kb.path.exists() and not STORES.get(kb.settings.store).shared:
        raise KBError(f"no knowledge base at {kb.path} (no such folder; `kb ingest FOLDER` makes one)")
    return kb


def emit(obj: object) -> None:
    """One JSON object on stdout (--json)."""
    click.echo(json.dumps(obj, ensure_ascii=False))


class _Terminal(logging.Handler):
    """The library's warnings, one line each on stderr (through click, so tests' runners see them;
    above the progress bar while one is shown)."""

    above: Console | None = None  # the rich Console of a live progress bar

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            line = message if message.startswith(("kb:", "kb ")) else f"kb: {message}"
            if _Terminal.above is not None:
                _Terminal.above.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                click.echo(line, err=True)
        except Exception:  # a log line must never break a command
            self.handleError(record)


@contextmanager
def messages_above(console: Console) -> Iterator[None]:
    """While a rich progress bar is live on `console`, log lines print above it instead of through it."""
    _Terminal.above = console
    try:
        yield
    finally:
        _Terminal.above = None


def print_table(table: Table) -> None:
    """A rich table on stdout: as wide as the terminal (long cells folded), or one line per row where
    stdout is not a terminal (a pipe to grep), unless COLUMNS sets a width."""
    from rich.console import Console  # lazy: only commands that draw a table load rich

    terminal = sys.stdout.isatty()
    console = Console(file=sys.stdout, width=None if terminal or os.environ.get("COLUMNS") else UNBOUNDED,
                      highlight=False)
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        click.echo(line.rstrip())


def print_report(r: IngestReport) -> None:
    """An ingest's summary on stdout: files and rates, counts by outcome, then each file removed (up to
    20), skipped or failed (kb ingest, kb watch's first pass)."""
    # Pages only where there are some: a folder of slides, sheets and mails has none to count.
    rates = [f"{r.pages / r.seconds:.1f} pages/s"] if r.pages else []
    rate = "; " + ", ".join([*rates, f"{r.chunks / r.seconds:.1f} chunks/s"]) if r.seconds and r.chunks else ""
    by_type = ", ".join(f"{n} {t}" for t, n in sorted(r.types.items(), key=lambda x: (-x[1], x[0])))
    pages = f"{plural(r.pages, 'page')}, " if r.pages else ""
    read = len(r.added) + len(r.updated) + len(r.reparsed)
    click.echo(f"Indexed {plural(read, 'file')} in {r.seconds:.1f} s ({pages}"
               f"{plural(r.chunks, 'chunk')}{rate})" + (f": {by_type}" if by_type else ""))
    counts = [("added", len(r.added)), ("updated", len(r.updated)), ("unchanged", len(r.unchanged)),
              ("moved", len(r.moved)), ("removed", len(r.removed)), ("skipped", len(r.skipped)), ("failed", len(r.failed))]
    if r.reparsed:  # only after --reparse: unchanged files a newer reader read again
        counts.insert(2, ("re-read", len(r.reparsed)))
    line = " · ".join(f"{name} {n}" for name, n in counts)
    click.echo(f"  {line}" + (f" · ignored {r.ignored} hidden/temp" if r.ignored else "")
               + (f" · excluded {r.excluded}" if r.excluded else ""))
    if 0 < len(r.removed) <= 20:  # what left the knowledge base is named (a count alone hides a surprise)
        for source in r.removed:
            click.echo(f"  removed  {shown(source)}")
    for label, items in (("skipped", r.skipped), ("failed", r.failed)):
        if len(items) > 20:  # a 10,000-file tree must not bury the summary: group by reason

            for reason, n in Counter(i.reason for i in items).most_common():
                click.echo(f"  {label:8} {plural(n, 'file')}: {reason}")
            continue
        for item in items:
            click.echo(f"  {label:8} {shown(item.source)}: {item.reason}")


def log_level(ctx: click.Context) -> int:
    """`-v`: informational messages too; `-q`: errors only; else warnings and errors."""
    given = ctx.meta.get(GLOBAL_META, {})
    return logging.INFO if given.get("verbose") else logging.ERROR if given.get("quiet") else logging.WARNING


def show_logs(level: int = logging.WARNING) -> None:
    """Send the `kb` loggers' messages at `level` and above to the terminal (once per process)."""
    logger = logging.getLogger("kb")
    logger.setLevel(level)
    if not any(isinstance(h, _Terminal) for h in logger.handlers):
        logger.addHandler(_Terminal())


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--path, --type, --pages, --section; the command receives them as one `filters` argument."""
    return stacked(
        document_filter_options,
        click.option("--pages", "f_pages", metavar="N|A-B", help="Only passages on these pages."),
        click.option("--section", "f_section", metavar="TEXT", help="Only passages whose section path contains TEXT."),
    )(f)


def document_filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--path, --type (as `f_path`, `f_type`): the filters that apply to whole documents (kb documents)."""
    return stacked(
        click.option("--path", "f_path", metavar="GLOB", help="Only sources matching this glob, e.g. 'reports/*2023*'."),
        click.option("--type", "f_type", type=click.Choice(file_types()), help="Only this file type."),
        click.option("--where", "f_where", multiple=True, metavar="FIELD=TEXT",
                     help="Only documents whose metadata FIELD holds TEXT, e.g. from=ada or subject=budget "
                          "(a mail's from, to, cc, date, subject; repeatable: all must hold)."),
    )(f)


def pop_filters(kwargs: dict[str, Any]) -> Filters:
    return Filters(
        path=kwargs.pop("f_path", None),
        file_type=kwargs.pop("f_type", None),
        pages=Filters.parse_pages(kwargs.pop("f_pages", None)),
        section=kwargs.pop("f_section", None),
        where=parse_where(kwargs.pop("f_where", None)),
    )


STORE_META = "kb.store"  # click context key holding the store options given


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--store, --store-uri, --collection: where the vectors live (on Milvus, the whole team knowledge
    base). They reach `Settings` through the click context, so a command needs no parameters for them."""

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        value = inherited(ctx, param, value)
        if value is not None:
            ctx.meta.setdefault(STORE_META, {})[param.name] = value
        return value

    return stacked(
        click.option("--store", type=click.Choice(STORES.names(), case_sensitive=False), envvar="KB_STORE",
                     show_envvar=True, expose_value=False, callback=remember,
                     help="Vector store: faiss (a file in the KB folder) or milvus (a team knowledge base) "
                     "[default: faiss]."),
        click.option("--store-uri", metavar="URI", envvar="KB_STORE_URI", show_envvar=True, expose_value=False,
                     callback=remember, help="Milvus: http://host:19530 (a server), or a Milvus Lite path ending in "
                     ".db (one process at a time) [default: milvus.db in the KB folder]."),
        click.option("--collection", metavar="NAME", envvar="KB_COLLECTION", show_envvar=True, expose_value=False,
                     callback=remember, help="Milvus: the knowledge base's name on the server [default: kb]."),
    )(f)


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--kb, --store, --store-uri, --collection, --json, -v, -q before the subcommand, as in git:
    `kb --kb DIR status`. Each subcommand that has the option takes it; one given after the
    subcommand wins."""

    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if ctx.get_parameter_source(param.name or "") is not ParameterSource.COMMANDLINE:
            return
        ctx.meta.setdefault(GLOBAL_META, {})[param.name] = value
        if param.name in ("store", "store_uri", "collection"):
            ctx.meta.setdefault(STORE_META, {})[param.name] = value

    return stacked(
        click.option("--kb", "kb_dir", metavar="DIR", expose_value=False, callback=keep, help=_kb_help()),
        click.option("--store", type=click.Choice(STORES.names(), case_sensitive=False), expose_value=False,
                     callback=keep, help="Vector store (as each command's --store)."),
        click.option("--store-uri", metavar="URI", expose_value=False, callback=keep, help="Milvus URI."),
        click.option("--collection", metavar="NAME", expose_value=False, callback=keep, help="Milvus collection."),
        click.option("--json", "as_json", is_flag=True, expose_value=False, callback=keep,
                     help="Print one JSON object on stdout."),
        click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=keep, help="Informational messages too."),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=keep,
                     help="No progress bar; errors only."),
    )(f)
