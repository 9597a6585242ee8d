"""What a question is about (kb.question), whether the documents hold it (kb.answer.retrieve,
kb.answer.decide) and how a table row is read (kb.answer.tables): the parts of `kb ask` that decide
"not found" and the first line of an extractive answer."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

from kb.answer.decide import EMPTY, FILTERED, OFF_TOPIC, UNCOVERED, UNMENTIONED, decide
from kb.answer.extractive import extractive_answer
from kb.answer.retrieve import Grounding, Passages, Subject, _own_words, ground
from kb.answer.tables import Cell, read_row, row_label
from kb.answer.types import Source
from kb.dates import name_period
from kb.filters import Filters
from kb.query.search import DEFAULT_TUNING, Tuning
from kb.question import read
from kb.types import Hit


def terms(question: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in read(question).about]


@pytest.mark.parametrize(("question", "expected"), [
    ("What was Tesla's revenue in Q3 2023?", [("entity", "Tesla"), ("period", "Q3 2023")]),
    ("What was Boeing's backlog in the quarter ended June 30, 2023?",
     [("entity", "Boeing"), ("period", "June 30, 2023")]),
    ("Summarise Johnson & Johnson sales in the third quarter of fiscal 2023 for the iPhone and AWS",
     [("entity", "Johnson & Johnson"), ("entity", "iPhone"),
      ("period", "third quarter of fiscal 2023")]),
    ("How has NVIDIA's Data Center revenue changed since March 2023?",
     [("entity", "NVIDIA"), ("entity", "Data Center"), ("period", "March 2023")]),
    ("What is Bank of America's net interest income in 3Q22 and FY2021?",
     [("entity", "Bank of America"), ("period", "3Q22"), ("period", "FY2021")]),
    # the year first, as a report's own title writes it
    ("In 2022 Q2, which of JPM's segments earned most, and in FY24 Q3?",
     [("entity", "JPM"), ("period", "2022 Q2"), ("period", "FY24 Q3")]),
    # abbreviations the question defines, or that qualify a name, are not names of their own
    ("What is FY2018 days payable outstanding (DPO) for Walmart? DIO is defined as 365 * inventory / COGS.",
     [("entity", "Walmart"), ("period", "FY2018")]),
    ("What was AMD's revenue, and how did EPS change?", [("entity", "AMD")]),
    ("At the Pepsico AGM held on May 3, 2023, what was the outcome?", [("entity", "Pepsico"), ("period", "May 3, 2023")]),
    ("What legal proceedings are disclosed in Apple's 10-Qs?", [("entity", "Apple")]),  # a form's code is no name
    # capitals that grammar put there are not names; a sentence may start with a verb kb never saw
    ("Summarise the gross margin. Please list what changed in the latest report.", []),
    # a contraction is grammar ("I'm", "Don't", "We've"), never a name; a name with an apostrophe is one
    ("When do I need a fit note if I'm off sick? Don't we've a form?", []),
    ("What did O'Brien say about Tesla?", [("entity", "O'Brien"), ("entity", "Tesla")]),
])
def test_key_terms(question: str, expected: list[tuple[str, str]]) -> None:
    assert terms(question) == expected


def test_the_sentences_about_the_answers_form_are_told_apart() -> None:
    asked = read("What is Adobe's FY2015 operating cash flow ratio? Round your answer to two decimal places.")
    assert asked.instructions == ("Round your answer to two decimal places.",)
    asked = read("Is working capital a useful metric for Acme? If working capital is not useful, please state that.")
    assert asked.instructions == ("If working capital is not useful, please state that.",)
    assert read("Answer the following question: what was revenue?").instructions == ()
    assert read("Answer in one sentence.").instructions == ()  # nothing else to answer: it is the question


def test_the_content_words_are_what_is_asked_whatever_the_case_or_the_instructions() -> None:
    assert read("What is the parental leave policy?").content == ("parental", "leave", "policy")
    assert read("initech revenue q3 2023").content == ("initech", "revenue")
    # its names and periods are looked up whole in the documents (`ground`), not word by word
    assert read("What was Tesla's revenue in Q3 2023? Round your answer to two decimals.").content == ("revenue",)
    assert read("what was tesla revenue").content == ("tesla", "revenue")
    assert read("the and of").content == ()
    # a term the question defines is its own, not something the documents must hold
    assert read("What is Acme's DPO? DPO is defined as 365 * payables / COGS.").content == ("payables", "cogs")


def test_a_model_version_or_code_is_read_and_found_however_it_is_joined() -> None:
    def codes(question: str) -> list[str]:
        return [c.text for c in read(question).codes]

    assert codes("release date of Beacon 3.0") == ["Beacon 3.0"]
    assert codes("What distracted the pilot of the Air Tractor AT-401 near Soledad?") == ["AT-401"]
    assert codes("iPhone 16 Pro starting price") == ["iPhone 16"]
    assert codes("how many subjects were enrolled at site 022") == ["site 022"]
    # a form's number, a period and grammar's capital are not codes
    assert codes("In Apple's Q3 2023 10-Q, what was revenue?") == [] and codes("Top 10 customers of Intel") == []
    (beacon,) = read("release date of Beacon 3.0").codes
    assert beacon.found_in("Beacon 3.0 ships in May") and beacon.found_in("beacon-3-0 notes")
    assert not beacon.found_in("Beacon 3.01 ships") and not beacon.found_in("Beacon 2.0 shipped in 3.0 weeks")
    assert not read("iPhone 16 Pro price").codes[0].found_in("iPhone 16,757 18,104")  # a table row's figures
    (plane,) = read("the AT-401 crash").codes
    assert plane.found_in("an Air Tractor AT401") and plane.found_in("AT-401")


def test_a_quarter_is_found_however_it_is_written() -> None:
    (quarter,) = read("revenue in Q3 2023").about
    for text in ("the third quarter of 2023", "Q3 2023", "third quarter of fiscal year 2023", "Q3 FY23",
                 "docs/2023 Q3 AAPL.pdf", "AMCOR_2023Q3_10Q.pdf", "3Q23 results", "ACME_Q3_2023.pdf",
                 "ACME-Q3-2023.pdf", "ACME_FY2023_Q3.pdf", "Q3-23 deck.pptx"):
        assert quarter.found_in(text), text
    for text in ("the third quarter of 2022", "Q2 2023", "2023 was a good year", "ACME_Q3_2024.pdf",
                 "ACME_FY2023_Q1.pdf"):
        assert not quarter.found_in(text), text


def hit(doc_id: int, source: str, text: str, rank: int = 1) -> Hit:
    return Hit(rank, 1.0, doc_id * 100 + rank, source, 1, 1, None, text, doc_id=doc_id)


def test_ground_names_what_no_passage_mentions() -> None:
    passages = [hit(1, "2023 Q3 ACME.pdf", "Acme revenue was $5 million in the third quarter of 2023.")]

    def search(query: str, **_: object) -> list[Hit]:  # the keyword index: it holds only these passages
        return [h for h in passages if any(w.lower() in h.text.lower() for w in query.split())]

    grounding = ground(read("What was Globex's revenue in Q3 2023?"), passages, search)
    assert [t.text for t in grounding.missing] == ["Globex"]
    abstain = decide(Passages(passages, [0.9], grounding), None)
    assert abstain is not None and abstain.reason == UNMENTIONED
    assert abstain.text == "Not found in the knowledge base: no document mentions Globex."
    assert ground(read("What was Acme's revenue in Q3 2023?"), passages, search).missing == []
    missing = ground(read("What was Acme's revenue in Q4 2024?"), passages, search).missing
    assert [t.text for t in missing] == ["Q4 2024"]
    abstain = decide(Passages(passages, [0.9], ground(read("Acme's revenue in Q4 2024?"), passages, search)), None)
    assert abstain is not None and abstain.note == "no document covers Q4 2024; nearest passages shown"


def test_a_name_written_otherwise_beside_names_the_documents_hold_is_not_missing() -> None:
    passages = [hit(1, "report.pdf", "The Aerostar 601 struck a tree after departing Elyria, OH, in low clouds.")]

    def search(query: str, **_: object) -> list[Hit]:
        return [h for h in passages if any(w.lower() in h.text.lower() for w in query.split())]

    grounding = ground(read("What damage was found after the Aerostar hit a tree near Elyria, Ohio?"), passages, search)
    assert grounding.missing == [] and [t.text for t in grounding.otherwise] == ["Ohio"]
    assert decide(Passages(passages, [0.6], grounding, Subject(0.8, unknown=("ohio",))), None) is None
    alone = ground(read("What did the Cessna hit near Elyria, Ohio?"), passages, search)  # one name held of two
    assert [t.text for t in alone.missing] == ["Cessna", "Ohio"]


def test_passages_from_no_document_about_the_name_asked_of_are_not_an_answer() -> None:
    # the search ranked another carmaker's deliveries; the one document naming Ford (once, as a haulier)
    # is in the keyword index but not among the passages
    carmaker = hit(1, "voltic-update.md", "Voltic Motors delivered 48,000 vehicles in 2023.")
    grocer = hit(2, "marlow-annual.md", "Our hauliers include Ford, which leased us forty trucks in 2023.")

    def search(query: str, filters: Filters | None = None, **_: object) -> list[Hit]:
        held = [h for h in (carmaker, grocer) if any(w.lower() in h.text.lower() for w in query.split())]
        return [h for h in held if not (filters and filters.path) or fnmatch(h.source, filters.path)]

    grounding = ground(read("How many vehicles did Ford deliver in 2023?"), [carmaker], search)
    assert grounding.missing == [] and [t.text for t in grounding.unheld] == ["Ford"]
    abstain = decide(Passages([carmaker], [0.6], grounding), None)
    assert abstain is not None and abstain.reason == UNMENTIONED
    assert abstain.text == "Not found in the knowledge base: no passage found is from a document that mentions Ford."
    assert ground(read("How many vehicles did Voltic Motors deliver in 2023?"), [carmaker], search).unheld == []
    # a name in capitals may be a measure the passages spell out ("EBITDA"): not asked of them
    assert ground(read("What was Voltic's EBITDA in 2023?"), [carmaker], search).unheld == []


def test_a_name_and_a_period_held_apart_are_not_an_answer_however_the_period_is_written() -> None:
    acme = hit(1, "download(3).pdf", "Acme Foundry: revenue for the three months ended September 30, 2023 was 41.")
    acme_old = hit(2, "acme-2021.pdf", "Acme Foundry annual report. Revenue for FY21 was 150; EBITDA was 30.")
    news = hit(3, "news.md", "Globex results for Q3 2023 and 2015 were strong.")
    slides = hit(4, "deck.pptx", "Brindle revenue FY23: 12.")

    def search(query: str, filters: Filters | None = None, **_: object) -> list[Hit]:
        held = [h for h in (acme, acme_old, news, slides) if any(w.lower() in h.text.lower() for w in query.split())]
        return [h for h in held if not (filters and filters.path) or fnmatch(h.source, filters.path)]

    def apart(question: str) -> list[tuple[str, str]]:
        return [(n.text, p.text) for n, p in ground(read(question), [acme], search).apart]

    assert apart("What was Acme's revenue in 2015?") == [("Acme", "2015")]  # 2015 is only the news's
    assert apart("What was Acme's revenue in Q3 2023?") == []  # its three months end on September 30, 2023
    assert apart("What was Brindle's revenue in 2023?") == []  # "FY23"
    assert apart("What was Acme's EBITDA in 2015?") == [("Acme", "2015")]  # a measure in capitals is no name
    # of two names, one held with the period is enough: the other half of a comparison is still answered
    assert apart("Compare Acme and Globex revenue in 2015") == []


def test_a_version_the_documents_do_not_hold_is_missing_beside_the_names_they_do() -> None:
    passages = [hit(1, "catalogue.pdf", "Nimbus 6 Pro, from Arden Devices: starting price $799.")]

    def search(query: str, **_: object) -> list[Hit]:
        return [h for h in passages if all(w.lower() in h.text.lower() for w in query.split())]

    asked = read("What is the starting price of the Nimbus 7 Pro from Arden?")
    assert [t.text for t in ground(asked, passages, search).missing] == ["Nimbus 7"]
    held = read("What is the starting price of the Nimbus 6 Pro from Arden?")
    assert ground(held, passages, search).missing == []
    # a name written otherwise beside them is still taken for one, the code still missing
    grounding = ground(read("What is the starting price of the Nimbus 7 Pro from Arden in Ohio?"), passages, search)
    assert [t.text for t in grounding.missing] == ["Nimbus 7"] and [t.text for t in grounding.otherwise] == ["Ohio"]


def test_the_statement_row_is_found_in_a_later_passage_of_its_page() -> None:
    """A page's passages all hold the words: its second one, where the row is, must be looked at too."""
    pages = [Hit(i, 1.0, i, "report.pdf", page, page, None, text, doc_id=1) for i, (page, text) in enumerate(
        [(1, "Cash flow statement. Operating activities: net income 4,100 3,900; cash from operations below.")]
        + [(1, "Net cash from operating activities 9,125 8,804")]
        + [(p, f"Operating activities and cash on page {p}.") for p in range(2, 30)], start=1)]

    def search(query: str, k: int = 5, tuning: Tuning = DEFAULT_TUNING, **_: object) -> list[Hit]:
        ranked = [h for h in pages if any(w in h.text.lower() for w in query.lower().split())]
        first = {h.page: h for h in reversed(ranked)}  # one passage a page first, as kb's search spreads them
        spread = [h for h in ranked if first[h.page] is h or tuning.per_page > 1] + ranked
        return list({h.chunk_id: h for h in spread}.values())[:k]

    asked = read("What was net cash from operating activities?")
    found = _own_words(search, asked, [pages[5]], None)
    assert "Net cash from operating activities 9,125 8,804" in [h.text for h in found]


