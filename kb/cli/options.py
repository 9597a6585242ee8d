"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from kb.query.filters import Filters


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--path, --type, --pages, --section; the command receives them as one `filters` argument."""
    decorators = [
        click.option("--path", "f_path", metavar="GLOB", help="Only sources matching this glob, e.g. 'reports/*2023*'."),
        click.option("--type", "f_type", type=click.Choice(["pdf", "docx", "markdown", "html", "text"]),
                     help="Only this file type."),
        click.option("--pages", "f_pages", metavar="N|A-B", help="Only passages on these pages."),
        click.option("--section", "f_section", metavar="TEXT", help="Only passages whose section path contains TEXT."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def pop_filters(kwargs: dict[str, Any]) -> Filters:
    return Filters(
        path=kwargs.pop("f_path", None),
        file_type=kwargs.pop("f_type", None),
        pages=Filters.parse_pages(kwargs.pop("f_pages", None)),
        section=kwargs.pop("f_section", None),
    )
