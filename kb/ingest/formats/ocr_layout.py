"""Tesseract's words (its `image_to_data` table) put back into paragraphs in reading order, with tables
read row by row.

Tesseract's layout analysis finds columns: right for a page set in two or three columns of prose,
wrong for a table, whose columns it reads one after the other, so that '2009 issuance ... $520' comes
out as a list of labels and, much later, a list of amounts. A row without its label means nothing to
a reader or a search, so side-by-side blocks that look like a table's columns are read across instead.
The rule is geometry only: blocks beside each other (sharing half the height of the shorter, or of the
wide one) where at most one is wide (a quarter of the text's width or more) are a table; prose columns
are all wide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDE = 0.25  # share of the page's text width from which a block is a column of prose, not of a table
BESIDE = 0.5  # blocks are side by side when they share this much of the shorter one's height


@dataclass
class _Line:
    words: list[str]
    left: int
    top: int
    right: int
    bottom: int

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass
class _Block:
    paragraphs: list[list[_Line]] = field(default_factory=list)

    @property
    def lines(self) -> list[_Line]:
        return [line for para in self.paragraphs for line in para]

    def box(self) -> tuple[int, int, int, int]:
        lines = self.lines
        return (min(x.left for x in lines), min(x.top for x in lines), max(x.right for x in lines),
                max(x.bottom for x in lines))


def paragraphs(data: dict[str, list[Any]]) -> list[str]:
    """The text of tesseract's output as paragraphs (lines kept), blocks in its order, tables by rows."""
    blocks = _blocks(data)
    if not blocks:
        return []
    groups = _tables(blocks)
    out: list[str] = []
    done: set[int] = set()
    for i, block in enumerate(blocks):
        if i in done:
            continue
        group = groups.get(i)
        if group is None:
            out.extend("\n".join(" ".join(line.words) for line in para) for para in block.paragraphs)
            continue
        done.update(group)
        out.append("\n".join(" ".join(w for line in row for w in line.words)
                             for row in _rows([line for j in group for line in blocks[j].lines])))
    return [p for p in out if any(c.isalnum() for c in p)]  # specks read as "." or "|" are no paragraph


def _blocks(data: dict[str, list[Any]]) -> list[_Block]:
    """Words with a confidence (others are layout entries, not words) into blocks > paragraphs > lines."""
    blocks: dict[tuple[int, int], dict[int, dict[int, _Line]]] = {}
    for i, word in enumerate(data.get("text", [])):
        word = (word or "").strip()
        if not word or float(data["conf"][i]) < 0:
            continue
        left, top = int(data["left"][i]), int(data["top"][i])
        right, bottom = left + int(data["width"][i]), top + int(data["height"][i])
        paras = blocks.setdefault((data["page_num"][i], data["block_num"][i]), {})
        lines = paras.setdefault(data["par_num"][i], {})
        line = lines.get(data["line_num"][i])
        if line is None:
            lines[data["line_num"][i]] = _Line([word], left, top, right, bottom)
            continue
        line.words.append(word)
        line.left, line.top = min(line.left, left), min(line.top, top)
        line.right, line.bottom = max(line.right, right), max(line.bottom, bottom)
    return [_Block([list(lines.values()) for lines in paras.values()]) for paras in blocks.values()]


def _tables(blocks: list[_Block]) -> dict[int, list[int]]:
    """Block index -> the indices of its table (blocks side by side, at most one of them wide)."""
    boxes = [b.box() for b in blocks]
    width = max(b[2] for b in boxes) - min(b[0] for b in boxes)
    parent = list(range(len(blocks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    wide = [b[2] - b[0] >= WIDE * width for b in boxes]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            apart = a[2] <= b[0] or b[2] <= a[0]
            shared = min(a[3], b[3]) - max(a[1], b[1])
            # Beside a wide block, a narrow one must run along most of it (a table's label column and its
            # figures), not be a heading or page number level with its first line.
            pick = max if wide[i] or wide[j] else min
            if apart and shared >= BESIDE * pick(a[3] - a[1], b[3] - b[1]):
                parent[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(len(blocks)):
        members.setdefault(root(i), []).append(i)
    out: dict[int, list[int]] = {}
    for group in members.values():
        if len(group) > 1 and sum(wide[i] for i in group) <= 1:
            out.update((i, group) for i in group)
    return out


def _rows(lines: list[_Line]) -> list[list[_Line]]:
    """Lines of several columns into rows: by their middles, a row ending where the next line starts
    more than half a line's height lower; each row left to right."""
    heights = sorted(line.bottom - line.top for line in lines)
    tolerance = heights[len(heights) // 2] / 2
    rows: list[list[_Line]] = []
    for line in sorted(lines, key=lambda x: x.middle):
        if rows and line.middle - sum(x.middle for x in rows[-1]) / len(rows[-1]) <= tolerance:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda x: x.left) for row in rows]