def test_a_subject_word_is_unknown_only_when_no_document_holds_it_or_spells_it_out() -> None:
    from kb.answer.retrieve import _subject

    passages = [hit(1, "10k.pdf", "Days payable outstanding rose. The failover region is west. Wi-Fi is free.")]

    def nothing(query: str, **_: object) -> list[Hit]:  # a keyword index that holds none of the words
        return []

    def unknown(question: str, weight: float = 0.5) -> tuple[str, ...]:
        return _subject(nothing, read(question), [weight] * len(read(question).content), passages, None).unknown

    assert unknown("What is DPO for walmart?") == ("walmart",)  # capitals the passage spells out
    assert unknown("which region do we fail over to") == ()  # "fail" is in "failover"
    assert unknown("is there wifi") == ()
    assert unknown("initech revenue") == ("initech", "revenue")
    # words that only frame the question weigh little; a capital still marks a name the embedder never saw
    assert unknown("Initech net income", weight=0.2) == ("initech",)
    assert unknown("Outline the figures mentioned", weight=0.2) == ()
    assert unknown("How many grams of initech") == ("initech",)  # the unit is not the subject
    # the passage need not hold an abbreviation it may spell out in words of its own ("cost of products sold")
    asked = read("What was the COGS trend?")
    assert not _subject(nothing, asked, [0.9, 0.1], passages, None).lacks_weightiest
    assert _subject(nothing, read("What was the cogs trend?"), [0.9, 0.1], passages, None).lacks_weightiest


