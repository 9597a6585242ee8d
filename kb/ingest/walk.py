"""Find the files to ingest under the paths a user gives, skipping hidden and temporary files."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

_TEMP_NAMES = {"thumbs.db", "desktop.ini"}
_TEMP_SUFFIXES = ("~", ".tmp", ".swp", ".swo", ".part", ".crdownload")


@dataclass(frozen=True)
class Candidate:
    path: Path  # absolute, resolved
    source: str  # absolute, as the user named it (symlinks kept): shown in citations
    explicit: bool  # named on the command line rather than found in a folder


def is_ignored(name: str) -> bool:
    """Hidden files, Office lock files (~$x.docx) and editor/download leftovers."""
    lower = name.lower()
    return name.startswith((".", "~$")) or lower in _TEMP_NAMES or lower.endswith(_TEMP_SUFFIXES)


IGNORE_FILE = ".kbignore"


@dataclass(frozen=True)
class Rules:
    """Which files under a folder to take, in gitignore syntax (pathspec), matched against the path
    relative to the folder given: `include` (none: every file), `exclude`, and the `.kbignore` files
    found on the way, each relative to its own folder. A file named on its own is always taken."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass
class Walked:
    found: list[Candidate] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # folders walked: files gone from them are dropped
    ignored: int = 0  # hidden and temporary entries
    excluded: int = 0  # files and folders left out by the rules or a .kbignore


def walk(given: str, rules: Rules = Rules(), within: Collection[str] | None = None) -> Walked:
    """The files to ingest under one given path. `within`: absolute paths under the folder given (its
    resolved path joined with the rest, as `Candidate.path` names files) that changed: the walk looks
    at them and everything under them only (a watcher's pass); None: at everything."""
    out = Walked()
    out.found = list(walking(given, out, rules, within))
    return out


def walking(given: str, out: Walked, rules: Rules = Rules(),
            within: Collection[str] | None = None) -> Iterator[Candidate]:
    """`walk`'s files one at a time, in the same order, as they are found (a caller may stop at the first
    it wants); `out` gets the roots and counts the files left aside so far (`out.found` stays as it is)."""
    top = Path(given).expanduser()
    shown = os.path.abspath(top)  # the source shown in citations: absolute, as named (not resolved)
    if top.is_file():
        yield Candidate(top.resolve(), shown, True)
        return
    root = top.resolve()
    out.roots.append(str(root))
    limit = _Limit(str(root), within) if within is not None else None
    if limit is not None and limit.everything:
        limit = None
    include = _spec(rules.include) if rules.include else None
    ignores: list[tuple[str, pathspec.PathSpec]] = [("", _spec(rules.exclude))] if rules.exclude else []
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink loop, or a folder reached twice
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        if IGNORE_FILE in filenames:
            ignores.append((rel_dir, _read_spec(Path(dirpath) / IGNORE_FILE)))
        if limit is not None:  # only the folders on the way to a changed path, or under one
            dirnames[:] = [d for d in dirnames if limit.enters(rel_dir + d)]
            filenames = [f for f in filenames if limit.takes(rel_dir + f)]
        kept = sorted(d for d in dirnames if not is_ignored(d))
        out.ignored += len(dirnames) - len(kept)
        dirnames[:] = [d for d in kept if not _left_out(ignores, f"{rel_dir}{d}/")]
        out.excluded += len(kept) - len(dirnames)
        for name in sorted(filenames):
            if is_ignored(name):
                out.ignored += 1
                continue
            rel = rel_dir + name
            if _left_out(ignores, rel) or (include is not None and not include.match_file(rel)):
                out.excluded += 1
                continue
            # Resolve symlinked files to their target, but keep the path under the root as the
            # identity so "files that disappeared under this root" stays well defined.
            yield Candidate(root / rel, os.path.join(shown, rel), False)


class _Limit:
    """The part of a folder a scoped walk looks at: the changed paths (relative to the folder), and
    the folders above them, which it passes through (reading their .kbignore files) without taking
    their other files."""

    def __init__(self, root: str, within: Collection[str]):
        base = root.rstrip("/") + "/"
        self.targets = {p[len(base):].rstrip("/") for p in within if p.startswith(base)}
        self.everything = any(p.rstrip("/") == root.rstrip("/") for p in within)
        self.above = {t.rsplit("/", i)[0] for t in self.targets for i in range(1, t.count("/") + 1)}

    def takes(self, rel: str) -> bool:
        """Whether `rel` is a changed path or lies under one."""
        parts = rel.split("/")
        return any("/".join(parts[:i]) in self.targets for i in range(1, len(parts) + 1))

    def enters(self, rel: str) -> bool:
        return rel in self.above or self.takes(rel)


def _spec(lines: Iterable[str]) -> pathspec.PathSpec:
    # lazy: only when there are rules, not on every command's start-up
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _read_spec(path: Path) -> pathspec.PathSpec:
    try:
        return _spec(path.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:  # unreadable: as if absent
        return _spec([])


def _left_out(ignores: list[tuple[str, pathspec.PathSpec]], rel: str) -> bool:
    """Whether a .kbignore (or --exclude) above `rel` leaves it out; each judges the path relative to its folder."""
    return any(rel.startswith(base) and spec.match_file(rel[len(base):]) for base, spec in ignores)
