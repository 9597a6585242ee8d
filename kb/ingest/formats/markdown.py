"""Markdown with markdown-it-py: headings give the section path, front matter is metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kb.errors import ParseError
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.decode import read_text
from kb.types import Block, ParsedDocument

_KINDS = {"fence": "code", "code_block": "code", "table_open": "table"}


class MarkdownParser:
    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "markdown"
    extensions = (".md", ".markdown")

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from markdown_it import MarkdownIt
        from mdit_py_plugins.front_matter import front_matter_plugin

        source = read_text(path)
        md = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
        tokens = md.parse(source)
        lines = source.splitlines()
        meta: dict[str, Any] = {}
        blocks: list[Block] = []
        headings = HeadingPath()
        for i, tok in enumerate(tokens):
            if tok.level != 0 or tok.map is None:
                continue
            if tok.type == "front_matter":
                meta = _front_matter(tok.content)
                continue
            raw = "\n".join(lines[tok.map[0] : tok.map[1]])
            if tok.type == "heading_open":
                level = int(tok.tag[1])
                text = clean_text(tokens[i + 1].content)
                blocks.append(Block(text, headings.enter(level, text), kind="heading"))
                continue
            kind = _KINDS.get(tok.type, "text")
            # Code keeps its indentation; everything else is whitespace-normalised.
            text = raw.strip("\n") if kind == "code" else clean_text(raw)
            if text.strip():
                blocks.append(Block(text, headings.path, kind=kind))
        if not blocks:
            raise ParseError("no text in Markdown file")
        title = str(meta.get("title") or "").strip() or _first_h1(blocks) or path.stem
        return ParsedDocument(title=title, blocks=blocks, metadata=meta)


def _front_matter(content: str) -> dict[str, Any]:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    import yaml

    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError:
        return {}
    return {str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _first_h1(blocks: list[Block]) -> str | None:
    for b in blocks:
        if b.kind == "heading" and len(b.headings) == 1:
            return b.text
    return None
