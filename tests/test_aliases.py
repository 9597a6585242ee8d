"""Aliases learned from the documents at ingest (kb.ingest.aliases): a defined term ("J&J"), a code the
first page pairs with its holder's name (a ticker), an acronym a document uses ("IBM"). A question
naming one, in any case, finds its holder's documents (kb.query.aliases), and is not answered "not
found" for want of that word; an alias no document defines nor mentions still is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.api import KnowledgeBase
from kb.filters import Filters, parse_where
from kb.ingest.aliases import document_aliases
from kb.query.aliases import Alias, expand
from kb.types import Block, ParsedDocument
from tests.helpers import FAKE, write_markdown, write_pdf


def learned(*pages: str) -> dict[str, object]:
    return document_aliases(ParsedDocument("t", [Block(text, page=n) for n, text in enumerate(pages, start=1)]))


def test_a_defined_term_is_an_alias_of_the_name_it_follows_a_role_word_is_not() -> None:
    found = learned('Johnson & Johnson ("J&J") makes medicines. Acme Holdings, Inc. (the "Acme" or "AHI") '
                    'sells tools. This agreement (the "Agreement") binds Initrode Corp. (the "Company", "we", '
                    '"us" or "our").')
    assert found["aliases"] == {"J&J": "Johnson & Johnson", "AHI": "Acme Holdings, Inc."}
    # with curly quotes, and a term spelled out from inside the name's words
    found = learned("Northwind Exchange Ltd. (“NWX”) trades grain. Northwind Exchange Ltd. (the “Company”).")
    assert found["aliases"] == {"NWX": "Northwind Exchange Ltd."}


def test_a_code_the_first_page_pairs_with_its_holders_name_is_an_alias() -> None:
    cover = ("ANNUAL REPORT FOR THE YEAR ENDED DECEMBER 31, 2023\nQuillon Dynamics Corporation\n"
             "Title of each class Trading Symbol(s) Name of each exchange on which registered\n"
             "Common Stock, $0.01 par value QLDY NYSE\nIndicate by check mark: YES NO")
    assert learned(cover, "Revenue rose.")["aliases"] == {"QLDY": "Quillon Dynamics Corporation"}
    # the label below its row, then a heading in capitals and a field's value: no code but the ticker
    cover = ("April 1, 2023\nQuillon Dynamics Corporation\nCommon Stock QLDY New York Stock Exchange\n"
             "(Title of each class) (Trading symbol) (Exchange)\nSECURITIES REGISTERED PURSUANT TO SECTION 12(G):\n"
             "NONE\nNon-accelerated filer")
    assert learned(cover)["aliases"] == {"QLDY": "Quillon Dynamics Corporation"}
    release = "Tarvik Foods Inc. (NASDAQ: TRVK) today reported results for the quarter."
    assert learned(release)["aliases"] == {"TRVK": "Tarvik Foods Inc."}
    # the same code past the first page pairs nothing
    assert learned("Annual report", "Quillon Dynamics Corporation\nTrading Symbol QLDY") == {}


def test_an_acronym_of_a_name_is_an_alias_only_where_the_document_uses_it() -> None:
    cover = "Verity Ocean Holdings\nAnnual report 2023"
    assert learned(cover, "VOH grew its fleet. VOH revenue rose.")["aliases"] == {"VOH": "Verity Ocean Holdings"}
    assert learned(cover, "The fleet grew and revenue rose.") == {}


def test_an_alias_the_document_also_writes_as_a_word_matches_only_in_capitals() -> None:
    found = learned("Costly Goods Trading Corp. (NYSE: COST)\nThe cost of goods rose.")
    assert found["aliases"] == {"COST": "Costly Goods Trading Corp."} and found["aliases_cased"] == ["COST"]


# --- search and "not found" -------------------------------------------------------------------------------------
FIGURES = {"northwind": "41.7", "quillon": "58.2", "verity": "63.9", "harbor": "70.4"}


def reports(folder: Path) -> Path:
    """Four fictional companies' reports, alike but for their names and figures: one defines ("NWX") and
    ("J&J")-style ("N&W"), one has its ticker on its cover only, one uses an acronym of its name."""
    write_markdown(folder / "northwind.md", (
        "# Northwind Exchange Ltd. annual report 2023\n\nNorthwind Exchange Ltd. (“NWX” or “N&W”, the “Company”) "
        "trades grain and timber across the northern ports.\n\n## Results\n\n"
        f"Northwind Exchange revenue for 2023 was {FIGURES['northwind']} million, up on the prior year. "
        "Operating costs rose with fuel prices.\n"))
    write_pdf(folder / "quillon.pdf", [
        "ANNUAL REPORT 2023\nQuillon Dynamics Corporation\nTitle of each class Trading Symbol(s) Exchange\n"
        "Common Stock QLDY NYSE",
        "Business\nQuillon Dynamics designs pumps and valves for water utilities.",
        f"Results\nQuillon Dynamics revenue for 2023 was {FIGURES['quillon']} million, up on the prior year.\n"
        "Operating costs rose with steel prices."])
    write_pdf(folder / "verity.pdf", [
        "Verity Ocean Holdings\nAnnual report 2023",
        "Business\nVOH operates a fleet of coastal ferries. VOH added two vessels.",
        f"Results\nVerity Ocean Holdings revenue for 2023 was {FIGURES['verity']} million, up on the prior year.\n"
        "Operating costs rose with fuel prices."])
    write_markdown(folder / "harbor.md", (
        "# Harbor Lane Foods annual report 2023\n\nHarbor Lane Foods (the “Company”) bakes bread.\n\n## Results\n\n"
        f"Harbor Lane Foods revenue for 2023 was {FIGURES['harbor']} million, up on the prior year. "
        "Operating costs rose with flour prices.\n"))
    return folder


@pytest.fixture(scope="module")
def companies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    folder = tmp_path_factory.mktemp("aliases")
    kb = KnowledgeBase.open(folder / "kb", workers=1, **FAKE)
    kb.ingest([str(reports(folder / "docs"))])
    yield kb
    kb.close()


@pytest.mark.parametrize(("question", "holder"), [
    ("NWX revenue 2023", "northwind"), ("nwx revenue 2023", "northwind"), ("N&W revenue in 2023", "northwind"),
    ("NnW revenue in 2023", "northwind"),  # "&" written as "n", as in "JnJ"
    ("QLDY revenue 2023", "quillon"), ("qldy revenue 2023", "quillon"),
    ("What was VOH's revenue in 2023?", "verity"), ("voh revenue 2023", "verity"),
])
def test_a_question_naming_an_alias_finds_its_holders_document_first(companies: KnowledgeBase, question: str,
                                                                      holder: str) -> None:
    top = companies.search(question, k=3)
    assert Path(top[0].source).stem == holder
    assert any(FIGURES[holder] in h.text for h in top if Path(h.source).stem == holder)


def test_a_question_comparing_two_aliases_holders_finds_both(companies: KnowledgeBase) -> None:
    top = companies.search("Compare NWX's and QLDY's revenue in 2023", k=4)
    assert {"northwind", "quillon"} <= {Path(h.source).stem for h in top}


def test_an_alias_is_not_missing_and_an_unknown_one_still_is(companies: KnowledgeBase) -> None:
    for question in ("Was NnW's revenue for 2023 up on the prior year?", "was qldy revenue for 2023 up on the prior year",
                     "Was QLDY revenue for 2023 up on the prior year?"):
        answer = companies.ask(question, llm="none")
        assert answer.found and answer.missing == [], (question, answer.note)
    # no document defines nor mentions it
    answer = companies.ask("Was ZQXW's revenue for 2023 up on the prior year?", llm="none")
    assert not answer.found and answer.missing == ["ZQXW"], answer.note


def test_a_role_word_is_no_alias(companies: KnowledgeBase) -> None:
    assert set(companies.aliases("Company NWX qldy")) == {"NWX", "qldy"}
    known = set(companies.catalog.aliases())
    assert {"nwx", "n&w", "qldy", "voh"} <= known and "company" not in known
    # each document keeps its aliases in its metadata: `--where aliases=QLDY`
    hits = companies.search("revenue", k=5, filters=Filters(where=parse_where(["aliases=QLDY"])))
    assert hits and {Path(h.source).stem for h in hits} == {"quillon"}


def test_a_knowledge_base_ingested_before_aliases_still_searches(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(reports(tmp_path / "docs"))])
        with kb.catalog.transaction() as db:  # as kb wrote it before it learned aliases
            for doc, meta in db.execute("SELECT id, metadata FROM documents").fetchall():
                meta = {k: v for k, v in json.loads(meta).items() if not k.startswith("aliases")}
                db.execute("UPDATE documents SET metadata = ? WHERE id = ?", (json.dumps(meta), doc))
        assert kb.aliases("NWX revenue") == {}
        assert kb.search("Northwind Exchange revenue 2023", k=1)[0].source.endswith("northwind.md")
        assert kb.search("NWX revenue 2023", k=3)
        assert kb.ask("Was NnW's revenue for 2023 up on the prior year?", llm="none").missing == ["NnW"]


@pytest.mark.slow
def test_with_the_real_model_an_acronym_in_lower_case_finds_its_holder(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", workers=1) as kb:
        kb.ingest([str(reports(tmp_path / "docs"))])
        for question in ("voh revenue 2023", "what did qldy earn in 2023", "N&W revenue"):
            top = kb.search(question, k=1)[0]
            assert Path(top.source).stem == {"voh": "verity", "what": "quillon", "N&W": "northwind"}[question.split()[0]]


def test_an_alias_is_spelled_out_after_it_once_and_not_where_the_question_names_it() -> None:
    amd = Alias("AMD", ("ADVANCED MICRO DEVICES, INC.",), frozenset({1}))
    assert expand("What was AMD's revenue?", [amd]) == "What was AMD's (Advanced Micro Devices, Inc.) revenue?"
    assert expand("Advanced Micro Devices (AMD) revenue", [amd]) == "Advanced Micro Devices (AMD) revenue"