def test_a_subject_word_is_held_in_any_of_its_forms_but_never_inside_another_word() -> None:
    from kb.answer.retrieve import _subject

    passages = [hit(1, "notes.md", "General availability on 30 June 2024. Revenue is recognized at shipment. "
                                   "Post forms to our office address.")]

    def nothing(query: str, **_: object) -> list[Hit]:
        return []

    def subject(question: str) -> Subject:
        asked = read(question)
        return _subject(nothing, asked, [0.5] * len(asked.content), passages, None)

    assert subject("When is it generally available?").coverage == 1.0  # "General availability"
    dress = subject("is there a dress code in the office")  # "address" holds no "dress"
    assert dress.lacking == ("dress", "code") and dress.coverage == pytest.approx(1 / 3)
    assert subject("what were the cogs").lacking == ("cogs",)  # nor "recognized" any "cogs"


@pytest.mark.parametrize("name", ["Quill-Rowe Company", "Quillon.com, Inc.", "Q&R Holdings"])
def test_a_passage_holds_an_alias_where_it_holds_its_names_first_word_however_marked(name: str) -> None:
    from kb.answer.retrieve import _subject
    from kb.query.aliases import Alias

    passages = [hit(1, "10k.pdf", f"{name} reported revenue of $5 million.")]
    asked = read("What was qrx revenue?")
    known = {"qrx": Alias("qrx", (name,), frozenset({1}))}
    held = _subject(lambda query, **_: [], asked, [0.5] * len(asked.content), passages, None, known)
    assert held.coverage == 1.0 and held.lacking == ()


