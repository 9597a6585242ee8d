"""`kb` commands. Data goes to stdout, progress and messages to stderr; `--json` everywhere."""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kb.cli.common import (
    CONTEXT,
    GLOBAL_META,
    document_filter_options,
    emit,
    filter_options,
    global_options,
    json_option,
    kb_option,
    log_level,
    model_option,
    ocr_options,
    open_kb,
    pop_filters,
    print_report,
    print_table,
    quiet_option,
    rule_options,
    show_logs,
    store_options,
    workers_option,
)
from kb.cli.snippets import snippet_line
from kb.config import MODES
from kb.errors import ConfigError, KBError
from kb.filters import Filters
from kb.ingest.base import supported_types
from kb.types import DocumentInfo, IngestReport, Stale, plural, search_json, shown

if TYPE_CHECKING:
    from rich.table import Table

TYPES = "{types}"  # in the help text: the file types kb reads, from the parser registry
LANGUAGES_SHOWN = 5  # `kb status` names the main languages; --json has them all
JSON_META = "kb.json"  # click context key: --json was given (a failure is then a JSON object too)


class KBGroup(click.Group):
    """Turns any KBError into one line on stderr and an exit status; tracebacks need KB_DEBUG=1. With
    --json, a failure is also one JSON object on stdout (`{"error", "exit_status"}`), usage errors included."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.help = (self.help or "").replace(TYPES, supported_types())  # a plugin's parser is named too
        super().format_help_text(ctx, formatter)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        # Read before the subcommand parses its options: a usage error may come before --json is reached.
        given = rest[: rest.index("--")] if "--" in rest else rest
        takes_json = command is not None and any(p.name == "as_json" for p in command.params)
        ctx.meta[JSON_META] = takes_json and bool(ctx.meta.get(GLOBAL_META, {}).get("as_json") or "--json" in given)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        show_logs(log_level(ctx))
        try:
            return super().invoke(ctx)
        except KBError as e:
            if os.environ.get("KB_DEBUG"):
                raise
            status = 2 if isinstance(e, ConfigError) else 1
            _json_error(ctx, str(e), status)
            click.echo(f"kb: error: {e}", err=True)
            ctx.exit(status)
        except click.ClickException as e:  # a usage error: click prints it and the usage line
            _json_error(ctx, e.format_message(), e.exit_code)
            raise
        except KeyboardInterrupt:
            _json_error(ctx, "interrupted", 130)
            click.echo("kb: interrupted; what was committed is kept, run the command again to finish", err=True)
            ctx.exit(130)


def _json_error(ctx: click.Context, message: str, status: int) -> None:
    """A failure as the one JSON object of a --json command (`docs/json.md`)."""
    if ctx.meta.get(JSON_META):
        emit({"error": message, "exit_status": status})


@click.group(cls=KBGroup, context_settings=CONTEXT)
@click.version_option(package_name="kb", prog_name="kb")
@global_options
def main() -> None:
    """kb: a local knowledge base over your documents ({types}).

    \b
      kb ingest ./docs          index a folder (again: only what changed)
      kb search "retry policy"  best passages, with file, page and section
      kb ask "how long are backups kept?"   an answer citing its sources [n]
      kb status                 what is indexed
    """


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@kb_option
@store_options
@model_option
@click.option("--device", envvar="KB_DEVICE", show_envvar=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=int, envvar="KB_BATCH_SIZE", show_envvar=True, help="Embedding batch size (0: by device).")
@click.option("--chunk-tokens", type=int, envvar="KB_CHUNK_TOKENS", show_envvar=True, help="Max tokens embedded per chunk.")
@workers_option
@ocr_options
@rule_options
@click.option("--reparse", is_flag=True, help="Also re-read unchanged files that a newer reader reads better "
              "(`kb status` counts them); without PATHS, every such file in the knowledge base.")
@quiet_option
@json_option
def ingest(paths: tuple[str, ...], kb_dir: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
           reparse: bool, quiet: bool, as_json: bool, **settings: Any) -> None:
    """Index files and folders; unchanged files are skipped, vanished ones dropped.

    Files left out by --include/--exclude or a .kbignore are dropped too if they were indexed.
    Exit status 1 when some files could not be ingested (each is listed with its reason).
    """
    if not paths and not reparse:
        raise click.UsageError("Missing argument 'PATHS...' (or --reparse: re-read the stale files).")
    from kb.cli.progress import ingest_with_progress  # lazy: rich's progress bar costs 0.1 s at start-up

    stale_only = reparse and not paths  # the stale files only: none is no error
    with open_kb(kb_dir, existing=stale_only, **settings) as kb:  # re-reading needs a knowledge base there
        new = not kb.exists
        report = ingest_with_progress(kb, paths, show=not quiet, include=include, exclude=exclude, reparse=reparse)
        made = new and kb.exists
    nothing = not stale_only and not (report.added or report.updated or report.unchanged or report.moved
                                      or report.removed or report.failed or report.reparsed)
    said = _nothing_read(paths, report, include, exclude) if nothing else ""
    if as_json:
        emit({**report.to_json(), "error": said, "exit_status": 1} if said else report.to_json())
    elif stale_only and not (report.reparsed or report.failed or report.skipped):
        click.echo("nothing is stale: every file was read by the reader kb has today", err=True)
    elif not said:
        if made:
            click.echo(f"New knowledge base in {kb.path}")
        print_report(report)
    if report.language_warning:  # last, where it is seen: once per ingest that added text
        click.echo(f"kb: warning: {report.language_warning}", err=True)
    if said:
        click.echo(f"kb: error: {said}", err=True)
    sys.exit(1 if report.failed or nothing else 0)


def _nothing_read(paths: tuple[str, ...], report: IngestReport, include: tuple[str, ...],
                  exclude: tuple[str, ...]) -> str:
    """Why an ingest found nothing to read, in one line: what it left aside, and what kb reads."""
    by_type = Counter(Path(item.source).suffix.lower() or "(no extension)" for item in report.skipped)
    types = ", ".join(f"{n} {ext}" for ext, n in sorted(by_type.items(), key=lambda x: (-x[1], x[0])))
    rules = [*(["--include"] if include else []), *(["--exclude"] if exclude else []), "a .kbignore"]
    aside = [
        f"{plural(len(report.skipped), 'file')} of types kb does not read ({types})" if report.skipped else "",
        f"{plural(report.excluded, 'file or folder', 'files or folders')} left out by {' or '.join(rules)}"
        if report.excluded else "",
        f"{plural(report.ignored, 'hidden or temporary file')} ignored" if report.ignored else "",
    ]
    what = ", ".join(a for a in aside if a) or "no files there"
    return f"nothing to ingest in {', '.join(paths)}: {what}; kb reads {supported_types()}"


@main.command(context_settings=CONTEXT)
@click.argument("query")
@kb_option
@store_options
@click.option("-k", "--k", "k", type=click.IntRange(1, 1000), default=5, help="Number of passages.")
@click.option("--mode", type=click.Choice(MODES, case_sensitive=False), envvar="KB_MODE",
              show_envvar=True, help="hybrid: meaning and exact words together; dense: meaning; keyword: BM25 words "
              "[default: the `mode` setting, hybrid].")
@click.option("--rerank", metavar="MODEL", envvar="KB_RERANK", show_envvar=True,
              help="Cross-encoder (sentence-transformers) that reorders the best candidates; off by default.")
@filter_options
@json_option
def search(query: str, kb_dir: str | None, k: int, mode: str | None, rerank: str | None, as_json: bool,
           **kwargs: Any) -> None:
    """Find the passages that best match QUERY."""
    filters = pop_filters(kwargs)
    if not query.strip():  # a usage error is told before a missing knowledge base
        raise ConfigError("the query is empty")
    with open_kb(kb_dir, existing=True) as kb:
        hits = kb.search(query, k=k, filters=filters, mode=mode, rerank=rerank)
    if as_json:
        emit(search_json(query, hits))
        return
    if not hits:
        click.echo(f"no passage passes the filters ({filters.describe()})" if not filters.is_empty() else "no matches",
                   err=True)
    for h in hits:
        click.echo(f"{h.rank:>2}. {h.score:.3f}  " + click.style(h.citation, bold=True))
        click.echo(f"    {snippet_line(h)}")
        if h.also:
            click.echo(f"    (same passage in {', '.join(shown(a) for a in h.also)})")


@main.command(context_settings=CONTEXT)
@kb_option
@store_options
@click.option("--check", is_flag=True, help="Also verify catalog and vectors agree, and repair (as `kb doctor`).")
@json_option
def status(kb_dir: str | None, check: bool, as_json: bool) -> None:
    """What the knowledge base holds: documents, chunks, pages, model, store, size, failures; the embedding
    backend used here and the one that made its vectors."""
    if check:
        ctx = click.get_current_context()
        ctx.invoke(doctor, kb_dir=kb_dir, no_repair=False, as_json=as_json)
        return
    with open_kb(kb_dir, existing=True) as kb:
        st = kb.status()
    if as_json:
        emit(st.to_json())
        return
    click.echo(f"Knowledge base  {st.path}")
    by_type = ", ".join(f"{n} {t}" for t, n in st.types.items())
    click.echo(f"Documents {st.documents}{f' ({by_type})' if by_type else ''} · chunks {st.chunks} · pages {st.pages}"
               + (f" · from {st.folder}" if st.folder else ""))
    dims = f" ({st.dimensions} dimensions)" if st.dimensions else ""
    click.echo(f"Model {st.model}{dims} · store {st.store} · {st.bytes / 1e6:.1f} MB on disk")
    made = f" · the index's vectors: {st.vectors}" if st.vectors else ""
    click.echo(f"Embedding with {st.backend} here{made}")
    if st.prompts:
        click.echo(f"Prompts: query {st.prompts['query']!r} · passage {st.prompts['passage']!r}")
    if st.languages:
        shown_languages = list(st.languages.items())[:LANGUAGES_SHOWN]
        more = f" · {len(st.languages) - LANGUAGES_SHOWN} more" if len(st.languages) > LANGUAGES_SHOWN else ""
        click.echo("Languages " + " · ".join(f"{lang} {share:.0%}" for lang, share in shown_languages) + more)
    if st.language_warning:
        click.echo(f"Warning: {st.language_warning}")
    print_stale(st.stale)
    for f in st.failed:
        click.echo(f"  failed  {shown(f.source)}: {f.reason}")


def print_stale(stale: Stale) -> None:
    """What a newer reader or embedding format does better, and the command that brings it (kb status, kb doctor)."""
    if stale.documents:
        by_type = ", ".join(f"{n} {t}" for t, n in stale.types.items())
        click.echo(f"Stale: {plural(stale.documents, 'document')} ({by_type}) a newer reader "
                   "reads better: `kb ingest --reparse` re-reads them")
    if stale.vectors:
        click.echo(f"Stale: the vectors were {stale.vectors}: `kb reindex` re-embeds them")


@main.command(context_settings=CONTEXT)
@kb_option
@store_options
@document_filter_options
@json_option
def documents(kb_dir: str | None, as_json: bool, **kwargs: Any) -> None:
    """Each document: type, pages, chunks, when it was ingested, its own date (read from its first
    page); then the files that failed (those matching --path and --type too)."""
    filters = pop_filters(kwargs)
    with open_kb(kb_dir, existing=True) as kb:
        docs, failed = kb.documents(filters), kb.failures(Filters(path=filters.path, file_type=filters.file_type))
    if as_json:
        emit({"documents": [d.to_json() for d in docs], "failed": [asdict(f) for f in failed]})
        return
    if not docs and not failed:
        click.echo("no documents" + (" match" if not filters.is_empty() else " yet: kb ingest FOLDER adds some"), err=True)
    if docs:
        print_table(_documents_table(docs))
        pages = sum(d.pages or 0 for d in docs if d.unit == "page")
        click.echo(f"{plural(len(docs), 'document')}, " + (f"{plural(pages, 'page')}, " if pages else "")
                   + plural(sum(d.chunks for d in docs), "chunk"), err=True)
    for f in failed:
        click.echo(f"failed    {shown(f.source)}: {f.reason}")


def _documents_table(docs: list[DocumentInfo]) -> Table:
    """`kb documents`: a row per document under labelled columns, numbers right-aligned."""
    from rich.table import Table  # lazy: only commands that draw a table load rich

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Type", no_wrap=True)
    table.add_column("Length", justify="right", no_wrap=True)  # pages, slides, rows or messages, as the file counts
    table.add_column("Chunks", justify="right", no_wrap=True)
    table.add_column("Ingested", no_wrap=True)
    table.add_column("Dated", no_wrap=True)  # the document's own date, as its metadata or first page states it
    table.add_column("Source", overflow="fold")  # only the path folds, whole, where the terminal is narrow
    for d in docs:
        table.add_row(d.file_type, "" if d.pages is None else plural(d.pages, d.unit), f"{d.chunks:,}",
                      datetime.fromtimestamp(d.ingested_at).strftime("%Y-%m-%d %H:%M"),
                      (d.date or "")[:10],  # a mail's date without its time
                      shown(d.source))
    return table


@main.command(context_settings=CONTEXT)
@kb_option
@store_options
@click.option("--no-repair", is_flag=True, help="Only report; change nothing.")
@json_option
def doctor(kb_dir: str | None, no_repair: bool, as_json: bool) -> None:
    """Check that the catalog is sound and every chunk has exactly one vector; repair what is off.

    After a crash or kill -9 mid-ingest, vectors of committed documents may be missing or stale:
    they are re-embedded from the catalog's stored text (no re-parsing). Exit 1 if problems remain.
    Also says what an upgrade of kb reads or embeds better (`kb ingest --reparse`, `kb reindex`).
    """
    with open_kb(kb_dir, existing=True) as kb:
        report = kb.check(repair=not no_repair)
    if as_json:
        emit(report.to_json())
    else:
        click.echo(f"catalog {report.integrity} · {report.documents} documents · {report.chunks} chunks · "
                   f"{report.vectors} vectors")
        if report.orphan_vectors or report.missing_vectors:
            verb = "repaired" if report.repaired else "found"
            click.echo(f"{verb}: {report.missing_vectors} chunk(s) without a vector, "
                       f"{report.orphan_vectors} vector(s) without a chunk")
        print_stale(report.stale)
        click.echo("ok" if report.ok else "problems remain")
    sys.exit(0 if report.ok else 1)


@main.command(context_settings=CONTEXT)
@kb_option
@store_options
@click.option("--model", help="Embedding model for the new vectors [default: the model setting].")
@json_option
def reindex(kb_dir: str | None, model: str | None, as_json: bool) -> None:
    """Re-embed every chunk from the catalog (no re-parsing), e.g. to switch embedding model.

    The old vectors stay in use until the new ones are complete.
    """
    with open_kb(kb_dir, existing=True) as kb:
        n = kb.reindex(model)
        model_id = kb.status().model
    if as_json:
        emit({"chunks": n, "model": model_id})
    else:
        click.echo(f"re-embedded {plural(n, 'chunk')} with {model_id}")


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@kb_option
@store_options
@json_option
def remove(paths: tuple[str, ...], kb_dir: str | None, as_json: bool) -> None:
    """Forget files, or every file under folders (the files themselves stay on disk)."""
    with open_kb(kb_dir, existing=True) as kb:
        removed = kb.remove(paths)
    if as_json:
        emit({"removed": removed})
        return
    for source in removed:
        click.echo(f"removed {shown(source)}")
    if not removed:
        click.echo("nothing indexed under " + ", ".join(paths), err=True)
        sys.exit(1)


from kb.cli.ask import ask  # noqa: E402  (the other commands' modules import this group's options)

main.add_command(ask)
from kb.cli.eval import eval_command  # noqa: E402

main.add_command(eval_command)
from kb.cli.serve import serve  # noqa: E402

main.add_command(serve)
from kb.cli.watch import watch  # noqa: E402

main.add_command(watch)
from kb.cli.mcp import mcp_command  # noqa: E402

main.add_command(mcp_command)
from kb.cli.chat import chat  # noqa: E402

main.add_command(chat)
from kb.cli.models import models_command  # noqa: E402

main.add_command(models_command)


if __name__ == "__main__":
    main()
