"""Filters shared by `search`, `ask` and the Python API, applied inside the search (not after top-k)."""

from __future__ import annotations

from dataclasses import dataclass

from kb.errors import ConfigError


@dataclass(frozen=True)
class Filters:
    path: str | None = None  # glob on the source path, e.g. 'reports/*2023*' (a bare name matches anywhere)
    file_type: str | None = None  # pdf | docx | markdown | html | text
    pages: tuple[int, int] | None = None  # inclusive 1-based page range; chunks overlapping it pass
    section: str | None = None  # case-insensitive substring of the heading path

    def is_empty(self) -> bool:
        return not (self.path or self.file_type or self.pages or self.section)

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

    def sql(self) -> tuple[str, list[object]]:
        """A WHERE clause over `chunks c JOIN documents d` and its parameters."""
        where: list[str] = []
        params: list[object] = []
        if self.path:
            pattern = self.path if "/" in self.path or self.path.startswith("*") else f"*{self.path}"
            where.append("(d.source GLOB ? OR d.path GLOB ?)")
            params += [pattern, pattern if pattern.startswith(("/", "*")) else f"*/{pattern}"]
        if self.file_type:
            where.append("d.file_type = ?")
            params.append(self.file_type.lower().lstrip("."))
        if self.pages:
            where.append("c.page_start <= ? AND coalesce(c.page_end, c.page_start) >= ?")
            params += [self.pages[1], self.pages[0]]
        if self.section:
            where.append("lower(coalesce(c.section, '')) LIKE ?")
            params.append(f"%{self.section.lower()}%")
        return (" AND ".join(where) or "1"), params
