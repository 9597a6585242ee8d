"""A name however the question writes it (kb.query.names): the words a question's case leaves open
("Brackwater operating income", "unpaid leave fernhill") are names when the documents write them as
names, and a question that names its subject first or in lower case is answered from that subject's
documents, as one that says "Brackwater's" is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.index.catalog import Catalog
from kb.query.names import written
from kb.question import read
from kb.types import Chunk

# Each document: (file name, text). How each writes a word is what is read, not the question.
DOCUMENTS = [
    ("handbook.md", "Staff at Fernhill Studio get 25 days of annual leave.\nForms go to hr@fernhill.example by "
                    "Friday, and the office manager files them.\nThe office is open from eight until six."),
    ("invite.eml", "Dear all, the offsite is hosted by Fernhill in Leeds this year.\nPlease reply to "
                   "events@fernhill.example before the end of the month."),
    ("mail.eml", "From: dan@fernhill.example\nTo: all@fernhill.example\nthe server is down tonight"),
    ("software.pdf", "Revenue from Office grew as customers moved to the cloud.\nSales of Office rose in every "
                     "region, and the Office suite gained users."),
    ("lease.md", "The lease on our office ends in March.\nOur office is on the second floor, and the office "
                 "kitchen is shared."),
    ("plan.pdf", "Dues are paid by each Active Member of the plan.\nThe rules say an Active Member is one who "
                 "pays dues, and every Active Member may vote."),
    ("users.md", "The number of active users grew in the quarter.\nWe count active accounts once a month, and "
                 "inactive ones are closed."),
    ("staff.md", "Benefits go to active employees only.\nRetired staff and active members alike may join the "
                 "social club."),
]


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    for i, (name, text) in enumerate(DOCUMENTS):
        chunks = [Chunk(0, text, text, (), 1, 1, 0, len(text), 1)]
        catalog.replace_document(path=f"/d/{name}", source=f"/d/{name}", file_type=name.rsplit(".", 1)[1],
                                 sha256=f"{i:064d}", size=len(text), mtime_ns=1, title=name, pages=1, metadata={},
                                 chunks=chunks)
    try:
        yield catalog
    finally:
        catalog.close()


@pytest.mark.parametrize(("question", "names"), [
    # prose writes it with a capital after a lower-case word, and lower-case only in addresses
    ("unpaid leave rules fernhill", {"fernhill"}),
    ("Fernhill pension rules", {"fernhill"}),  # a first word, where grammar capitalises any word
    # one document's product ("Office") among documents that use the word; a defined term ("Active
    # Member") among plain uses: not names
    ("who cleans the office", set()),
    ("how many active members can vote", set()),
    # a question that capitalises its names is read as written: nothing is left open
    ("Who files the forms at Fernhill?", set()),
    ("Summarise the office rules", set()),
])
def test_a_word_is_a_name_where_the_documents_write_it_as_one(catalog: Catalog, question: str,
                                                               names: set[str]) -> None:
    assert written(catalog, question) == names


def test_a_word_the_documents_write_as_a_name_is_one_wherever_the_question_puts_it() -> None:
    lower = read("unpaid leave rules fernhill", frozenset({"fernhill"}))
    assert [n.text for n in lower.names] == ["fernhill"] and lower.content == ("unpaid", "leave", "rules")
    first = read("Fernhill pension rules", frozenset({"fernhill"}))
    assert [n.text for n in first.names] == ["Fernhill"] and "fernhill" not in first.content
    assert read("Fernhill pension rules").names == ()  # the question alone cannot tell it from "Summarise"
    # typed without capitals, two names side by side are two: nothing tells where one would end
    both = read("quillon brackwater revenue", frozenset({"quillon", "brackwater"}))
    assert [n.text for n in both.names] == ["quillon", "brackwater"]
    # a first word that is a name starts a name of several words, as a capital mid-sentence does
    assert [n.text for n in read("Harrow Mills pension rules", frozenset({"harrow"})).names] == ["Harrow Mills"]


REPORT = """# Annual report 2023

{firm} {trade}. In 2023 {orders}, and the {board} of {firm} {plans}.

## Results

For the years ended December 31 (in thousands):

| | 2023 | 2022 |
|---|---|---|
| Revenue | {rows[0]} | {rows[1]} |
| Operating income | {rows[2]} | {rows[3]} |
| Net income | {rows[4]} | {rows[5]} |

Operating costs at {firm} rose with the price of {metal}.
"""
FIRMS = {
    "report-a.md": REPORT.format(firm="Quillon", trade="designs industrial pumps for water utilities",
                                 orders="demand for Quillon pumps rose in every region", board="board",
                                 plans="approved a new plant", metal="steel",
                                 rows=("9,310", "8,720", "1,204", "1,010", "880", "790")),
    "report-b.md": REPORT.format(firm="Brackwater", trade="builds ferries for coastal operators",
                                 orders="orders for Brackwater ferries doubled", board="directors",
                                 plans="opened a second yard", metal="aluminium",
                                 rows=("14,400", "11,050", "2,316", "1,725", "1,610", "1,240")),
    "pension-plan.md": "# Retirement plan\n\nHarrow Mills pays an employer pension contribution of 6% of salary "
                       "into the plan. Employees of Harrow Mills may add up to 10% of their own salary, and the "
                       "contribution vests after two years.\n",
}


@pytest.fixture(scope="module")
def firms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    """Two firms' reports with the same rows under neutral file names, a note naming both, and another
    firm's pension plan: the real embedding model."""
    root = tmp_path_factory.mktemp("firms")
    docs = root / "docs"
    docs.mkdir()
    for name in ("report-a.md", "report-b.md", "pension-plan.md"):
        (docs / name).write_text(FIRMS[name], encoding="utf-8")
    (docs / "minutes.md").write_text("# Supplier review\n\nThe review compared our suppliers of pumps and ferries. "
                                     "Quillon delivered on time; Brackwater was late twice. Both were asked for "
                                     "their operating income and order books before the next tender.\n", encoding="utf-8")
    with KnowledgeBase.open(root / "kb") as kb:
        kb.ingest([str(docs)])
        yield kb


@pytest.mark.parametrize("question", ["Brackwater operating income in 2023", "brackwater operating income 2023",
                                      "What was Brackwater's operating income in 2023?"])
def test_a_question_naming_its_subject_first_or_in_lower_case_is_answered_from_its_documents(
        firms: KnowledgeBase, question: str) -> None:
    answer = firms.ask(question, llm="none")
    assert "2,316" in answer.answer.splitlines()[0]
    assert {Path(c.source).name for c in answer.citations} == {"report-b.md"}  # not Quillon's report too


@pytest.mark.parametrize("question", ["Quillon employer pension contribution", "quillon employer pension contribution"])
def test_not_found_for_a_firm_named_first_or_in_lower_case_says_what_its_documents_lack(
        firms: KnowledgeBase, question: str) -> None:
    answer = firms.ask(question, llm="none")
    # what no passage about Quillon holds; Quillon itself the folder holds
    assert not answer.found and "pension" in answer.answer and "quillon" not in answer.answer.lower()
