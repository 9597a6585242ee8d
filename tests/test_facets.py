"""A document's own date, read from its first page at ingest: stored in its metadata, shown by
`kb documents`, usable as `--where date=...`/`year=...`, and matched against the periods a question
names ("the latest report", "in 2022")."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.api import KnowledgeBase
from kb.cli.main import main
from kb.dates import first_date
from kb.filters import Filters, parse_where
from kb.ingest.facets import document_facets
from kb.query.search import DEFAULT_TUNING
from kb.question import read
from kb.types import Block, ParsedDocument
from tests.helpers import FAKE, write_pdf

FILLER = "The board met and reviewed the operations of the business in the period. " * 70  # ~5,000 characters


def names(items: list) -> list[str]:  # type: ignore[type-arg]
    return [Path(i.source).name for i in items]


def dated_docs(folder: Path) -> Path:
    """Files of several formats whose first page states a date in a different written form."""
    write_pdf(folder / "quarterly.pdf", ["Quarterly report\nFor the quarterly period ended July 1, 2023\nRevenue rose.",
                                          "Results\nRevenue was 81,797 in the quarter.", "Signed on 2023-08-04."])
    write_pdf(folder / "cover.pdf", ["Annual review", "Prepared 12 Jan. 2021 by the finance office.", "Notes"])
    (folder / "minutes.md").write_text("# Minutes\n\nMeeting of 03/15/2022 at the harbour office.\n")
    (folder / "note.md").write_text("---\ndate: 2019-05-06\n---\n# Note\n\nWritten on 1 July 2023, filed later.\n")
    (folder / "late.txt").write_text(FILLER + "\nSigned on 5 May 2020.\n")  # a date past the opening text
    (folder / "bad.md").write_text("# Bad\n\nDue on February 30, 2023, which does not exist.\n")
    return folder


def test_a_documents_own_date_is_read_stored_and_shown(kb: KnowledgeBase, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    kb.ingest([str(dated_docs(tmp_path / "docs"))])
    dates = {Path(d.source).name: d.date for d in kb.documents()}
    assert dates == {"quarterly.pdf": "2023-07-01", "cover.pdf": "2021-01-12", "minutes.md": "2022-03-15",
                     "note.md": "2019-05-06",  # a front matter's date is the author's word: kept
                     "late.txt": None, "bad.md": None}
    row = kb.catalog.document(str((tmp_path / "docs" / "note.md").resolve()))
    assert row is not None
    meta = json.loads(kb.catalog.db.execute("SELECT metadata FROM documents WHERE id = ?", (row.id,)).fetchone()[0])
    assert meta["date"] == "2019-05-06" and meta["year"] == "2019"
    monkeypatch.setenv("KB_DIR", str(kb.path))
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    listed = CliRunner().invoke(main, ["documents"])
    assert listed.exit_code == 0
    line = next(x for x in listed.output.splitlines() if "quarterly.pdf" in x)
    assert "2023-07-01" in line
    listed = json.loads(CliRunner().invoke(main, ["documents", "--json"]).output)
    assert {Path(d["source"]).name: d["date"] for d in listed["documents"]}["cover.pdf"] == "2021-01-12"


def test_where_date_and_year_filter_search_ask_and_documents(kb: KnowledgeBase, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    kb.ingest([str(dated_docs(tmp_path / "docs"))])
    assert names(kb.documents(Filters(where=parse_where(["year=2022"])))) == ["minutes.md"]
    july = Filters(where=parse_where(["date=2023-07"]))
    assert names(kb.documents(july)) == ["quarterly.pdf"]
    assert set(names(kb.search("revenue office date", k=10, filters=july))) == {"quarterly.pdf"}
    monkeypatch.setenv("KB_DIR", str(kb.path))
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    runner = CliRunner()
    found = json.loads(runner.invoke(main, ["search", "office", "--where", "year=2021", "--json"]).output)
    assert {Path(h["source"]).name for h in found["hits"]} == {"cover.pdf"}
    asked = runner.invoke(main, ["ask", "Where was the meeting?", "--where", "date=2022-03", "--json"])
    assert asked.exit_code == 0, asked.output
    assert {Path(h["source"]).name for h in json.loads(asked.stdout)["hits"]} == {"minutes.md"}
    listed = runner.invoke(main, ["documents", "--where", "year=2023"])
    assert "quarterly.pdf" in listed.output and "minutes.md" not in listed.output


OTHERS = {"garden.md": "# Garden notes\n\nThe roses need pruning before the frost.\n",
          "recipes.md": "# Soup\n\nSimmer the leeks for twenty minutes, then blend.\n",
          "trip.md": "---\ndate: 2024-06-01\n---\n# Trip\n\nThe ferry leaves at nine; sales of tickets open at eight.\n"}


def series(folder: Path, dates: dict[str, str]) -> Path:
    """Reports of one series that differ only in their office's name and in their (front matter) date,
    among other documents (one of them newer than any report)."""
    folder.mkdir(parents=True)
    for name, text in OTHERS.items():
        (folder / name).write_text(text)
    for office, when in dates.items():
        (folder / f"{office}.md").write_text(
            f"---\ndate: {when}\n---\n# Widget report, {office} office\n\nWidget sales rose by a third "
            f"at the {office} office, and returns fell.\n\nThe {office} office hired two fitters.\n")
    return folder


def ranking(kb: KnowledgeBase, question: str, **tuning: float) -> list[tuple[str, float]]:
    hits = kb.search(question, k=4, tuning=dataclasses.replace(DEFAULT_TUNING, **tuning))
    return [(Path(h.source).name, h.score) for h in hits]


@pytest.mark.parametrize("newer", ["north", "south"])
def test_latest_favours_the_newest_of_a_series_and_only_when_asked(tmp_path: Path, newer: str) -> None:
    older = {"north": "south", "south": "north"}[newer]
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(series(tmp_path / "docs", {newer: "2023-09-30", older: "2023-03-31"}))])
        assert ranking(kb, "How did widget sales change in the latest report?")[0][0] == f"{newer}.md"
        assert ranking(kb, "widget sales in the most recent report")[0][0] == f"{newer}.md"
        # Without a word about time, dates change nothing: exactly the ranking with the facets off.
        plain = "How did widget sales change in the report?"
        assert ranking(kb, plain) == ranking(kb, plain, latest_weight=0, period_weight=0)
        # "current" names a kind of thing ("current liabilities"), not the newest document.
        current = "widget sales in the current report"
        assert ranking(kb, current) == ranking(kb, current, latest_weight=0, period_weight=0)


@pytest.mark.parametrize("year, office", [("2021", "north"), ("2022", "south")])
def test_a_named_year_favours_its_document(tmp_path: Path, year: str, office: str) -> None:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(series(tmp_path / "docs", {"north": "2021-12-31", "south": "2022-12-31"}))])
        assert ranking(kb, f"How did widget sales change in FY{year}?")[0][0] == f"{office}.md"
        assert ranking(kb, f"widget sales, quarter ended December 31, {year}")[0][0] == f"{office}.md"


def test_dates_and_periods_read_from_text() -> None:
    written = {"For the period ended July 1, 2023 or": "2023-07-01", "1 July 2023": "2023-07-01",
               "Jul. 1, 2023": "2023-07-01", "on 2023-07-01.": "2023-07-01", "07/01/2023": "2023-07-01",
               "25/12/2023": "2023-12-25", "the 3rd of May, 2023": "2023-05-03", "Oct-16-2023": "2023-10-16"}
    assert {text: str(first_date(text)) for text in written} == written
    assert first_date("February 30, 2023 and 2,023 units") is None
    assert read("FY2019 against 2022 Q2, not 2,019 units nor $2018").years == ("2019", "2022")
    asked = read("What was the gross margin in the most recent quarter ended July 1, 2023?")
    assert asked.latest and asked.dates == ("2023-07-01",) and asked.years == ("2023",)
    current = read("What are the current liabilities?")
    assert not current.latest and not current.periods


@pytest.mark.parametrize(("question", "latest", "dates", "years"), [
    # where the facets and the answer's grounding read a question two ways before: one reading now
    ("What was revenue in the most current quarter?", True, (), ()),  # "latest" for grounding only, before
    ("What was revenue in the last reported quarter?", True, (), ()),  # the same
    ("Which report was filed most recently?", True, (), ()),  # "latest" for the facets only, before
    ("In Q3 2023, what was revenue?", False, (), ("2023",)),  # a year before a comma: grounding's, before
    ("Revenue in 3Q22 and FY23?", False, (), ("2022", "2023")),  # two-digit years: grounding's, before
    ("Sales in 2022/2023 and 2021-2022?", False, (), ("2022", "2023", "2021")),  # grounding's, before
    ("Revenue in 2019.5 or 2019%?", False, (), ()),  # figures: 2019.5 was a year for grounding, 2019% for facets
    ("The filing dated 1st July 2022?", False, ("2022-07-01",), ("2022",)),  # a day for the facets only, before
])
def test_one_reading_of_time_for_search_and_answers(question: str, latest: bool, dates: tuple[str, ...],
                                                     years: tuple[str, ...]) -> None:
    asked = read(question)
    assert (asked.latest, asked.dates, asked.years) == (latest, dates, years)


def write_deck(path: Path, slides: list[tuple[str, str]]) -> Path:
    """A real .pptx (python-pptx): each slide a title and a body, the first on the title-slide layout."""
    from pptx import Presentation

    deck = Presentation()
    for n, (title, body) in enumerate(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[0 if n == 0 else 1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


GA = "General availability on 30 June 2024, after the pilot customers sign off."  # an event, in a sentence


def labelled_docs(folder: Path) -> Path:
    """Files whose opening pages mention dates in passing, and label (or not) their own."""
    folder.mkdir(parents=True)
    write_deck(folder / "undated.pptx", [("Platform roadmap", GA), ("Pricing", "Two tiers, billed monthly.")])
    write_deck(folder / "title-dated.pptx", [("Platform roadmap", f"{GA}\n12 March 2023"), ("Pricing", "Two tiers.")])
    write_deck(folder / "month.pptx", [("Board update", "March 2023"), ("Plan", GA)])
    write_deck(folder / "updated.pptx", [("Platform roadmap", GA), ("Status", "Last updated: 1 February 2024")])
    write_pdf(folder / "filing.pdf", [
        "UNITED STATES\nFORM 10-Q\nQUARTERLY REPORT PURSUANT TO SECTION 13\nFOR THE QUARTERLY PERIOD ENDED\n"
        "July 1, 2023\nThe offering closed on 15 June 2023.\nAs of July 21, 2023, 15,000 shares were outstanding.",
        "Results\nRevenue was 81,797 in the quarter."])
    write_pdf(folder / "release.pdf", [
        "FOR IMMEDIATE RELEASE\nGuidance raised through 31 December 2023\n"
        "New Brunswick, N.J. (July 20, 2023) - Acme today announced results for the second quarter."])
    write_pdf(folder / "accident.pdf", ["Aviation Accident Final Report\nLocation: Tallahassee, FL\n"
                                        "Date & Time: 12/08/2007, 1730 EST Registration: N5921D"])
    (folder / "minutes-2022-03-15.md").write_text("# Minutes\n\nThe committee will meet again on 4 April 2022.\n")
    write_deck(folder / "review.pptx", [("Sales review: first quarter 2024", "Presented by Tom Hughes, 8 April 2024"),
                                        ("Results", "Seven new clients.")])
    (folder / "board.md").write_text("# Board meeting minutes, 28 March 2024\n\n"
                                     "The lease break date of 1 April 2025 will be reviewed in September.\n")
    (folder / "handbook.md").write_text("# Handbook\n\nExcerpts of the staff handbook, version 3.2, in force from "
                                        "1 January 2024.\n")
    (folder / "plan.md").write_text("# Project plan\n\nMilestones\n\n- Discovery: April 2024\n"
                                    "- Go-live: 2 September 2024\n")
    return folder


def test_a_documents_date_is_the_one_that_labels_it_not_one_it_mentions(kb: KnowledgeBase, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    kb.ingest([str(labelled_docs(tmp_path / "docs"))])
    dates = {Path(d.source).name: d.date for d in kb.documents()}
    assert dates == {
        "undated.pptx": None,  # "General availability on 30 June 2024" is an event the deck announces
        "title-dated.pptx": "2023-03-12",  # the title slide's date line
        "month.pptx": "2023-03",  # a month alone on the cover: as precise as the document says
        "updated.pptx": "2024-02-01",  # a labelled date on its second slide
        "filing.pdf": "2023-07-01",  # the label on the line above its date; not the offering's day
        "release.pdf": "2023-07-20",  # a press release's dateline; not the guidance's horizon
        "accident.pdf": "2007-12-08",  # a form's date field
        "minutes-2022-03-15.md": "2022-03-15",  # the file's name; not the next meeting's day
        "review.pptx": "2024-04-08",  # a title slide's "Presented by ..., DATE"
        "board.md": "2024-03-28",  # its heading's; not a date the minutes talk about ("break date of")
        "handbook.md": "2024-01-01",  # "in force from"
        "plan.md": None,  # milestones in a list are the plan's subject, not its date
    }
    monkeypatch.setenv("KB_DIR", str(kb.path))
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    listed = json.loads(CliRunner().invoke(main, ["documents", "--json"]).output)
    assert {Path(d["source"]).name: d["date"] for d in listed["documents"]}["undated.pptx"] is None
    assert names(kb.documents(Filters(where=parse_where(["date=2024-02"])))) == ["updated.pptx"]


def subject_series(folder: Path) -> Path:
    """Three quarterly reports of one company, named without their periods, and a newer deck of
    another subject that shares the question's other words ("revenue", "latest quarter", "report")."""
    folder.mkdir(parents=True)
    for letter, ended, revenue in (("a", "March 31, 2023", "41.2"), ("b", "June 30, 2023", "43.9"),
                                   ("c", "September 30, 2023", "45.6")):
        write_pdf(folder / f"acme-report-{letter}.pdf", [
            f"Acme Corporation\nQuarterly report\nFor the quarterly period ended {ended}",
            f"Results of operations\nAcme's revenue for the quarter was ${revenue} million, and gross margin was 38%.\n"
            f"Acme sold more widgets to hospitals in the quarter ended {ended}."])
    write_deck(folder / "roadmap.pptx", [
        ("Platform roadmap", "Revenue from the platform in the latest quarter grew, as every quarterly report shows."),
        ("Quarterly report of the platform team",
         "Last updated: 1 February 2024\nRevenue in the latest quarter rose by a fifth; the report covers its revenue.")])
    return folder


