"""LangChain retriever over a kb knowledge base: `KBRetriever`, installed with the `langchain` extra.

Each hit becomes a `Document` whose `page_content` is the chunk text, whose `id` is the chunk id and
whose `metadata` carries the citation (source, page, page_end, section, citation) plus score, rank,
chunk_id and file_type. Only the public `KnowledgeBase` API is used, so any vector store works.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.api import KnowledgeBase
from kb.errors import ConfigError, MissingExtraError, install_command
from kb.filters import Filters
from kb.types import Hit

if TYPE_CHECKING:
    from typing_extensions import Self

INSTALL_HINT = install_command("langchain")


try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import run_in_executor
    from pydantic import ConfigDict, Field, PrivateAttr, model_validator
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingExtraError(f"langchain-core is not available ({e.name or e}): {INSTALL_HINT}") from e

__all__ = ["KBRetriever", "MissingExtraError", "hit_to_document"]

PagesArg = tuple[int, int] | list[int] | int | str | None
_FILTER_FIELDS = ("path", "file_type", "pages", "section")


def _pages(value: PagesArg) -> tuple[int, int] | None:
    """`12`, `"12"`, `"3-7"`, `(3, 7)` or `[3, 7]` -> an inclusive page range."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError(f"pages must be a page number or a range, got {value!r}")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        return Filters.parse_pages(value)
    lo, hi = (int(v) for v in value)
    return Filters.parse_pages(f"{lo}-{hi}")


def _merge_filters(base: Filters | None, **overrides: Any) -> Filters | None:
    """`base` with the plain-keyword filters that were given (not None) laid over it."""
    if isinstance(base, dict):
        base = Filters(**base)
    given = {name: value for name, value in overrides.items() if value is not None}
    if "pages" in given:
        given["pages"] = _pages(given["pages"])
    if not given:
        return base
    return replace(base or Filters(), **given)


def hit_to_document(hit: Hit) -> Document:
    """A search hit as a LangChain `Document`; `Document.id` is the chunk id as a string."""
    return Document(
        id=str(hit.chunk_id),
        page_content=hit.text,
        metadata={
            "source": hit.source,
            "page": hit.page,
            "page_end": hit.page_end,
            "section": hit.section,
            "score": hit.score,
            "rank": hit.rank,
            "chunk_id": hit.chunk_id,
            "file_type": hit.file_type,
            "citation": hit.citation,
            # Other files holding the very same passage, where the KB reports them (as `kb search --json`).
            **({"also": list(hit.also)} if getattr(hit, "also", None) else {}),
        },
    )


class KBRetriever(BaseRetriever):
    """Retrieves passages from a kb knowledge base, with their citations in `Document.metadata`.

    >>> retriever = KBRetriever.from_kb("./.kb", k=4, path="*2023*")   # doctest: +SKIP
    >>> retriever.invoke("failover region of the payments service")      # doctest: +SKIP
    >>> retriever.invoke("failover", k=2, pages="1-10")                  # per-call overrides  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid")

    knowledge_base: KnowledgeBase | Path | str | None = None
    """An open `KnowledgeBase`, or its folder (None: `$KB_DIR`, the nearest `.kb/`, the user data dir)."""
    k: int = 4
    """How many passages to return."""
    mode: str | None = None
    """Search mode passed to `KnowledgeBase.search` (hybrid | dense | keyword); None: the KB's default."""
    filters: Filters | None = None
    """Restrict the search: source glob, file type, page range, section (see `kb.filters.Filters`)."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments for `KnowledgeBase.search` (e.g. `{"rerank": "cross-encoder/..."}`)."""

    _owns_kb: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _fold_filter_keywords(cls, data: Any) -> Any:
        """Accept `path=`, `file_type=`, `pages=`, `section=` as shorthands for `filters=`."""
        if isinstance(data, dict) and any(name in data for name in _FILTER_FIELDS):
            data = dict(data)
            plain = {name: data.pop(name) for name in _FILTER_FIELDS if name in data}
            data["filters"] = _merge_filters(data.get("filters"), **plain)
        return data

    @model_validator(mode="after")
    def _open_knowledge_base(self) -> KBRetriever:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not isinstance(self.knowledge_base, KnowledgeBase):
            self.knowledge_base = KnowledgeBase.open(self.knowledge_base)
            self._owns_kb = True
        return self

    @classmethod
    def from_kb(
        cls, kb: KnowledgeBase | str | os.PathLike[str] | None = None, k: int = 4, **search_options: Any
    ) -> KBRetriever:
        """A retriever over `kb` (an open `KnowledgeBase` or its folder).

        `search_options`: `mode`, `filters` (a `Filters`), or the filter shorthands `path`,
        `file_type`, `pages` (`12`, `"3-7"`, `(3, 7)`), `section`; `search_kwargs` (a dict of
        further `KnowledgeBase.search` arguments); plus any `BaseRetriever` field (`tags`, `metadata`).
        """
        if isinstance(kb, os.PathLike):
            kb = Path(kb)
        return cls(knowledge_base=kb, k=k, **search_options)

    @property
    def kb(self) -> KnowledgeBase:
        assert isinstance(self.knowledge_base, KnowledgeBase)
        return self.knowledge_base

    def close(self) -> None:
        """Close the knowledge base if this retriever opened it (one passed in stays open)."""
        if self._owns_kb:
            self.kb.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
        path: str | None = None,
        file_type: str | None = None,
        pages: PagesArg = None,
        section: str | None = None,
    ) -> list[Hit]:
        """The raw `Hit`s for `query`; per-call arguments override the retriever's fields."""
        k = self.k if k is None else k
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        base = filters if filters is not None else self.filters
        merged = _merge_filters(base, path=path, file_type=file_type, pages=pages, section=section)
        options: dict[str, Any] = {**self.search_kwargs, "k": k, "filters": merged}
        mode = mode or self.mode
        if mode is not None:
            # Only when asked for, so this works with a KnowledgeBase.search that has no `mode`.
            options["mode"] = mode
        # `ainvoke` and `batch` call this from worker threads: a `KnowledgeBase` is safe to share between them.
        return self.kb.search(query, **options)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
        path: str | None = None,
        file_type: str | None = None,
        pages: PagesArg = None,
        section: str | None = None,
    ) -> list[Document]:
        hits = self.search(
            query, k=k, mode=mode, filters=filters, path=path, file_type=file_type, pages=pages, section=section
        )
        return [hit_to_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        mode: str | None = None,
        filters: Filters | None = None,
        path: str | None = None,
        file_type: str | None = None,
        pages: PagesArg = None,
        section: str | None = None,
    ) -> list[Document]:
        # The search is CPU-bound (embedding) and blocking (SQLite, FAISS): run it in a worker thread.
        # BaseRetriever's default would drop the keyword arguments, hence this override.
        return await run_in_executor(
            None,
            self._get_relevant_documents,
            query,
            run_manager=run_manager.get_sync(),
            k=k,
            mode=mode,
            filters=filters,
            path=path,
            file_type=file_type,
            pages=pages,
            section=section,
        )
