"""Org mode (.org) with orgparse: `*` headings give the heading path (without TODO keywords, tags or
priorities), body text paragraphs, src and example blocks code, tables rows "a | b"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.decode import read_text
from kb.types import Block, ParsedDocument

_BEGIN = re.compile(r"^\s*#\+begin_(\w+)", re.IGNORECASE)
_END = re.compile(r"^\s*#\+end_(\w+)", re.IGNORECASE)
_CODE = ("src", "example")
_PLANNING = re.compile(r"^\s*(?:(?:SCHEDULED|DEADLINE|CLOSED):\s*\S.*)$")
_DRAWER = re.compile(r"^\s*:([\w-]+):\s*$")
_LIST = re.compile(r"^\s*(?:[-+]|\d+[.)])\s+")
_RULE = re.compile(r"\|[-+|:\s]*")  # a |---+---| line between table rows


class OrgParser:
    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "org"
    extensions = (".org",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import orgparse

        text = read_text(path)
        try:
            root = orgparse.loads(text, filename=path.name)
        except Exception as e:  # orgparse raises on some malformed dates and drawers
            raise ParseError(f"unreadable Org file: {one_line(e)}") from e
        blocks = _body_blocks(root.body, ())
        outline = HeadingPath()
        for node in root[1:]:
            heading = clean_text(node.heading).replace("\n", " ")
            headings = outline.enter(node.level, heading)  # an empty one closes the deeper ones, names none
            if heading:
                blocks.append(Block(heading, headings, kind="heading"))
            blocks.extend(_body_blocks(node.body, headings))
        if not blocks:
            raise ParseError("no text in document")
        title = _keyword(root, "TITLE") or path.stem
        author = _keyword(root, "AUTHOR")
        return ParsedDocument(title=title, blocks=blocks, metadata={"author": author} if author else {})


def _keyword(root: Any, name: str) -> str:
    try:
        return " ".join((root.get_file_property(name) or "").split())
    except Exception:  # a keyword orgparse cannot read is a missing title, not a lost file
        return ""


def _body_blocks(body: str, headings: tuple[str, ...]) -> list[Block]:
    """Walk the body's lines: a src or example block is code, a run of "|" lines a table, a run of
    list items a list, other lines paragraphs split at blank lines. Keyword lines (#+...), comments,
    planning lines and drawers are Org's bookkeeping, not text; other blocks (quote, verse...) are
    read as text."""
    out: list[Block] = []
    run: list[str] = []
    kind = "text"
    code: str | None = None  # the open src/example block's name
    in_drawer = False

    def flush(next_kind: str = "text") -> None:
        nonlocal kind
        text = "\n".join(run) if kind == "code" else clean_text("\n".join(run))
        if text.strip():
            out.append(Block(text, headings, kind=kind))
        run.clear()
        kind = next_kind

    for line in body.split("\n"):
        stripped = line.strip()
        if code is not None:
            end = _END.match(line)
            if end and end.group(1).lower() == code:
                flush()
                code = None
            else:
                run.append(line)
            continue
        if in_drawer:
            in_drawer = stripped.upper() != ":END:"
            continue
        begin = _BEGIN.match(line)
        if begin and begin.group(1).lower() in _CODE:
            flush("code")
            code = begin.group(1).lower()
        elif _DRAWER.match(line) and stripped.upper() != ":END:":
            in_drawer = True
        elif stripped.startswith("#+") or stripped == "#" or stripped.startswith("# ") or _PLANNING.match(line):
            continue
        elif not stripped:
            flush()
        elif stripped.startswith("|"):
            if kind != "table":
                flush("table")
            if not _RULE.fullmatch(stripped):
                run.append(" | ".join(c.strip() for c in stripped.strip("|").split("|")))
        elif _LIST.match(line):
            if kind != "list":
                flush("list")
            run.append(line)
        else:
            if kind not in ("text", "list") or (kind == "list" and not line[:1].isspace()):
                flush()
            run.append(line)
    flush()
    return out