@pytest.mark.slow
def test_the_latest_is_the_newest_of_the_questions_subject_not_of_the_folder(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", workers=1) as kb:  # the packaged embedder, the real index
        kb.ingest([str(subject_series(tmp_path / "docs"))])
        assert {Path(d.source).name: d.date for d in kb.documents()}["roadmap.pptx"] == "2024-02-01"
        for question in ("What was Acme's revenue in the latest quarter?", "Acme's most recent report",
                         "What was the revenue of Acme in the most recent quarter?"):
            assert names(kb.search(question, k=3))[0] == "acme-report-c.pdf", question
            answer = kb.ask(question, llm="none")
            assert {Path(c.source).name for c in answer.citations} == {"acme-report-c.pdf"}, question
        assert "45.6" in kb.ask("What was Acme's revenue in the latest quarter?", llm="none").answer


def fiscal_series(folder: Path) -> Path:
    """A company whose fiscal year starts in July, as its quarterly reports name themselves: the file
    names give the fiscal quarter, the cover the calendar day it ended; and a retailer's annual reports,
    fiscal year N ending in January of N + 1."""
    folder.mkdir(parents=True, exist_ok=True)
    ends = {"2023 Q1": "September 30, 2022", "2023 Q2": "December 31, 2022", "2023 Q3": "March 31, 2023"}
    for quarter, ended in ends.items():
        write_pdf(folder / f"{quarter} Acme.pdf", [  # each speaks of fiscal 2023 alike, on every page
            f"Acme Corporation quarterly report, fiscal year 2023\nFor the quarterly period ended {ended}",
            *(f"Fiscal year 2023, {part}: widget revenue and operating expenses for the quarter." for part in
              ("results", "segments", "liquidity"))])
    for year in (2019, 2020):
        write_pdf(folder / f"SHOPCO_{year}_10K.pdf", [
            f"Shopco annual report\nFor the fiscal year ended January 30, {year + 1}",
            *(f"Fiscal {year}, {part}: store sales and operating expenses for the year." for part in
              ("results", "segments", "liquidity"))])
    return folder


def test_a_reports_file_name_says_its_period_in_its_own_calendar(tmp_path: Path) -> None:
    """"Q1 2023" of a company whose fiscal 2023 began in July 2022 is the report named "2023 Q1", dated
    September 2022, not the one dated in calendar Q1 2023; "FY2020" of a year ending in January 2021 is
    the report named 2020."""
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(fiscal_series(tmp_path / "docs"))])
        dates = {Path(d.source).name: d.date for d in kb.documents()}
        assert dates["2023 Q1 Acme.pdf"] == "2022-09-30" and dates["SHOPCO_2020_10K.pdf"] == "2021-01-30"
        for question, first in [("Acme widget revenue and operating expenses in Q1 2023", "2023 Q1 Acme.pdf"),
                                ("acme operating expenses, first quarter of fiscal 2023", "2023 Q1 Acme.pdf"),
                                ("Acme revenue Q22023", "2023 Q2 Acme.pdf"),
                                ("Shopco store sales and operating expenses in FY2020", "SHOPCO_2020_10K.pdf"),
                                ("Shopco store sales in fiscal 2019", "SHOPCO_2019_10K.pdf")]:
            assert ranking(kb, question)[0][0] == first, (question, ranking(kb, question))