def test_the_text_just_above_a_passage_is_its_documents_own(tmp_path: Path) -> None:
    from kb.index.catalog import Catalog
    from kb.types import Chunk

    text = "Three Months Ended\nJune 30, 2024 June 30, 2023\nRevenue 9,310 8,720\nCost of revenue 3,105 2,990\n"
    cuts = [(0, 40), (30, 70), (70, len(text))]  # overlapping chunks, as the chunker carries text over
    chunks = [Chunk(i, text[a:b], text[a:b], (), 1, 1, a, b, 1) for i, (a, b) in enumerate(cuts)]
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        catalog.replace_document(path="/d/a.pdf", source="/d/a.pdf", file_type="pdf", sha256="a" * 64, size=1,
                                 mtime_ns=1, title="a", pages=1, metadata={}, chunks=chunks)
        doc = catalog.db.execute("SELECT id FROM documents").fetchone()[0]
        assert catalog.text_before(doc, 70, 1500) == text[:70]  # the overlap once
        assert catalog.text_before(doc, 70, 25) == text[45:70]
        assert catalog.text_before(doc, 0, 1500) == "" and catalog.text_before(doc, 70, 0) == ""
    finally:
        catalog.close()


def test_the_statement_row_the_question_names_joins_the_passages() -> None:
    from kb.answer.retrieve import KEYWORD_EXTRA, _own_words

    discussion = hit(1, "acme.pdf", "Research and development expenses rose as we hired engineers.", 1)
    mentions = [hit(1, "acme.pdf", f"We invest in research and development ({i}).", 10 + i) for i in range(KEYWORD_EXTRA)]
    note = hit(1, "acme.pdf", "Stock-based compensation:\nCost of revenue 12 10\nResearch and development 524 384", 20)
    statement = hit(1, "acme.pdf", "Revenue 9,310 8,720\nCost of revenue 3,105 2,990\nResearch and development 2,410 "
                                   "2,105\nSales, general and administrative 812 790\nTotal operating expenses 3,222 2,895", 21)

    def search(query: str, k: int = 5, **_: object) -> list[Hit]:  # keyword order: the rows come last
        return [*mentions, note, statement][:k]

    extra = _own_words(search, read("How much did Acme spend on research and development?"), [discussion], None)
    assert extra == [*mentions, statement]  # the row of the fuller table, not the note's
    assert _own_words(search, read("Why did Acme hire engineers?"), [discussion], None) == mentions  # no row named


