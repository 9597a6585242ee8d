"""A question whose name and period the folder holds, but not together: "not found", not the passages
of another subject or another year. A real knowledge base of documents written for the class (the
packaged model): a grocer's annual report that names a carmaker once among its hauliers, another
carmaker's quarterly note, two yearly reports of a toolmaker beside an unrelated history that names
an earlier year, a training log whose dates are written 2024-02-20, and a report whose file name
alone names its holder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kb import KnowledgeBase
from tests.helpers import write_markdown

GROCER = """# Marlow Foods annual report 2022

Marlow Foods sold groceries through 212 stores in 2022. Our hauliers include Ford, which leases us
forty delivery trucks, and two regional carriers. Store sales rose 4% to 1,930 million pounds.
Our senior notes fall due in 2026 and will be repaid from cash on hand.
"""
CARMAKER = """# Voltic Motors quarterly update, third quarter of 2023

Voltic Motors delivered 48,000 vehicles in the third quarter of 2023, up from 41,500 a year earlier.
Deliveries of the Voltic Arc crossover made up half of the total.
"""
TOOLMAKER = """# Harwick Tools annual report {year}

Harwick Tools makes hand tools for builders. Revenue for {year} was {revenue} million pounds, and the
workshop in Leeds added a second shift. The board proposes a dividend of 12 pence a share.
"""
HISTORY = """# A short history of the Leeds canal

The canal reopened to boats in 2015 after a restoration that took six years. Volunteers cleared the
locks and a new towpath was laid along its length.
"""
UNNAMED = """# Annual report 2023

The Company's revenue for 2023 was 41 million pounds, from its foundries in Sheffield and Derby.
"""
TRAINING = """Employee,Course,Date,Hours
Aisha Khan,Mental health first aid,2024-01-18,14
Sam Patel,Cloud data engineering,2024-02-20,21
Tom Hughes,Fork-lift safety,2024-03-05,7
"""


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    root = tmp_path_factory.mktemp("apart")
    docs = root / "docs"
    write_markdown(docs / "marlow-annual.md", GROCER)
    write_markdown(docs / "voltic-update.md", CARMAKER)
    write_markdown(docs / "harwick-2021.md", TOOLMAKER.format(year=2021, revenue="38.2"))
    write_markdown(docs / "harwick-2022.md", TOOLMAKER.format(year=2022, revenue="41.6"))
    write_markdown(docs / "canal-history.md", HISTORY)
    write_markdown(docs / "training-log.csv", TRAINING)
    write_markdown(docs / "ACME_2023_report.md", UNNAMED)
    with KnowledgeBase.open(root / "kb") as k:
        assert not k.ingest([str(docs)]).failed
        yield k


def test_a_name_the_folder_mentions_only_in_another_year_is_not_answered_with_another_subject(kb: KnowledgeBase) -> None:
    answer = kb.ask("How many vehicles did Ford deliver in 2023?", llm="none")
    assert not answer.found and "Voltic" not in answer.answer
    assert answer.answer == "Not found in the knowledge base: no document mentions both Ford and 2023."
    answer = kb.ask("How many vehicles did Voltic Motors deliver in 2023?", llm="none")
    assert answer.found and "48,000" in answer.answer.split("\n")[0]


def test_a_period_no_document_about_the_name_mentions_is_not_found(kb: KnowledgeBase) -> None:
    answer = kb.ask("What was the revenue of Harwick Tools in 2015?", llm="none")  # 2015 is the canal's year, not Harwick's
    assert not answer.found
    assert answer.answer == "Not found in the knowledge base: no document mentions both Harwick Tools and 2015."
    answer = kb.ask("What was the revenue of Harwick Tools in 2022?", llm="none")
    assert answer.found and "41.6" in answer.answer.split("\n")[0]


def test_a_month_is_held_by_a_day_written_in_it(kb: KnowledgeBase) -> None:
    answer = kb.ask("What course did Sam Patel take in February 2024?", llm="none")
    assert answer.found and "Cloud data engineering" in answer.answer.split("\n")[0]
    assert not kb.ask("What course did Sam Patel take in June 2024?", llm="none").found


def test_a_name_its_file_name_alone_gives_is_held(kb: KnowledgeBase) -> None:
    answer = kb.ask("What was Acme's revenue in 2023?", llm="none")  # "ACME_2023_report.md": "_" joins words
    assert answer.found and "41 million" in answer.answer.split("\n")[0]