def unnamed_quarters(folder: Path) -> Path:
    """Quarterly reports under file names that say nothing, beside another company's named series: one company whose fiscal year starts in
    October and writes its quarters without "fiscal" ("the third quarter of 2023" ended July 1, 2023),
    one that counts a fiscal year ending in January ("the third quarter of fiscal year 2024" ended
    October 29, 2023). Each names the same quarter a year before, as reports do."""
    folder.mkdir(parents=True, exist_ok=True)
    reports = [("Borealis", "April 1, 2023", "second quarter of 2023", "second quarter of 2022"),
               ("Borealis", "July 1, 2023", "third quarter of 2023", "third quarter of 2022"),
               ("Dynamo", "July 30, 2023", "second quarter of fiscal year 2024", "second quarter of fiscal year 2023"),
               ("Dynamo", "October 29, 2023", "third quarter of fiscal year 2024", "third quarter of fiscal year 2023")]
    for n, (firm, ended, quarter, before) in enumerate(reports):
        write_pdf(folder / f"scan{n:04d}.pdf", [
            f"{firm} Inc.\nQuarterly report\nFor the quarterly period ended {ended}",
            *(f"{firm} {part} in the {quarter} against the {before}: revenue and operating expenses." for part in
              ("results", "segments", "liquidity"))])
    for quarter, ended in (("Q2", "June 30, 2023"), ("Q3", "September 30, 2023")):  # beside them, a named series
        write_pdf(folder / f"2023 {quarter} Calder.pdf", [
            f"Calder Inc.\nQuarterly report\nFor the quarterly period ended {ended}",
            *(f"Calder {part} in {quarter} 2023: revenue and operating expenses." for part in
              ("results", "segments", "liquidity"))])
    return folder