def test_ground_focuses_on_the_documents_about_the_question_and_the_latest_one() -> None:
    passages = [
        hit(1, "2023 Q2 ACME.pdf", "Acme gross margin was 40%.", 1),
        hit(2, "2024 Q1 GLOBEX.pdf", "Gross margin was 35% at Globex.", 2),
        hit(3, "2022 Q4 ACME.pdf", "Acme gross margin was 38%.", 3),
        hit(4, "2023 Q3 ACME.pdf", "Acme gross margin was 41%.", 4),
    ]

    def search(query: str, **_: object) -> list[Hit]:
        return [h for h in passages if query.lower() in h.text.lower()]

    grounding = ground(read("What was Acme's gross margin in its latest report?"), passages, search)
    assert [h.doc_id for h in grounding.focused] == [1, 3, 4]  # Globex's passage is not about Acme
    assert grounding.latest == "2023 Q3 ACME.pdf"
    assert ground(read("What was Acme's gross margin?"), passages, search).latest is None


def test_the_best_passage_is_about_a_name_it_mentions_whatever_its_documents_size() -> None:
    """A one-page policy names London once; an annual report names it in passing forty times (an interest
    rate's name). The policy's passage, ranked first, is about London all the same."""
    policy = Hit(1, 2.0, 1, "travel-policy.md", 1, 1, None, "The nightly hotel limit is £140 in London.", doc_id=1)
    report = [Hit(i, 0.6, 100 + i, "annual-report.pdf", i, i, None, "Loans bear the London Interbank Offered Rate.",
                  doc_id=2) for i in range(2, 10)]

    def search(query: str, **_: object) -> list[Hit]:  # the keyword index: the report's mentions first
        return [*report, policy]

    grounding = ground(read("What is the hotel limit in London per night?"), [policy, *report[:3]], search)
    assert policy in grounding.focused


def test_a_passage_naming_both_sides_of_a_comparison_does_not_crowd_out_either() -> None:
    """Minutes that name both firms once rank first; each firm's report names its own ten times. The
    reports are what the question is about, not the minutes that name both."""
    minutes = Hit(1, 2.0, 1, "minutes.md", 1, 1, None, "Quillon delivered on time; Brackwater was late.", doc_id=1)
    reports = [Hit(2 + i, 1.0, 10 * (2 + i) + j, f"report-{firm}.md", j, j, None, f"{firm} operating income rose.",
                   doc_id=2 + i) for i, firm in enumerate(("Quillon", "Brackwater")) for j in range(10)]

    def search(query: str, **_: object) -> list[Hit]:
        return [h for h in [minutes, *reports] if query.lower() in h.text.lower()]

    grounding = ground(read("Compare Quillon and Brackwater operating income"), [minutes, reports[0], reports[10]],
                       search)
    assert {h.doc_id for h in grounding.focused} == {2, 3}


def test_the_reasons_not_to_answer() -> None:
    """Every "not found" comes from `decide`, which names its reason."""
    none = Passages([], [], Grounding([], []))
    empty = decide(none, None)
    assert empty is not None and empty.reason == EMPTY and empty.note == "the knowledge base holds no passages"
    filtered = decide(none, Filters(path="*.md"))
    assert filtered is not None and filtered.reason == FILTERED and filtered.note.startswith("no passage passes the filters")
    one = [hit(1, "a.md", "Acme revenue rose.")]
    far = decide(Passages(one, [0.12], Grounding([], one)), None)
    assert far is not None and far.reason == OFF_TOPIC and "best similarity 0.12 < 0.3" in far.note
    assert decide(Passages(one, [0.5], Grounding([], one)), None) is None


def test_a_subject_no_document_holds_or_no_passage_covers_is_not_found() -> None:
    one = [hit(1, "handbook.md", "Sick leave: ten paid days a year. Bereavement leave: five days.")]
    unknown = decide(Passages(one, [0.45], Grounding([], one), Subject(0.5, unknown=("initech",))), None)
    assert unknown is not None and unknown.reason == UNMENTIONED
    assert unknown.text == "Not found in the knowledge base: no document mentions initech."
    near_miss = Passages(one, [0.45], Grounding([], one), Subject(0.3, ("parental",)))
    uncovered = decide(near_miss, None)
    assert uncovered is not None and uncovered.reason == UNCOVERED
    assert uncovered.text == "Not found in the knowledge base: no passage is about parental."
    # a passage this close to the question answers it, worded otherwise
    assert decide(Passages(one, [0.62], Grounding([], one), Subject(0.3, ("parental",))), None) is None
    assert decide(Passages(one, [0.45], Grounding([], one), Subject(0.8)), None) is None
    # most of the words, but not the one that carries the subject ("parental" leave)
    weightiest = decide(Passages(one, [0.45], Grounding([], one), Subject(0.7, ("parental",), True)), None)
    assert weightiest is not None and weightiest.reason == UNCOVERED


