"""An ingest's progress on stderr: on a terminal, one line that fits its width (fields dropped in a
fixed order as it narrows, the bar and the ETA last); elsewhere (CI, nohup, a pipe) a plain status
line every `STATUS_EVERY_S` seconds. Both read the pipeline's `Ingesting` reports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from kb.cli.common import messages_above
from kb.types import plural

if TYPE_CHECKING:
    from rich.console import RenderableType

    from kb.api import KnowledgeBase
    from kb.ingest.pipeline import Ingesting
    from kb.types import IngestReport

STATUS_EVERY_S = 10.0  # not a terminal: often enough to show an ingest is alive, rarely enough for a short log
BAR_MIN = 10  # cells: narrower, a bar no longer reads as a share
BAR_WANT = 15  # cells the bar takes before the lesser fields are given room (80 columns: the page and chunk counts too)
BAR_MAX = 40  # cells: rich's own default width; more says nothing more
FILE_MIN = 8  # cells: a file name cut shorter than this says nothing

STEPS = {"scanning": "scanning", "model": "loading the embedding model", "files": "ingesting"}
SHOWN = ("spinner", "step", "bar", "count", "eta", "counts", "rate", "elapsed", "file")  # left to right
KEPT = ("eta", "bar", "count", "step", "spinner", "counts", "rate", "elapsed", "file")  # as the width shrinks,
# the last of these goes first: the file name, then the time elapsed, the rates... the ETA last
AFTER_BAR = SHOWN.index("count")  # the fields from here on are joined by " · "


class _Labelled(ProgressColumn):
    """A rich time column with a label ("ETA 0:01:23", "0:00:30 elapsed"); empty while there is no total."""

    def __init__(self, column: TimeRemainingColumn | TimeElapsedColumn, before: str = "", after: str = ""):
        super().__init__()
        self.column, self.before, self.after = column, before, after

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(self.before) + self.column.render(task) + Text(self.after)


def columns() -> dict[str, ProgressColumn]:
    """The fields of the progress line, by name."""
    return {
        "spinner": SpinnerColumn(),
        "step": TextColumn("{task.description}", markup=False),
        "bar": BarColumn(bar_width=BAR_WANT),
        "count": TextColumn("{task.fields[count]}", markup=False),
        "eta": _Labelled(TimeRemainingColumn(), before="ETA "),
        "counts": TextColumn("{task.fields[counts]}", markup=False),
        "rate": TextColumn("{task.fields[rate]}", markup=False),
        "elapsed": _Labelled(TimeElapsedColumn(), after=" elapsed"),
        "file": TextColumn("{task.fields[file]}", markup=False, style="dim"),
    }


class FittingProgress(Progress):
    """A rich `Progress` of one task whose line fits the console's width at each refresh (a resized
    terminal included): the fields of `KEPT` are taken in order while they fit, the bar grows into
    what is left."""

    def __init__(self, *, console: Console | None = None, get_time: Callable[[], float] | None = None,
                 disable: bool = False):
        self.named = columns()
        super().__init__(*self.named.values(), console=console, transient=True, get_time=get_time,
                         disable=disable)

    def fit(self, task: Task, width: int) -> list[RenderableType]:
        """The cells of `task`'s line in `width` cells: the fields after the bar joined by " · "."""
        bar = self.named["bar"]
        assert isinstance(bar, BarColumn)
        cells: dict[str, RenderableType] = {}
        widths: dict[str, int] = {}
        for name in KEPT:
            room = width - _line_width({**widths, name: 0})
            if name == "bar":
                need = min(BAR_WANT, room)
                if need < BAR_MIN:
                    break
                bar.bar_width = need
                cell: RenderableType = bar(task)
            else:
                cell = self.named[name](task)
                need = Measurement.get(self.console, self.console.options, cell).maximum
                if need == 0:
                    continue  # nothing to say yet (no rate in the first second): takes no room
                if name == "file" and isinstance(cell, Text) and need > room >= FILE_MIN:
                    cell = cell.copy()
                    cell.truncate(room, overflow="ellipsis")
                    need = room
            if need > room:
                break
            cells[name], widths[name] = cell, need
        if "bar" in cells:  # what no field took widens the bar
            bar.bar_width = min(BAR_MAX, widths["bar"] + width - _line_width(widths))
            cells["bar"] = bar.render(task)
        before = [cells[name] for name in SHOWN[:AFTER_BAR] if name in cells]
        after = [text for name in SHOWN[AFTER_BAR:] if isinstance(text := cells.get(name), Text)]
        return [*before, *([Text(" · ").join(after)] if after else [])]

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        table = Table.grid(padding=(0, 1))
        shown = [t for t in tasks if t.visible][:1]  # an ingest shows one task
        if shown:
            cells = self.fit(shown[0], self.console.width)
            for _ in cells:
                table.add_column(no_wrap=True)
            table.add_row(*cells)
        return table