def test_a_reports_quarter_is_read_from_its_text_when_its_file_name_says_nothing(tmp_path: Path) -> None:
    """"Q3 2023" is the quarter a report calls its third of 2023, or, for a report that counts its own
    fiscal year, the calendar quarter most of its months fall in; "Q3 FY2024" is its fiscal quarter."""
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(unnamed_quarters(tmp_path / "docs"))])
        with sqlite3.connect(tmp_path / "kb" / "catalog.sqlite") as db:
            meta = {Path(source).name: json.loads(m) for source, m in db.execute("SELECT source, metadata FROM documents")}
        assert meta["scan0001.pdf"]["quarter"] == "2023-Q3" and "fiscal_quarter" not in meta["scan0001.pdf"]
        assert (meta["scan0003.pdf"]["quarter"], meta["scan0003.pdf"]["fiscal_quarter"]) == ("2023-Q3", "2024-Q3")
        for question, first in [("Borealis revenue in Q3 2023", "scan0001.pdf"),
                                ("borealis operating expenses, second quarter of 2023", "scan0000.pdf"),
                                ("Dynamo revenue Q3 FY2024", "scan0003.pdf"),
                                ("Dynamo revenue in the second quarter of fiscal 2024", "scan0002.pdf"),
                                ("Dynamo revenue in Q3 2023", "scan0003.pdf"),
                                ("Dynamo revenue in Q2 2023", "scan0002.pdf"),
                                ("Calder revenue in Q2 2023", "2023 Q2 Calder.pdf")]:
            # the same series first (this test's embedder tells no subject apart: Calder's named quarter
            # may outrank it, as it would with no reading of quarters)
            series = [name for name, _ in ranking(kb, question) if name[:4] == first[:4]]
            assert series[0] == first, (question, ranking(kb, question))
        hits = kb.search("revenue and operating expenses", k=8, filters=Filters(where=parse_where(["quarter=2023-Q3"])))
        assert sorted(set(names(hits))) == ["2023 Q3 Calder.pdf", "scan0001.pdf", "scan0003.pdf"]