def test_a_passage_near_the_question_only_for_the_name_they_share_does_not_answer() -> None:
    """"How much does the Nimbus dock weigh?" and a passage on the Nimbus launch party: close (the name
    carries the embedding) but holding none of what is asked of the name."""
    party = [hit(1, "nimbus-launch.md", "The Nimbus 2.0 launch party is on the roof terrace.")]
    near = decide(Passages(party, [0.68], Grounding([], party), Subject(0.0, ("weigh", "dock"), True)), None)
    assert near is not None and near.reason == UNCOVERED
    assert near.text == "Not found in the knowledge base: no passage is about weigh, dock."
    # a quarter of what is asked, as near: an answer worded otherwise
    assert decide(Passages(party, [0.68], Grounding([], party), Subject(0.3, ("weigh",), True)), None) is None


@pytest.mark.parametrize(("name", "period"), [
    ("/docs/2023 Q3 AAPL.pdf", (2023, 3)), ("AMCOR_2023Q2_10Q.pdf", (2023, 2)), ("report-2024-06.pdf", (2024, 6)),
    ("ADOBE_2017_10K.pdf", (2017, 0)), ("Q4-2021 summary.md", (2021, 4)), ("notes.md", None),
])
def test_period_of_a_file_name(name: str, period: tuple[int, int] | None) -> None:
    assert name_period(name) == period


STATEMENT = """CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)
(In millions, except number of shares which are reflected in thousands and per share amounts)
Three Months Ended Nine Months Ended
July 1,
2023
June 25,
2022
July 1,
2023
June 25,
2022
Net sales:
Products $ 60,584 $ 63,355 $ 230,901 $ 245,241
"""
ROW = "Total net sales $ 81,797 $ 82,959 (1)% $ 293,787 $ 304,182 (3)%"


@pytest.mark.parametrize(("question", "expected"), [
    ("What were total net sales for the quarter ended July 1, 2023?",
     "Total net sales, three months ended July 1, 2023: $81,797 million"),
    ("Total net sales in the quarter?", "Total net sales, three months ended July 1, 2023: $81,797 million"),
    ("Total net sales for the nine months ended June 25, 2022?",
     "Total net sales, nine months ended June 25, 2022: $304,182 million"),
    ("Total net sales for the three months ended June 25, 2022?",
     "Total net sales, three months ended June 25, 2022: $82,959 million"),
])
def test_a_row_is_read_at_the_column_asked_about(question: str, expected: str) -> None:
    cell = read_row(ROW, STATEMENT, read(question))
    assert isinstance(cell, Cell) and str(cell) == expected


def test_a_row_of_other_periods_is_refused_and_a_row_without_header_is_left_alone() -> None:
    assert read_row(ROW, STATEMENT, read("Total net sales for the quarter ended April 1, 2023?")) is False
    assert read_row(ROW, "Net sales by category:\n", read("Total net sales?")) is None
    assert read_row("Total net sales $ 81,797 $ 82,959", STATEMENT, read("Total net sales?")) is None  # 2 figures, 4 columns


def test_a_sentence_broken_across_lines_under_a_table_is_not_read_as_a_row() -> None:
    income = """(In millions) Three Months Ended
December 31, 2022 December 31, 2021
Research and development 5,215 4,870
"""
    broken = "The risks described in Part II of our 2022 Form 10-K and"  # a year and a form's number: two figures
    assert read_row(broken, income, read("What are the risks described in Part II?")) is None
    items = "The metrics are disclosed in the Notes (Part I, Item 1) and Item 2 of this report"
    assert read_row(items, income, read("Where are the metrics disclosed?")) is None
    cell = read_row("Research and development 5,215 4,870", income, read("What was spent on research and development?"))
    assert isinstance(cell, Cell) and cell.value == "5,215 million"


def test_a_statement_of_several_years_is_read_at_the_year_asked_about() -> None:
    income = "Consolidated Statements of Income\n(In millions)\nYears Ended December 31,\n2021 2020 2019\n"
    cell = read_row("Operating income 1,196 1,248 1,214", income, read("What was operating income in FY2020?"))
    assert isinstance(cell, Cell) and str(cell) == "Operating income, year ended December 31, 2020: 1,248 million"


BALANCE_SHEET = """CONDENSED CONSOLIDATED BALANCE SHEETS (Unaudited)
(In millions)
July 1,
2023
September 24,
2022
ASSETS:
Current assets:
Cash and cash equivalents $ 28,408 $ 23,646
"""


