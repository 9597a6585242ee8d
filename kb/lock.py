"""Locks: `WriteLock`, one process at a time ingests, removes or repairs a knowledge base; `RWLock`,
many threads of one process read an index while a change to it waits for them.

`WriteLock` is an advisory `flock` on a file in the knowledge base folder, holding the writer's pid so
that the second writer's message can name it. The OS drops it when the process dies, so a `kill -9`
never leaves a stale lock behind. Readers never take it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kb.errors import LockedError, disk_full, is_disk_full

LOCK_FILE = "ingest.lock"


class WriteLock:
    """Re-entrant within one object: nested `with lock:` blocks hold it until the outermost ends."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            raise LockedError(f"{self.folder} is read-only for this user: kb can search it but not write to it") from None
        except OSError as e:
            if is_disk_full(e):
                raise disk_full(self.folder, "start writing") from e
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockedError(
                f"another kb process (pid {holder}) is writing to {self.folder}; try again when it ends"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as e:
            os.close(fd)
            if is_disk_full(e):
                raise disk_full(self.folder, "start writing") from e
            raise
        self._fd = fd
        self._depth = 1

    def release(self, *, force: bool = False) -> None:
        self._depth = 0 if force else max(0, self._depth - 1)
        if self._fd is not None and self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RWLock:
    """Many readers or one writer, within one process. A waiting writer holds back new readers, so a
    steady stream of searches cannot starve an ingest's commits (each holds it for milliseconds).
    Not re-entrant: a reader must not take it again while it reads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
