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


STORE_META = "kb.store"  # click context key holding the store options given


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--store, --store-uri, --collection: where the vectors live (on Milvus, the whole team knowledge
    base). They reach `Settings` through the click context, so a command needs no parameters for them."""

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.meta.setdefault(STORE_META, {})[param.name] = value
        return value

    decorators = [
        click.option("--store", type=click.Choice(["faiss", "milvus"], case_sensitive=False), envvar="KB_STORE",
                     show_envvar=True, expose_value=False, callback=remember,
                     help="Vector store: faiss (a file in the KB folder) or milvus (a team knowledge base) "
                     "[default: faiss]."),
        click.option("--store-uri", metavar="URI", envvar="KB_STORE_URI", show_envvar=True, expose_value=False,
                     callback=remember, help="Milvus: http://host:19530 (a server), or a Milvus Lite path ending in "
                     ".db (one process at a time) [default: milvus.db in the KB folder]."),
        click.option("--collection", metavar="NAME", envvar="KB_COLLECTION", show_envvar=True, expose_value=False,
                     callback=remember, help="Milvus: the knowledge base's name on the server [default: kb]."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f
