"""The one error hierarchy of kb; the CLI turns any `KBError` into a one-line message.

    KBError
    ├── ConfigError            bad kb.toml, unknown option value, missing knowledge base
    ├── DependencyError        an optional extra is not installed (message says which)
    │   └── MissingExtraError  ...raised at import time: also an ImportError
    ├── ParseError             one file could not be read (the ingest goes on without it)
    │   └── UnsupportedFileError
    ├── EmbedderError          the embedding model could not load or run
    │   └── EmbedderMismatchError   index built with another model
    ├── StoreError             the vector store failed (FAISS file, Milvus server)
    ├── CatalogError           the SQLite catalog failed or is from a newer kb
    ├── LockedError            another process holds the knowledge base's write lock
    └── DiskFullError          no space left where kb writes (knowledge base folder, model cache)
"""

from __future__ import annotations

import errno
import os
import shutil


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, at most `limit` characters (its type's name if it has none):
    how a library's error becomes part of a one-line reason."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


# How kb builds llama.cpp (llama-cpp-python's CMAKE_ARGS): CPU kernels for every x86-64 generation, the
# best for the CPU at hand loaded when the model starts (kb.llm.llama_build); no multimodal tools.
LLAMA_CMAKE_ARGS = "-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


def install_command(extra: str = "") -> str:
    """How to install kb (`extra` empty) or one of its extras, run in the kb checkout: kb is installed
    from its source, and the package called "kb" on the public index is another project."""
    if not extra:
        return "pip install -e . (in the kb checkout)"
    if extra == "llm":  # llama-cpp-python compiles: kernels for every x86-64 CPU, the best loaded at run time
        # (kb.llm.llama_build), and built now (no cached wheel of another build: pip reuses one whatever
        # CMAKE_ARGS say)
        return f"CMAKE_ARGS=\"{LLAMA_CMAKE_ARGS}\" pip install --no-cache-dir -e '.[llm]' (in the kb checkout)"
    return f"pip install -e '.[{extra}]' (in the kb checkout)"


class KBError(Exception):
    """Base of every error kb raises on purpose."""


class ConfigError(KBError):
    pass


class DependencyError(KBError):
    pass


class MissingExtraError(DependencyError, ImportError):
    """An optional extra is not installed: both a `KBError` and an `ImportError`, so either catch works."""


class ParseError(KBError):
    pass


class UnsupportedFileError(ParseError):
    pass


class EmbedderError(KBError):
    pass


class EmbedderMismatchError(EmbedderError):
    pass


class StoreError(KBError):
    pass


class CatalogError(KBError):
    pass


class LockedError(KBError):
    pass


class DiskFullError(KBError):
    """A write found no space left on its disk (or the user's quota spent): the message names the
    folder, the space free and, where known, the space needed (`disk_full`)."""


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` says the disk (or the quota) is full: an OSError's ENOSPC or EDQUOT, SQLite's
    SQLITE_FULL, or a native library's message carrying the C library's words for them."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if getattr(e, "sqlite_errorcode", None) == 13:  # SQLITE_FULL (Python 3.11 names the code)
        return True
    text = str(e)
    return any(words in text for words in ("database or disk is full", os.strerror(errno.ENOSPC),
                                           os.strerror(errno.EDQUOT)))


def disk_full(folder: str | os.PathLike[str], what: str, needed: int | None = None, *,
              hint: str = "free some space and run it again") -> DiskFullError:
    """The one-line error for a write to `folder` that found no space: "no space left in FOLDER to
    {what}: 312 kB free, about 1.4 MB needed; {hint}"."""
    free: int | None
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    room = ", ".join([*([f"{size(free)} free"] if free is not None else []),
                      *([f"about {size(needed)} needed"] if needed else [])])
    return DiskFullError(f"no space left in {os.fspath(folder)} to {what}{': ' + room if room else ''}; "
                         f"{hint}")


def size(n: int) -> str:
    """A byte count as people read it: "13 bytes", "312 kB", "1.4 MB", "500 MB", "2.1 GB"."""
    if n < 1000:
        return f"{max(n, 0)} bytes"
    if n < 1_000_000:
        return f"{n / 1e3:.0f} kB"
    number, unit = (n / 1e6, "MB") if n < 1_000_000_000 else (n / 1e9, "GB")
    return f"{number:.1f}".removesuffix(".0") + f" {unit}"