def _line_width(widths: dict[str, int]) -> int:
    """The cells a line of fields of these widths takes: one space between the fields up to the bar,
    " · " between those after it."""
    names = [name for name in SHOWN if name in widths]
    gaps = sum(3 if SHOWN.index(a) >= AFTER_BAR else 1 for a in names[:-1])
    return sum(widths.values()) + gaps


class IngestProgress:
    """What an ingest has done so far, fed by the pipeline's reports (`__call__`), shown by a
    `FittingProgress` (`live=True`) or read as a plain `line()`."""

    def __init__(self, console: Console | None = None, *, live: bool = True,
                 get_time: Callable[[], float] | None = None):
        self.bar = FittingProgress(console=console, get_time=get_time, disable=not live)
        self.task: TaskID = self.bar.add_task(STEPS["scanning"], total=None, count="", counts="", rate="", file="")
        self.began = 0.0  # when the files step began: its rates and ETA count from there, not from the model's load
        self._guard = threading.Lock()

    def __call__(self, p: Ingesting) -> None:
        with self._guard:
            files = p.step == "files"
            now = self.bar.get_time()
            if files and not self.began:
                self.began = now
                self.bar.reset(self.task, total=p.total)
            seconds = now - self.began if self.began else 0.0
            rate = ""
            if files and seconds > 1:
                rate = (f"{p.pages / seconds:.1f} pages/s, " if p.pages else "") + f"{p.chunks / seconds:.0f} chunks/s"
            self.bar.update(self.task, description=STEPS.get(p.step, p.step), completed=p.done,
                            total=p.total if files else None,
                            count=f"{p.done}/{p.total} files" if files else "",
                            counts=(f"{plural(p.pages, 'page')}, " if p.pages else "") + plural(p.chunks, "chunk")
                            if files else "",  # pages only where there are some: slides, sheets and mails have none
                            rate=rate, file=_name(p.source) if files else "")

    def line(self) -> str:
        """The status as one plain line: every field but the spinner and the bar."""
        with self._guard:
            task = self.bar.tasks[0]
            pieces = [self.bar.named[name](task) for name in SHOWN if name not in ("spinner", "bar")]
        return "kb: " + " · ".join(p.plain for p in pieces if isinstance(p, Text) and p.plain)


def _name(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]


@contextmanager
def ingest_progress(console: Console | None = None, *, every: float | None = None) -> Iterator[IngestProgress]:
    """An `IngestProgress` shown on `console` (default: stderr) for the length of the block: a live line
    where the console is an interactive terminal, else a status line every `every` seconds
    (`STATUS_EVERY_S`) once the first interval has passed."""
    console = console or Console(stderr=True)
    if console.is_interactive:
        progress = IngestProgress(console)
        with progress.bar, messages_above(console):
            yield progress
        return
    progress = IngestProgress(console, live=False)
    stop = threading.Event()
    interval = STATUS_EVERY_S if every is None else every

    def tick() -> None:
        while not stop.wait(interval):
            click.echo(progress.line(), err=True)

    ticker = threading.Thread(target=tick, name="kb-ingest-status", daemon=True)
    ticker.start()
    try:
        yield progress
    finally:
        stop.set()
        ticker.join()


def ingest_with_progress(kb: KnowledgeBase, paths: Iterable[str], show: bool, *, include: Iterable[str] = (),
                         exclude: Iterable[str] = (), reparse: bool = False) -> IngestReport:
    """`kb.ingest(paths)` with its progress on stderr when `show` (kb ingest, kb watch's first pass): a
    line that fits the terminal, or a status line every 10 s where stderr is not one (`kb.cli.progress`)."""
    if not show:
        return kb.ingest(paths, include=include, exclude=exclude, reparse=reparse)
    with ingest_progress() as progress:
        return kb.ingest(paths, progress=progress, include=include, exclude=exclude, reparse=reparse)
