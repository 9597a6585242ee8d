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
    └── LockedError            another process holds the knowledge base's write lock
"""

from __future__ import annotations


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, at most `limit` characters (its type's name if it has none):
    how a library's error becomes part of a one-line reason."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


def install_command(extra: str = "") -> str:
    """How to install kb (`extra` empty) or one of its extras, run in the kb checkout: kb is installed
    from its source, and the package called "kb" on the public index is another project."""
    if not extra:
        return "pip install -e . (in the kb checkout)"
    if extra == "llm":  # llama-cpp-python compiles: portable, so the build runs on any x86-64 CPU
        return "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install -e '.[llm]' (in the kb checkout)"
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
