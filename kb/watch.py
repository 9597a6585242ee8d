"""Keep a knowledge base in step with folders as they change: `kb watch` and `kb serve --watch`.

A first pass brings the knowledge base in step with the folders, as `kb ingest` does; then each
debounced batch of file-system events (the `watchfiles` package) becomes one ingest pass limited to
the paths that changed. A rename arrives as a deletion and a creation in one batch, so the pass sees
both and moves the document instead of re-embedding it. A file still being written (a long copy that
outlasts MAX_BATCH_MS) is left for a later pass, so that no pass reads half a file. Who writes is
the caller's choice: `kb watch` ingests directly, `kb serve` through its single writer's job queue,
so that the watcher and the server's own ingests never write at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.errors import ConfigError, DependencyError, KBError, install_command
from kb.ingest.base import is_supported
from kb.ingest.walk import IGNORE_FILE, is_ignored
from kb.types import FileOutcome, IngestReport, Moved, shown

if TYPE_CHECKING:
    from kb.api import KnowledgeBase
    from kb.ingest.pipeline import Progress

log = logging.getLogger(__name__)

DEBOUNCE_MS = 400  # a burst of changes ends with this much quiet before it is ingested (one pass)
MAX_BATCH_MS = 5000  # ...or after this long, while a file keeps changing
TICK_MS = 1000  # how often the watcher looks whether a watched folder went away or came back
RETRY_S = (2.0, 30.0)  # a pass that could not run (another process writing) is tried again: first, longest wait
SETTLE_CHECK_S = 0.05  # a changed file is looked at twice this far apart: still growing, it waits for a later pass
SETTLE_MAX_S = 120.0  # ...but a file written to without end is ingested as it is after this long


@dataclass(frozen=True)
class Pass:
    """One ingest pass the watcher asks its writer for: the paths watched, the rules, and the
    absolute paths that changed (None: everything, the first pass)."""

    paths: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    changed: frozenset[str] | None = None

    def run(self, kb: KnowledgeBase, progress: Progress | None = None) -> IngestReport:
        return kb.ingest(self.paths, include=self.include, exclude=self.exclude, changed=self.changed,
                         progress=progress)


Writer = Callable[[Pass], IngestReport]


def writing_to(kb: KnowledgeBase) -> Writer:
    """Each pass straight into `kb`, whose files are closed after it (the embedding model stays
    loaded): another process may write between passes, and the next pass must start from what it wrote."""

    def write(p: Pass) -> IngestReport:
        try:
            return p.run(kb)
        finally:
            kb.close()

    return write


@dataclass
class Batch:
    """What one pass changed: what `kb watch` prints, a line per change (`lines`) or one JSON object."""

    first: bool  # the pass at start, over everything
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    at: float = field(default_factory=time.time)
    error: str | None = None  # the pass could not run (it is tried again)

    @classmethod
    def of(cls, report: IngestReport, first: bool, seconds: float) -> Batch:
        return cls(first, report.added, report.updated, report.moved, report.removed, report.failed, seconds)

    def __bool__(self) -> bool:
        """Whether anything changed (or went wrong): a pass over a touched, unchanged file is empty."""
        return bool(self.added or self.updated or self.moved or self.removed or self.failed or self.error)

    def lines(self) -> list[str]:
        out = [f"added    {shown(s)}" for s in self.added]
        out += [f"updated  {shown(s)}" for s in self.updated]
        out += [f"moved    {shown(m.source)} -> {shown(m.to)}" for m in self.moved]
        out += [f"removed  {shown(s)}" for s in self.removed]
        out += [f"failed   {shown(f.source)}: {f.reason}" for f in self.failed]
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = datetime.fromtimestamp(self.at, timezone.utc).isoformat(timespec="seconds")
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass(frozen=True)
class _Target:
    given: str  # absolute, as named: what each pass is given
    path: str  # resolved: where events come from
    folder: bool  # a single file is watched through its folder

    @property
    def watched(self) -> str:
        return self.path if self.folder else os.path.dirname(self.path)


class Watcher:
    """Watches `paths` (folders or files) and hands each batch of changes to `write` as a `Pass`.

    `run` does the first pass, then watches until `stop` is called (from another thread) or the
    main thread is interrupted (Ctrl-C: `KeyboardInterrupt`, between or inside passes; each document
    is committed whole). It survives a file that fails (reported in the batch), a pass that cannot
    run (retried), and a watched folder that goes away: its documents stay until it is back, and then
    one pass over it brings them in step (a folder deleted file by file loses its documents as its
    files go). `ignore`: folders whose changes never count (the knowledge base's own).
    """

    def __init__(self, paths: Sequence[str], write: Writer, *, include: Iterable[str] = (),
                 exclude: Iterable[str] = (), ignore: Iterable[str | os.PathLike[str]] = (),
                 debounce_ms: int = DEBOUNCE_MS):
        try:
            # lazy: only kb watch and kb serve --watch follow file-system events
            import watchfiles  # noqa: F401
        except ImportError as e:
            raise DependencyError(f"watching folders needs the watchfiles package: {install_command()}") from e
        if not paths:
            raise ConfigError("nothing to watch: name at least one folder or file")
        targets = []
        for given in paths:
            if not os.path.exists(given):
                raise ConfigError(f"{given}: no such file or folder")
            full = os.path.abspath(os.path.expanduser(given))
            targets.append(_Target(full, str(Path(full).resolve()), os.path.isdir(full)))
        self.targets = targets
        self.write = write
        self.include, self.exclude = tuple(include), tuple(exclude)
        self.ignore = [str(Path(p).resolve()) for p in ignore]
        self.debounce_ms = max(1, int(debounce_ms))
        self._stop = threading.Event()
        self._waiting: dict[str, float] = {}  # changed paths still being written: since when (monotonic)
        self._again: set[str] = set()  # paths the last pass must hand to the next one (gone while it ran)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self, on_batch: Callable[[Batch], None]) -> None:
        """The first pass (its errors are raised: nothing is watched), then a pass per batch of changes.
        The first pass runs once the folders are watched, so that nothing changed meanwhile is missed."""
        pending: set[str] | None = None  # None: everything, the first pass
        recheck: set[str] = set()  # watched folders that were renamed or deleted themselves: a pass over all when back
        retry = _Retry()
        while not self._stop.is_set():
            seen = {t.watched: _identity(t.watched) for t in self.targets}
            watched = sorted({w for w, ident in seen.items() if ident is not None})
            if not watched and pending is not None:  # every folder is gone: wait for one to come back
                self._stop.wait(TICK_MS / 1000)
            for changes in self._events(watched):
                paths = {path for _, path in changes}
                folders = {t.path for t in self.targets if t.folder and t.path in paths}
                if pending is not None:
                    pending |= {self._scope(path) for path in paths - folders}
                    # Gone and back between two looks: what changed meanwhile was reported under paths
                    # that did not exist then, so the whole folder is looked at again.
                    recheck |= folders
                    back = {f for f in recheck if os.path.isdir(f)}
                    pending |= back
                    recheck -= back
                moved = [w for w, ident in seen.items() if _identity(w) != ident]
                if moved and pending is not None:  # back: one pass over all of it, once it is watched again
                    pending |= {t.path for t in self.targets if t.watched in moved and _identity(t.watched)}
                    break  # (gone: its documents wait for it)
                # A file still being written (a long copy, cut into batches by MAX_BATCH_MS) waits for a
                # later pass: its own later writes, or the watch's timeout every TICK_MS, bring one.
                ready: set[str] | None = None
                later: set[str] = set()
                if pending is not None:
                    ready, later = self._settled(pending)
                if (ready is None or ready) and retry.due():
                    batch = self._pass(ready)
                    if batch.error:
                        retry.failed()
                    else:
                        pending = later | self._again
                        retry.reset()
                    if (batch or batch.first) and not (batch.error and self._stop.is_set()):  # not: cut short by stop
                        on_batch(batch)
                if self._stop.is_set() or moved:
                    break

    def _events(self, watched: list[str]) -> Iterable[set[tuple[Any, str]]]:
        if not watched:
            return [set()]
        # lazy: only kb watch and kb serve --watch follow file-system events
        import watchfiles

        return watchfiles.watch(*watched, watch_filter=self._counts, debounce=max(MAX_BATCH_MS, self.debounce_ms),
                                step=self.debounce_ms, stop_event=self._stop, rust_timeout=TICK_MS,
                                yield_on_timeout=True, ignore_permission_denied=True)

    def _pass(self, changed: set[str] | None) -> Batch:
        started = time.monotonic()
        p = Pass(tuple(t.given for t in self.targets), self.include, self.exclude,
                 None if changed is None else frozenset(changed))
        if changed is None:
            return Batch.of(self.write(p), True, time.monotonic() - started)
        try:
            report = self.write(p)
        except KBError as e:
            return Batch(False, error=str(e), seconds=time.monotonic() - started)
        except Exception as e:  # a bug must not end the watch: say so (the caller says it is retried)
            if os.environ.get("KB_DEBUG"):  # else the error's one line is all the batch says
                log.error("kb watch: a pass failed", exc_info=True)
            return Batch(False, error=f"{type(e).__name__}: {e}", seconds=time.monotonic() - started)
        # A file deleted while the pass ran (between its walk and its reading) is no failure: the
        # next pass looks at its path again, which forgets the failure recorded for it.
        gone = [f for f in report.failed if not os.path.lexists(f.source)]
        self._again = {os.path.realpath(f.source) for f in gone}
        report.failed = [f for f in report.failed if f not in gone]
        return Batch.of(report, False, time.monotonic() - started)

    def _settled(self, changed: set[str]) -> tuple[set[str], set[str]]:
        """`changed` split into what a pass can take now and what is still being written: a file (or
        a folder holding one) whose size or modification time changed within the debounce window, or
        between two looks `SETTLE_CHECK_S` apart. A path gone is settled (its deletion is the change)."""
        files = {path: _files(path) for path in changed}
        before = {f: _size_and_mtime(f) for fs in files.values() for f in fs}
        time.sleep(SETTLE_CHECK_S if before else 0)
        now, window = time.time(), self.debounce_ms / 1000
        ready, later = set(), set()
        for path, fs in files.items():
            busy = False
            for f in fs:
                after = _size_and_mtime(f)
                if after is not None and (after != before[f] or 0 <= now - after[1] < window):
                    busy = True
                    break
            since = self._waiting.setdefault(path, time.monotonic()) if busy else None
            if since is not None and time.monotonic() - since < SETTLE_MAX_S:
                later.add(path)
            else:
                ready.add(path)
                self._waiting.pop(path, None)
        return ready, later

    def _counts(self, change: Any, path: str) -> bool:
        """Whether an event can change the knowledge base: under a target, not hidden or temporary
        (a .kbignore itself counts), not in an ignored folder, and of a type kb reads (or a folder,
        or gone: a deleted folder has no extension)."""
        if any(path == i or path.startswith(i + "/") for i in self.ignore):
            return False
        for t in self.targets:
            if not t.folder:
                if path == t.path:
                    return True
                continue
            if path == t.path:
                return True  # the folder itself renamed or deleted: `run` looks at it again when it is back
            if not path.startswith(t.path + "/"):
                continue
            parts = path[len(t.path) + 1:].split("/")
            if parts[-1] == IGNORE_FILE:
                return not any(is_ignored(p) for p in parts[:-1])
            if any(is_ignored(p) for p in parts):
                return False
            return is_supported(Path(path)) or not os.path.isfile(path)
        return False

    @staticmethod
    def _scope(path: str) -> str:
        """A changed .kbignore changes what its whole folder holds."""
        return os.path.dirname(path) if os.path.basename(path) == IGNORE_FILE else path


class _Retry:
    """When a pass that could not run is tried again: later each time, up to a limit."""

    def __init__(self) -> None:
        self.wait, self.at = 0.0, 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.at

    def failed(self) -> None:
        self.wait = min(RETRY_S[1], self.wait * 2 or RETRY_S[0])
        self.at = time.monotonic() + self.wait

    def reset(self) -> None:
        self.wait, self.at = 0.0, 0.0


def _files(path: str) -> list[str]:
    """The files a changed path stands for: itself, or those of kb's types under a folder."""
    if not os.path.isdir(path):
        return [path]
    return [os.path.join(top, name) for top, _, names in os.walk(path) for name in names
            if is_supported(Path(name))]


def _size_and_mtime(path: str) -> tuple[int, float] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
