"""A question that names a company finds that company's reports whatever else the folder holds: the
same reports, searched alone and beside 200 everyday office files (benchmarks/office.py), put the
named company's reports first both times. Reports written here: three fictional companies, two
quarters each, one of which discusses foreign exchange at length."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb import KnowledgeBase
from tests.helpers import FAKE

COMPANIES = {
    # name -> how many of each report's sections discuss foreign exchange, and its business
    "Zephyr Freight": (9, "ships containers between Asia, Europe and the Americas"),
    "Acme Robotics": (1, "builds welding robots for car plants"),
    "Borealis Foods": (1, "makes frozen meals for supermarkets"),
}
QUARTERS = {"Q1 2024": "March 31, 2024", "Q2 2024": "June 30, 2024"}
# As in a filing, a section names its company and the quarter, then speaks of "the Company".
FX = ("Foreign exchange rates affected the Company's financial performance: a stronger dollar against the "
      "euro and the yen lowered reported revenue by {n} million dollars, and hedging losses on foreign currency "
      "forward contracts were {m} million dollars. Foreign exchange rate movements are expected to continue.")
BODY = [
    "Revenue for the quarter was {r} million dollars and gross margin was {g} percent of revenue.",
    "Operating expenses rose because of higher salaries, rent and research and development spending.",
    "Cash and cash equivalents at the end of the quarter were {c} million dollars; no debt was repaid.",
    "The Company repurchased no shares during the quarter and paid its regular quarterly dividend.",
    "Risk factors are unchanged from the annual report; supply chain costs remain the largest risk.",
    "Headcount at the end of the quarter was {h} employees, most of them in manufacturing and sales.",
    "Capital expenditure was {x} million dollars, mostly for new equipment and warehouse software.",
    "Legal proceedings: no new matters arose during the quarter that the Company considers material.",
    "Income tax expense was {t} million dollars, an effective tax rate of twenty one percent.",
    "Inventories were {i} million dollars at the end of the quarter, up from the prior quarter.",
]


def write_reports(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for c, (name, (fx_sections, business)) in enumerate(COMPANIES.items()):
        for q, (quarter, ended) in enumerate(QUARTERS.items()):
            n = 10 * c + q + 3
            sections = [f"# {name} quarterly report, {quarter}",
                        f"{name} {business}. This report covers the quarter ended {ended}."]
            for k, text in enumerate(BODY):
                body = text.format(r=100 + n, g=30 + n % 9, c=50 + n, h=900 + n, x=n, t=n + 1, i=70 + n)
                named = f"{name} reports: " if k % 4 == 0 else ""  # as in a filing, the name now and then
                sections += [f"## Note {k + 1}, {quarter}", named + body + " " + body]
                if k < fx_sections:
                    sections.append(FX.format(n=n + k, m=k + 1))
            path = folder / f"{name.split()[0].lower()}-{quarter.replace(' ', '-').lower()}.md"
            path.write_text("\n\n".join(sections) + "\n")


def top_companies(kb: KnowledgeBase, question: str, k: int = 3) -> list[str]:
    return [Path(h.source).name.split("-")[0] for h in kb.search(question, k=k)]


@pytest.mark.slow
def test_the_named_companys_reports_come_first_with_or_without_other_files(tmp_path: Path) -> None:
    from benchmarks.office import build_office

    reports = tmp_path / "docs" / "reports"
    reports.mkdir(parents=True)
    write_reports(reports)
    alone = KnowledgeBase.open(tmp_path / "alone", **FAKE)
    alone.ingest([reports])

    build_office(tmp_path / "docs" / "office", 200)
    mixed = KnowledgeBase.open(tmp_path / "mixed", **FAKE)
    report = mixed.ingest([tmp_path / "docs"])
    assert len(report.added) == 206 and not report.failed

    for question, company in [
        ("What is the impact of foreign exchange rates on Acme Robotics's financial performance?", "acme"),
        ("how have foreign exchange rates affected Borealis Foods financial results", "borealis"),
    ]:
        assert top_companies(alone, question) == [company] * 3, question
        assert top_companies(mixed, question) == [company] * 3, question  # unmoved by 200 other files
    # A question that names no company: the reports that discuss it most, in either folder.
    question = "How did foreign currency hedging losses affect reported revenue?"
    assert top_companies(alone, question, k=2) == top_companies(mixed, question, k=2) == ["zephyr"] * 2


def test_a_question_comparing_two_companies_or_two_quarters_gets_both(tmp_path: Path) -> None:
    """The top k are shared between the sides a question compares, even where one side's passages
    outrank the other's throughout (Zephyr's foreign exchange fills more of its reports)."""
    write_reports(tmp_path / "docs")
    kb = KnowledgeBase.open(tmp_path / "kb", **FAKE)
    kb.ingest([tmp_path / "docs"])
    both = top_companies(kb, "Compare the foreign exchange impact on Zephyr Freight and Acme Robotics", k=4)
    assert sorted(both) == ["acme", "acme", "zephyr", "zephyr"]
    quarters = [Path(h.source).stem for h in kb.search("Zephyr Freight revenue in Q1 2024 against Q2 2024", k=4)]
    assert sorted(quarters) == ["zephyr-q1-2024"] * 2 + ["zephyr-q2-2024"] * 2
    # One company, one period: nothing is shared out (the three best passages are all Zephyr's).
    assert top_companies(kb, "What did foreign exchange rates do to Zephyr Freight's revenue?") == ["zephyr"] * 3


@pytest.mark.parametrize(("question", "compares"), [
    ("How did Intel's and AMD's gross margins compare?", True),
    ("Zephyr Freight revenue in Q1 2024 against Q2 2024", True),
    ("What was the difference between Acme's revenue and Borealis's?", True),
    ("How much did Acme Robotics pay Zephyr Freight for shipping?", False),  # two names, no comparison
    ("What was Microsoft's revenue from Nvidia in 2023?", False),
])
def test_only_a_question_that_compares_is_split_into_sides(question: str, compares: bool) -> None:
    from kb.query.facets import _compares
    from kb.question import read

    asked = read(question)
    terms = [n.text for n in asked.names] if len(asked.names) >= 2 else [p.text for p in asked.periods]
    assert _compares(question, terms) == compares


def test_the_shared_top_k_still_holds_k_hits() -> None:
    """Each side's best, then the rest in rank order; a page past its share moves down, never out."""
    from kb.query.search import share
    from kb.types import Hit

    def hit(chunk: int, doc: int, page: int, score: float) -> Hit:
        return Hit(0, score, chunk, f"doc{doc}.pdf", page, page, None, f"text {chunk}", doc_id=doc)

    ranked = [hit(1, 1, 1, 0.9), hit(2, 1, 1, 0.8), hit(3, 1, 1, 0.7), hit(4, 2, 5, 0.6), hit(5, 1, 1, 0.5)]
    shared = share(ranked, [[ranked[0]], [ranked[3]]], 4)
    assert [h.chunk_id for h in shared] == [1, 4, 2, 3] and [h.rank for h in shared] == [1, 2, 3, 4]
