"""Find the files to ingest under the paths a user gives, skipping hidden and temporary files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def walk(given: str) -> tuple[list[Candidate], list[str], int]:
    """Return (files found, folder roots walked, number of ignored entries) for one given path."""
    top = Path(given).expanduser()
    shown = os.path.abspath(top)  # the source shown in citations: absolute, as named (not resolved)
    if top.is_file():
        return [Candidate(top.resolve(), shown, True)], [], 0
    root = top.resolve()
    found: list[Candidate] = []
    ignored = 0
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
        kept = sorted(d for d in dirnames if not is_ignored(d))
        ignored += len(dirnames) - len(kept)
        dirnames[:] = kept
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if is_ignored(name):
                ignored += 1
                continue
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            source = os.path.join(shown, rel)
            # Resolve symlinked files to their target, but keep the path under the root as the
            # identity so "files that disappeared under this root" stays well defined.
            found.append(Candidate(root / rel, source, False))
    return found, [str(root)], ignored