def test_a_balance_sheet_row_is_read_at_the_date_asked_about() -> None:
    """A statement of one moment has dates over its columns and no span ("three months ended")."""
    row = "Total current assets 122,659 135,405"
    latest = read_row(row, BALANCE_SHEET, read("What were total current assets?"))
    assert isinstance(latest, Cell) and str(latest) == "Total current assets, July 1, 2023: 122,659 million"
    year_end = read_row(row, BALANCE_SHEET, read("Total current assets at the end of fiscal 2022?"))
    assert isinstance(year_end, Cell) and year_end.value == "135,405 million"
    assert read_row(row, BALANCE_SHEET, read("Total current assets as of March 31, 2021?")) is False
    # a date in a sentence above is no table's header, nor are dates above a sentence
    prose = "On July 1, 2023 and September 24, 2022 the Company held the amounts described in this note.\n"
    assert read_row(row, prose, read("What were total current assets?")) is None
    between = BALANCE_SHEET + "the Company held cash of\n"
    assert read_row(row, between, read("What were total current assets?")) is None
    # a span in a sentence far above does not head it; a row with words among its figures does not end it
    above = "Revenue for the years ended in 2022 and 2021 grew as set out in the discussion above.\n" * 2
    equity = "Common stock, 50,400,000 shares authorized; 15,647,868 shares issued and outstanding 70,667 64,849\n"
    cell = read_row(row, above + BALANCE_SHEET + equity, read("What were total current assets?"))
    assert isinstance(cell, Cell) and str(cell) == "Total current assets, July 1, 2023: 122,659 million"


class NearFirst:
    """An embedder for which a text is as near the question as its place in `order` says: the first 0.9."""

    def __init__(self, *order: str) -> None:
        self.order = order

    def embed_query(self, text: str) -> np.ndarray:
        return np.array([1.0, 0.0])

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        near = [0.9 - 0.4 * next((i for i, o in enumerate(self.order) if o in t), 2) for t in texts]
        return np.array([[c, (1 - c * c) ** 0.5] for c in near])


def test_a_table_row_far_below_the_best_line_does_not_open_the_answer() -> None:
    lease = "The lease of the Canal Street office ends on 31 March 2027."
    table = "Years Ended June 30,\n2023 2022\nInterest on lease liabilities 501 429"
    sources = [Source(1, [hit(1, "lease.md", lease)], lease, 1, 1, 0.8),
               Source(2, [hit(2, "10-K.pdf", table)], table, 1, 1, 0.5)]
    answer = extractive_answer("When does the office lease end?", sources, NearFirst("Canal Street", "Interest"))
    assert answer.answer.startswith(lease), answer.answer
    near = extractive_answer("What was the interest on lease liabilities?", sources, NearFirst("Interest", "Canal"))
    assert near.answer.startswith("Interest on lease liabilities, year ended June 30, 2023: 501 ["), near.answer
    # a row naming two of the question's words opens the answer however far below: the statement row asked for
    far = extractive_answer("How much interest on lease liabilities?", sources, NearFirst("Canal Street"))
    assert far.answer.startswith("Interest on lease liabilities, year ended June 30, 2023: 501 ["), far.answer


@pytest.mark.parametrize(("row", "label"), [
    ("Cash generated by/(used in) investing activities 1,311 (3,936)", "Cash generated by/(used in) investing activities"),
    ("Deferred income tax expense/(benefit) 2,756 (737)", "Deferred income tax expense/(benefit)"),
    ("Other (61) (689)", "Other"),  # a parenthesis of figures is a negative value
    ("Gain (loss) on sale (Note 5) 12 10", "Gain (loss) on sale"),  # or a note's number
    ("Net income $ 19,442 $ 21,744", "Net income"),
])
def test_a_rows_label_keeps_its_words_in_parentheses(row: str, label: str) -> None:
    assert row_label(row) == label


def test_a_row_after_a_blocks_total_is_not_read_as_part_of_that_block() -> None:
    income = """(In millions) Three Months Ended
December 31, 2022 December 31, 2021
Cost of revenue:
Product 4,120 4,380
Service and other 8,460 7,915
Total cost of revenue 12,580 12,295
Gross margin 21,340 20,870
"""
    asked = read("How much was spent on research and development?")
    cell = read_row("Research and development 5,215 4,870", income, asked)
    assert isinstance(cell, Cell) and str(cell) == "Research and development, three months ended December 31, 2022: 5,215 million"
    inside = read_row("Service and other 8,460 7,915", income.split("Service")[0], read("What was service cost?"))
    assert isinstance(inside, Cell) and inside.group == "Cost of revenue"  # a row inside the block keeps its heading


@pytest.mark.parametrize(("question", "label"), [
    ("What was Arden's net cash from operating activities?", "Net cash from operations"),
    ("How much net cash did Arden's operations bring in?", "Net cash from operations"),
    ("What was Arden's net income?", "Net income"),
    ("What was depreciation?", "Depreciation"),
])
def test_the_first_line_is_the_row_naming_most_of_what_is_asked_not_a_one_word_label(question: str, label: str) -> None:
    from kb.answer.extractive import _asked_words, _best_cell, _units
    from kb.answer.types import Source

    text = """Cash flows (In millions) Three Months Ended
March 31, 2024 March 31, 2023
Net income 1,200 1,100
Depreciation 300 280
Other, net (45) 12
Net cash from operations 1,455 1,392"""
    source = Source(1, [hit(1, "arden.pdf", text)], text, 1, 1, 0.6)
    asked = read(question)
    best = _best_cell(asked, _asked_words(asked), _units([source]))
    assert best is not None and best[1].label == label


