"""Structure-aware chunking sized in the embedding model's own tokens.

Split at headings, then paragraphs (blocks), then sentences, then lines, and only as a last resort
at token boundaries; pack the pieces back up to the budget. A chunk's text is always an exact
slice of the document text, so its character span can be checked against the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.types import UNITS, Chunk, ParsedDocument

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BLOCK_SEPARATOR = "\n\n"
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9$•\-])")
_LINE_END = re.compile(r"\n+")
_MAX_PREFIX_SHARE = 4  # the title/heading prefix never takes more than 1/4 of the window


@dataclass
class _Piece:
    start: int
    end: int
    tokens: int
    page: int | None
    headings: tuple[str, ...]
    last: int | None = None  # the last unit it spans, where a block spans several (lines); else `page`


class Chunker:
    def __init__(self, tokenizer: Tokenizer, *, max_tokens: int, overlap: int, max_seq_length: int):
        self.tokenizer = tokenizer
        # [CLS] and [SEP] (or their like) take two positions of the model's window.
        self.limit = min(max_tokens, max_seq_length) - 2
        self.overlap = max(0, overlap)
        self._prefix_cache: dict[tuple[str, tuple[str, ...]], tuple[str, int]] = {}

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def prefix(self, title: str, headings: tuple[str, ...]) -> tuple[str, int]:
        """The line prepended to the embedded text, 'Title / Heading / Subheading', and its tokens."""
        key = (title, headings)
        if key not in self._prefix_cache:
            text = " / ".join(x for x in (title, *headings) if x)
            enc = self.tokenizer.encode(text, add_special_tokens=False)
            cap = self.limit // _MAX_PREFIX_SHARE
            if len(enc.ids) > cap:
                text = text[: enc.offsets[cap - 1][1]]
            n = min(len(enc.ids), cap)
            self._prefix_cache[key] = (text, n)
        return self._prefix_cache[key]

    def chunk(self, doc: ParsedDocument) -> tuple[str, list[Chunk]]:
        """Return the document text and its chunks."""
        parts, spans, pos = [], [], 0
        for block in doc.blocks:
            parts.append(block.text)
            spans.append((pos, pos + len(block.text)))
            pos += len(block.text) + len(BLOCK_SEPARATOR)
        text = BLOCK_SEPARATOR.join(parts)

        pieces: list[_Piece] = []
        counts = self.count([b.text for b in doc.blocks])
        # A "line" document's block is numbered by its first line: a piece's lines are counted from there.
        by_line = doc.unit == "line"
        for block, (start, end), n in zip(doc.blocks, spans, counts):
            budget = self._budget(doc.title, block.headings)
            line, at = block.page, start
            if n <= budget:
                last = line + block.text.count("\n") if by_line and line is not None else line
                pieces.append(_Piece(start, end, n, line, block.headings, last))
                continue
            seps = [_LINE_END] if block.kind in ("table", "code", "list") else [_SENTENCE_END, _LINE_END]
            for s, e, k in self._split(text, start, end, budget, seps):
                if by_line and line is not None:
                    line += text.count("\n", at, s)
                    pieces.append(_Piece(s, e, k, line, block.headings, line + text.count("\n", s, e)))
                    at = s
                else:
                    pieces.append(_Piece(s, e, k, block.page, block.headings, block.page))
        return text, self._pack(doc, text, pieces)

    def _budget(self, title: str, headings: tuple[str, ...]) -> int:
        return self.limit - self.prefix(title, headings)[1] - 1

    def _split(self, text: str, start: int, end: int, budget: int, seps: list[re.Pattern[str]]) -> list[tuple[int, int, int]]:
        """Split text[start:end] into (start, end, tokens) spans of at most `budget` tokens."""
        if not seps:
            return self._token_windows(text, start, end, budget)
        spans, cursor = [], start
        for m in seps[0].finditer(text, start, end):
            spans.append((cursor, m.start()))
            cursor = m.end()
        spans.append((cursor, end))
        spans = [(s, e) for s, e in spans if text[s:e].strip()]
        if len(spans) <= 1:
            return self._split(text, start, end, budget, seps[1:])
        out: list[tuple[int, int, int]] = []
        for (s, e), n in zip(spans, self.count([text[s:e] for s, e in spans])):
            out.extend([(s, e, n)] if n <= budget else self._split(text, s, e, budget, seps[1:]))
        return out

    def _token_windows(self, text: str, start: int, end: int, budget: int) -> list[tuple[int, int, int]]:
        enc = self.tokenizer.encode(text[start:end], add_special_tokens=False)
        offsets = enc.offsets
        out = []
        for i in range(0, len(offsets), budget):
            window = offsets[i : i + budget]
            out.append((start + window[0][0], start + window[-1][1], len(window)))
        return out

    def _pack(self, doc: ParsedDocument, text: str, pieces: list[_Piece]) -> list[Chunk]:
        chunks: list[Chunk] = []
        current: list[_Piece] = []
        breaks = UNITS.get(doc.unit, UNITS["page"])[2]  # rows pack; pages, slides, messages break

        def flush(carry_overlap: bool) -> list[_Piece]:
            if not current:
                return []
            self._emit(doc, text, current, chunks)
            if not carry_overlap or self.overlap == 0:
                return []
            tail: list[_Piece] = []
            total = 0
            for p in reversed(current[1:]):  # never carry the whole previous chunk
                if total + p.tokens > self.overlap:
                    break
                tail.insert(0, p)
                total += p.tokens
            return tail

        for piece in pieces:
            if current:
                budget = self._budget(doc.title, current[0].headings)
                size = sum(p.tokens for p in current)
                if piece.headings != current[0].headings:
                    current = flush(False)
                elif breaks and piece.page != current[-1].page and size >= budget // 3:
                    # A new page (slide, message) starts a new chunk unless the current one is still small:
                    # citations stay on one page wherever that costs little.
                    current = flush(False)
                elif size + piece.tokens > budget:
                    current = flush(True)
                    while current and sum(p.tokens for p in current) + piece.tokens > budget:
                        current.pop(0)
            current.append(piece)
        flush(False)
        return chunks

    def _emit(self, doc: ParsedDocument, text: str, pieces: list[_Piece], out: list[Chunk]) -> None:
        start, end = pieces[0].start, pieces[-1].end
        body = text[start:end]
        headings = pieces[0].headings
        prefix, _ = self.prefix(doc.title, headings)
        pages = [p.page for p in pieces if p.page is not None] + [p.last for p in pieces if p.last is not None]
        out.append(
            Chunk(
                ord=len(out),
                text=body,
                embed_text=f"{prefix}\n{body}" if prefix else body,
                headings=headings,
                page_start=min(pages) if pages else None,
                page_end=max(pages) if pages else None,
                char_start=start,
                char_end=end,
                tokens=sum(p.tokens for p in pieces),
            )
        )
