"""SubRip subtitles (.srt) for kb: each cue's text is a block under its start time, so a citation
reads `talk.srt § 00:12:05` and a reader can jump to that moment."""

from __future__ import annotations

import re
from pathlib import Path

from kb.errors import ParseError
from kb.ingest.base import clean_text
from kb.types import Block, ParsedDocument

_TIMING = re.compile(r"(\d{1,2}:\d{2}:\d{2})[,.]\d{1,3}\s*-->\s*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}")


class SrtParser:
    file_type = "srt"
    extensions = (".srt",)

    def parse(self, path: Path) -> ParsedDocument:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        blocks = []
        for cue in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
            lines = [line for line in cue.strip().split("\n") if line.strip()]
            timing = next((i for i, line in enumerate(lines) if _TIMING.search(line)), None)
            if timing is None:
                continue
            words = clean_text(" ".join(lines[timing + 1 :]))
            if words:
                blocks.append(Block(words, (_TIMING.search(lines[timing]).group(1),)))  # type: ignore[union-attr]
        if not blocks:
            raise ParseError("no subtitle cues found")
        return ParsedDocument(title=path.stem, blocks=blocks)
