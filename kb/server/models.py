"""The request bodies of the `kb serve` API: what a client may send, with its bounds (pydantic)."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, Field

from kb.answer.chat import KEPT_TURNS
from kb.answer.generate import QUESTION_MAX
from kb.config import MODES
from kb.filters import Filters, parse_where
from kb.ingest.base import file_types

FileType = Literal[tuple(file_types())]  # type: ignore[valid-type]
Mode = Literal[MODES]  # type: ignore[valid-type]


class Generation(TypedDict):
    """The generation options of a question, as `KnowledgeBase.ask` takes them."""

    temperature: float | None
    top_p: float | None
    top_k: int | None
    max_tokens: int


class _Filters(BaseModel):
    path: str | None = Field(None, max_length=500, description="Glob on the source path, e.g. 'reports/*2023*'.")
    type: FileType | None = Field(None, description="Only this file type.")  # type: ignore[valid-type]
    pages: str | None = Field(None, max_length=20, description="Only passages on these pages: 12 or 3-7.")
    section: str | None = Field(None, max_length=500, description="Only passages whose section path contains this.")
    where: dict[str, Annotated[str, Field(max_length=500)]] | None = Field(
        None, max_length=10, description="Only documents whose metadata fields hold these texts, e.g. {\"from\": \"ada\"}.")

    def filters(self) -> Filters:
        return Filters(path=self.path, file_type=self.type, pages=Filters.parse_pages(self.pages), section=self.section,
                       where=parse_where(self.where))


class SearchRequest(_Filters):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=100, description="Number of passages.")
    mode: Mode | None = Field(None, description="hybrid (default), dense or keyword.")


class AskRequest(_Filters):
    question: str = Field(min_length=1, max_length=QUESTION_MAX)
    k: int = Field(5, ge=1, le=100, description="Passages to retrieve.")
    temperature: float | None = Field(None, ge=0, le=5)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0, le=1000)
    max_tokens: int = Field(512, ge=1, le=4096)

    def generation(self) -> Generation:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "max_tokens": self.max_tokens}

    def turns(self) -> list[dict[str, str]]:
        return []  # a GET URL carries no conversation: POST one (`AskBody`)


class _Turn(BaseModel):
    question: str = Field(min_length=1, max_length=QUESTION_MAX)
    answer: str = Field("", max_length=20000, description="The answer as it was shown (its [n] markers may stay).")


class AskBody(AskRequest):
    history: list[_Turn] = Field(
        default_factory=list, max_length=KEPT_TURNS,
        description=f"Earlier turns of this conversation, oldest first (at most {KEPT_TURNS}: send the latest). "
                    "With an LLM, a follow-up is rewritten to stand alone before it is searched (`rewritten` in "
                    "the answer); without one it is searched as typed. Not kept by the server.")

    def turns(self) -> list[dict[str, str]]:
        return [t.model_dump() for t in self.history]


class IngestRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=100,
                             description="Files or folders on the server, inside a --docs folder.")
