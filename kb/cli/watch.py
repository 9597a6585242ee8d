"""`kb watch`: keep the knowledge base in step with folders as files are added, changed, renamed and deleted."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import click

from kb.cli.common import (
    CONTEXT,
    emit,
    json_option,
    kb_option,
    model_option,
    ocr_options,
    open_kb,
    print_report,
    quiet_option,
    rule_options,
    store_options,
    workers_option,
)
from kb.types import plural
from kb.watch import DEBOUNCE_MS, Batch, Pass, Watcher, writing_to


@click.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@kb_option
@store_options
@model_option
@workers_option
@ocr_options
@rule_options
@click.option("--debounce", "debounce_ms", type=click.IntRange(10, 60_000), default=DEBOUNCE_MS, metavar="MS",
              help="Quiet time that ends a burst of changes (a save, a copy, a checkout): the burst is then "
                   "ingested in one pass.")
@quiet_option
@json_option
def watch(paths: tuple[str, ...], kb_dir: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
          debounce_ms: int, quiet: bool, as_json: bool, **settings: Any) -> None:
    """Keep the knowledge base in step with folders: new and changed files are ingested, renamed ones
    moved (nothing re-embedded), deleted ones removed, as it happens.

    \b
    A first pass does what `kb ingest` does and prints its summary (counts,
    then any failures); then each change prints a line
    (added, updated, moved, removed, or failed with the reason), or with
    --json each batch prints one JSON object. Hidden and temporary files are
    ignored; .kbignore files and --include/--exclude count as for kb ingest.
    Searches work meanwhile. Ctrl-C stops; each document is committed whole.
    """
    # A service manager's stop (SIGTERM) ends the watch the way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with open_kb(kb_dir, **settings) as kb:
            direct = writing_to(kb)
            show = not quiet and not as_json

            from kb.cli.progress import ingest_with_progress  # lazy: rich's progress bar costs 0.1 s at start-up

            first: list[Any] = []  # the first pass's report: printed as kb ingest prints its own

            def write(p: Pass) -> Any:
                if p.changed is not None:
                    return direct(p)
                try:  # the first pass shows kb ingest's progress bar
                    first.append(ingest_with_progress(kb, p.paths, show, include=p.include, exclude=p.exclude))
                    return first[-1]
                finally:
                    kb.close()

            watcher = Watcher(paths, write, include=include, exclude=exclude, ignore=[kb.path],
                              debounce_ms=debounce_ms)

            def on_batch(batch: Batch) -> None:
                if as_json:
                    emit(batch.to_json())
                elif batch.first and first:  # counts and failures, not a line per file of a 10,000-file folder
                    print_report(first[-1])
                elif batch.error:
                    click.echo(f"kb: warning: the changes could not be ingested yet ({batch.error}); "
                               "trying again", err=True)
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(batch.at))
                    for line in batch.lines():
                        click.echo(f"{stamp} {line}")
                if batch.first:
                    st = kb.status()
                    kb.close()
                    if st.language_warning:  # once, as kb ingest says it (--json: in `kb status --json`)
                        click.echo(f"kb: warning: {st.language_warning}", err=True)
                    click.echo(f"kb: watching {', '.join(paths)} ({plural(st.documents, 'document')}, "
                               f"{plural(st.chunks, 'chunk')} "
                               f"in {kb.path}); Ctrl-C stops", err=True)

            watcher.run(on_batch)
    except KeyboardInterrupt:
        click.echo("kb: stopped watching; every document committed is kept whole", err=True)
        sys.exit(130)
