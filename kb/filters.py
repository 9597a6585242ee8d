"""Filters shared by `search`, `ask` and the Python API, applied inside the search (not after top-k).

Plain data: each store turns them into its own query language (SQL in `kb.index.catalog`, a boolean
expression in `kb.index.milvus`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kb.errors import ConfigError


@dataclass(frozen=True)
class Filters:
    path: str | None = None  # glob on the source path, e.g. 'reports/*2023*' (a bare name matches anywhere)
    file_type: str | None = None  # pdf | docx | markdown | html | text
    pages: tuple[int, int] | None = None  # inclusive 1-based page range; chunks overlapping it pass
    section: str | None = None  # case-insensitive substring of the heading path
    # (field, text): the document's metadata field holds `text` (case-insensitive), e.g. ("from", "ada")
    # for a mail's sender; every pair must hold.
    where: tuple[tuple[str, str], ...] = ()

    def is_empty(self) -> bool:
        return not (self.path or self.file_type or self.pages or self.section or self.where)

    def describe(self) -> str:
        """The filters in words, for messages: "path '*2023*', pages 3-7"."""
        parts = [f"path {self.path!r}" if self.path else "", f"type {self.file_type}" if self.file_type else "",
                 f"section {self.section!r}" if self.section else "",
                 *(f"{key} {value!r}" for key, value in self.where)]
        if self.pages:
            lo, hi = self.pages
            parts.append(f"page {lo}" if lo == hi else f"pages {lo}-{hi}")
        return ", ".join(p for p in parts if p)

    @staticmethod
    def parse_pages(text: str | None) -> tuple[int, int] | None:
        """'12' -> (12, 12); '3-7' -> (3, 7)."""
        if not text:
            return None
        try:
            first, _, last = text.partition("-")
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise ConfigError(f"page range must look like 12 or 3-7, got {text!r}") from None
        if lo < 1 or hi < lo:
            raise ConfigError(f"page range {text!r} is empty")
        return lo, hi


def parse_where(given: Iterable[str] | Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """'from=ada' (or {"from": "ada"}) -> (("from", "ada"),): a field of the documents' metadata and the
    text it must hold."""
    pairs = list(given.items()) if isinstance(given, Mapping) else [_pair(g) for g in given or ()]
    for key, _ in pairs:
        if not _FIELD.fullmatch(key):
            raise ConfigError(f"metadata field must be letters, digits, '_' or '-', got {key!r}")
    return tuple((k.lower(), str(v)) for k, v in pairs)


def _pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"--where must look like FIELD=TEXT (e.g. from=ada), got {text!r}")
    return key.strip(), value.strip()


_FIELD = re.compile(r"[A-Za-z0-9_-]{1,64}")


def glob_escape(text: str) -> str:
    """`text` as a glob that matches only itself ("[", "*" and "?" taken literally)."""
    return "".join(f"[{c}]" if c in "[*?" else c for c in text)