def test_a_header_with_days_above_years_is_read() -> None:
    """Some statements print the column days on one line and the years under them, or one day over
    several years."""
    header = "STATEMENTS OF INCOME (In millions)\nThree Months Ended\nApril 30, May 1,\n2023 2022\nRevenue $ 7,192 $ 8,288\n"
    cell = read_row("Total operating expenses 2,508 3,563", header, read("Operating expenses in the quarter ended May 1, 2022?"))
    assert isinstance(cell, Cell) and str(cell) == "Total operating expenses, three months ended May 1, 2022: 3,563 million"
    one_day = "BALANCE SHEETS (In millions)\nThree Months Ended\nSeptember 30,\n2023 2022\n"
    cell = read_row("Gross margin 40,215 35,115", one_day, read("What was the gross margin in the latest quarter?"))
    assert isinstance(cell, Cell) and str(cell) == "Gross margin, three months ended September 30, 2023: 40,215 million"


def test_topic_is_what_the_question_asks_of_its_names() -> None:
    assert read("What was Acme's gross margin in Q3 2023?").topic.split() == ["What", "was", "gross", "margin", "in", "?"]


LAB = """Assay throughput by site
Twelve Months Ended
June 30,
2022 2023
Samples tested:
North site 1,204 1,377
South site 988 1,012
Share of samples retested:
North site 4.1 % 3.2 %
"""


def test_with_no_period_asked_the_latest_column_is_read_whatever_the_column_order() -> None:
    """A table that prints its oldest column first (a lab's yearly sheet) is read at its latest column when
    the question names no period, at the year's column when it names one; the row's block heading
    ("Samples tested:") says what the bare label ("North site") counts."""
    before = LAB[:LAB.index("North site 1,204")]
    cell = read_row("North site 1,204 1,377", before, read("How many samples did the North site test?"))
    assert isinstance(cell, Cell) and str(cell) == "North site (samples tested), twelve months ended June 30, 2023: 1,377"
    cell = read_row("North site 1,204 1,377", before, read("How many samples did the North site test in 2022?"))
    assert isinstance(cell, Cell) and cell.value == "1,204" and cell.period == "twelve months ended June 30, 2022"


def test_a_row_of_percentages_is_read_as_percentages() -> None:
    before = LAB[:LAB.index("North site 4.1")]
    cell = read_row("North site 4.1 % 3.2 %", before, read("What share of the North site's samples was retested?"))
    assert isinstance(cell, Cell)
    assert str(cell) == "North site (share of samples retested), twelve months ended June 30, 2023: 3.2%"


def test_the_change_columns_after_the_dated_ones_are_not_read_as_periods() -> None:
    header = "Three Months Ended\nApril 30,\n2023\nMay 1,\n2022\n$\nChange\n%\nChange\n($ in millions)\n"
    cell = read_row("Interest expense (66) (68) 2 (3)%", header, read("What was the interest expense?"))
    assert isinstance(cell, Cell) and str(cell) == "Interest expense, three months ended April 30, 2023: (66) million"


def test_words_are_stemmed_the_same_from_threads_side_by_side() -> None:
    """The server and MCP answer questions in threads: the one Porter stemmer takes turns."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from kb.answer import retrieve

    words = [f"{w}{i}" for i in range(300) for w in ("availability", "generally", "compensation", "expenditures")]
    expected = [retrieve._PORTER.stemWord(w) for w in words]
    retrieve._stem.cache_clear()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda _: [retrieve._stem(w) for w in words], range(4)))
    finally:
        sys.setswitchinterval(interval)
        retrieve._stem.cache_clear()
    assert all(run == expected for run in runs)


def test_a_passage_that_starts_inside_a_table_reads_its_header_above_a_wrapped_label() -> None:
    """A passage cut inside a statement, whose rows above the one asked about include a label run onto a
    second line ("Less: Net income attributable to" / "non-controlling interests (8) (3)"), still reads
    the header from the text just above the passage."""
    from kb.answer.extractive import extractive_answer
    from kb.answer.types import Source
    from tests.helpers import FakeEmbedder

    header = "Consolidated Statements of Income\n(In millions) Three Months Ended\nJuly 1, 2023 July 2, 2022\n" \
             "Revenue 12,949 15,321\nOperating income (loss) (1,016) (700)\n"
    text = ("Net income (loss) 1,473 (454)\nLess: Net income attributable to\nnon-controlling interests (8) (3)\n"
            "Net income attributable to Arden $ 1,481 $ (451)")
    source = Source(1, [hit(1, "arden.pdf", text)], text, 3, 3, 0.6, before=header)
    answer = extractive_answer("What was the net income attributable to Arden in the quarter?", [source], FakeEmbedder())
    assert answer.answer.split("\n")[0] == "Net income attributable to Arden, three months ended July 1, 2023: $1,481 million [1]"