def _report(ended: str, *pages: str) -> ParsedDocument:
    return ParsedDocument(title="report", blocks=[Block(f"Acme Inc.\nFor the quarterly period ended {ended}", page=1),
                                                  *(Block(p, page=n) for n, p in enumerate(pages, start=2))])


@pytest.mark.parametrize(("report", "expected"), [
    # its own quarter named less often than an outlook's: the one ending on its date
    (_report("June 30, 2023", *["In the second quarter of 2023 sales rose."] * 2,
             *["We expect the third quarter of 2023 to be softer."] * 3), {"quarter": "2023-Q2"}),
    # a fiscal year of its own: the calendar quarter most of its months fall in, whatever it names once
    (_report("October 29, 2023", *["Revenue for the third quarter of fiscal year 2024 grew."] * 3,
             "Industry demand in Q4 2023 is expected to soften."), {"quarter": "2023-Q3", "fiscal_quarter": "2024-Q3"}),
    # its own fiscal quarter named less often than the year before's
    (_report("October 29, 2023", *["the third quarter of fiscal year 2024"] * 2,
             *["the third quarter of fiscal year 2023"] * 4), {"quarter": "2023-Q3", "fiscal_quarter": "2024-Q3"}),
    # a fiscal quarter years away is a restatement's, not the report's
    (_report("June 30, 2023", *["Restated: the first quarter of fiscal 2019."] * 3, *["Q2 2023 revenue grew."] * 3),
     {"quarter": "2023-Q2"}),
    # a fiscal year from October written without "fiscal": its quarter, not the one before it named once
    (_report("July 1, 2023", *["Sales in the third quarter of 2023 rose."] * 4, "Against the second quarter of 2023."),
     {"quarter": "2023-Q3"}),
    # the last quarter of a fiscal year, and the next year's outlook named now and then
    (_report("January 28, 2024", *["Revenue for the fourth quarter of fiscal 2024 grew."] * 8,
             *["We expect the first quarter of fiscal 2025 to grow."] * 2),
     {"quarter": "2023-Q4", "fiscal_quarter": "2024-Q4"}),
    # a year ending in January, written without "fiscal": the quarter most of whose months its three are
    (_report("April 29, 2023", *["Sales in the first quarter of 2023 fell."] * 8,
             *["We expect the second quarter of 2023 to improve."] * 2), {"quarter": "2023-Q1"}),
    # named too seldom, or no quarterly report (an annual one)
    (_report("June 30, 2023", "Q2 2023 revenue grew."), {}),
    (ParsedDocument(title="annual", blocks=[Block("Acme Inc.\nFor the fiscal year ended June 30, 2023", page=1),
                                            *[Block("In the fourth quarter of 2023 sales rose.", page=2)] * 4]), {}),
])
def test_a_reports_own_quarter_is_the_one_it_is_about_not_one_it_talks_about(report: ParsedDocument,
                                                                             expected: dict[str, str]) -> None:
    facets = document_facets(report)
    assert {k: v for k, v in facets.items() if "quarter" in k} == expected
