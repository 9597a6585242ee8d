"""A hit's snippet for the terminal: the query's terms in bold, the way ripgrep shows a match."""

from __future__ import annotations

import click

from kb.answer.citations import shorten
from kb.types import Hit


def snippet_line(hit: Hit, width: int = 300) -> str:
    """The hit's snippet (`kb.query.snippet`) with its matches bold; click drops the styling when
    the output is not a terminal. A hit without one shows the start of its text."""
    if hit.snippet is None:
        return shorten(hit.text, width)
    return "".join(click.style(piece, bold=True) if match else piece for piece, match in hit.snippet.segments())
