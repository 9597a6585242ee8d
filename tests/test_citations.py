"""The citation checker: figures in any format, meaning by embedding, markers that point nowhere.

Sources are real passages of Apple's Q3 2023 10-Q (pages 4 and 18, as pypdf extracts them)."""

from __future__ import annotations

import pytest

from kb.answer.citations import (
    SUPPORT_SIMILARITY,
    check_sentences,
    cited_numbers,
    clean_citations,
    find_numbers,
    number_supported,
    split_sentences,
    strip_markers,
)

SEGMENTS = """The Company repurchased $18.0 billion of its common stock and paid dividends and dividend equivalents \
of $3.8 billion during the third quarter of 2023.
Macroeconomic Conditions
Macroeconomic conditions, including inflation, changes in interest rates, and currency fluctuations, have directly \
and indirectly impacted, and could in the future
materially impact, the Company’s results of operations and financial condition.
Segment Operating Performance
The following table shows net sales by reportable segment for the three- and nine-month periods ended July 1, 2023 \
and June 25, 2022 (dollars in millions):
Net sales by reportable segment:
Americas $ 35,383 $ 37,472 (6)% $ 122,445 $ 129,850 (6)%
Europe 20,205 19,287 5 % 71,831 72,323 (1)%
Greater China 15,758 14,604 8 % 57,475 58,730 (2)%
Japan 4,821 5,446 (11)% 18,752 20,277 (8)%
Total net sales $ 81,797 $ 82,959 (1)% $ 293,787 $ 304,182 (3)%
Japan
The weakness in the yen relative to the U.S. dollar had an unfavorable year-over-year impact on Japan net sales \
during the third quarter and first nine months of
2023. During the third quarter of 2023, the Japan net sales decrease consisted primarily of lower net sales of iPhone."""

OPERATIONS = """CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)
(In millions, except number of shares which are reflected in thousands and per share amounts)
Research and development 7,442 6,797 22,608 19,490
Selling, general and administrative 5,973 6,012 18,781 18,654
Operating income 22,998 23,076 87,332 94,543
Net income $ 19,881 $ 19,442 $ 74,039 $ 79,082
Diluted $ 1.26 $ 1.20 $ 4.67 $ 4.82"""


@pytest.fixture(scope="module")
def embed():
    from kb.embed.torch import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu").embed_documents


@pytest.mark.parametrize(
    ("claim", "source", "ok"),
    [
        ("1,577", "a total of 1577 units", True),
        ("1577", "a total of 1,577 units", True),
        ("$1.6 billion", "1,600 million", True),
        ("1,600 million", "$1.6 billion", True),
        ("1.6", "$1.6 billion", True),
        ("$1.6 billion", "$1,577 million", True),  # rounded at the precision it is written in
        ("$81.8 billion", "Total net sales $ 81,797 $ 82,959", True),  # a table 'in millions'
        ("$81,797 million", "Total net sales $ 81,797", True),
        ("$18 billion", "repurchased $18.0 billion", True),
        ("6%", "Americas $ 35,383 $ 37,472 (6)%", True),
        ("$1.26", "Diluted $ 1.26 $ 1.20", True),
        ("three", "3", False),  # number words in claims are not checked (only in sources)
        ("3", "three reportable segments", True),
        ("$81.9 billion", "Total net sales $ 81,797 $ 82,959", False),
        ("$2 billion", "$1,577 million", False),  # one significant digit: no rounding allowed
        ("2", "1.5", False),
        ("$19.5 billion", "repurchased $18.0 billion", False),
        ("42", "Total net sales $ 81,797", False),
    ],
)
def test_number_formats(claim: str, source: str, ok: bool) -> None:
    claims = find_numbers(claim)
    pool = find_numbers(source, words=True)
    assert all(number_supported(c, pool) for c in claims) is ok if claims else not ok


def test_what_is_not_a_figure() -> None:
    found = [n.text for n in find_numbers("Apple's Q3 2023 Form 10-Q [2] notes COVID-19 effects in FY23 on the 1st day.")]
    assert found == ["2023"]
    scaled = find_numbers("$1.6B and 300K and $5 million and 12.5%")
    assert [(n.value, n.scale) for n in scaled] == [(1.6, 1e9), (300.0, 1e3), (5.0, 1e6), (12.5, None)]


def test_sentences_undo_pdf_wraps() -> None:
    sents = split_sentences(SEGMENTS)
    assert ("Macroeconomic conditions, including inflation, changes in interest rates, and currency fluctuations, "
            "have directly and indirectly impacted, and could in the future materially impact, the Company’s "
            "results of operations and financial condition.") in sents
    assert "Europe 20,205 19,287 5 % 71,831 72,323 (1)%" in sents  # table rows stay rows
    assert "Macroeconomic Conditions" in sents  # headings stay headings
    assert split_sentences("Apple Inc. sold more. [1] The U.S. fell [2].") == ["Apple Inc. sold more. [1]", "The U.S. fell [2]."]
    # a line of prose that runs to the margin goes on below, even in a capital; a short one (a heading) does not
    wrapped = ("The following statements are formatted in a structured language: (i) Statements of Cash Flows, (iii) Consolidated\n"
               "Statements of Income, and (iv) Notes.\nGross Margin\nGross margin rose.")
    assert split_sentences(wrapped) == [
        "The following statements are formatted in a structured language: (i) Statements of Cash Flows, (iii) Consolidated "
        "Statements of Income, and (iv) Notes.", "Gross Margin", "Gross margin rose."]
    # a line that ends on a figure goes on when the next starts with a joining word
    assert split_sentences("Margin rose to 74.0% and 70.9%, from 53.6%\nand 55.1% a year ago.\nTotal 5 6") == [
        "Margin rose to 74.0% and 70.9%, from 53.6% and 55.1% a year ago.", "Total 5 6"]


def test_citation_markers() -> None:
    assert cited_numbers("Sales fell [2]. Margins rose [1, 3] and [Source 4] [5-6].") == [2, 1, 3, 4, 5, 6]
    assert strip_markers("Sales fell [2].") == "Sales fell."


def test_invented_source_numbers_are_removed() -> None:
    text, removed = clean_citations("Net sales were $81,797 million [1][7]. Japan fell [2, 9]. Margins [12].", range(1, 6))
    assert removed == [7, 9, 12]
    assert text == "Net sales were $81,797 million [1]. Japan fell [2]. Margins."


@pytest.mark.slow
def test_supported_and_unsupported_sentences(embed) -> None:  # type: ignore[no-untyped-def]
    answer = (
        "Apple's total net sales for the third quarter of 2023 were $81.8 billion [1]. "
        "During the quarter Apple bought back $18.0 billion of its common stock [1]. "
        "A weaker yen versus the dollar hurt net sales in Japan [1]. "
        "Apple repurchased $19.5 billion of its common stock in the third quarter of 2023 [1]. "
        "The company's new campus runs entirely on solar power and recycled water [1]. "
        "Research and development expense was $7,442 million in the quarter [2]. "
        "Research and development expense was $7,442 million in the quarter [1]. "
        "Net income reached $19,881 million while Greater China sales were $15,758 million [1][2]. "
        "This sentence cites nothing."
    )
    checks = check_sentences(answer, {1: SEGMENTS, 2: OPERATIONS}, embed)

    def verdict(start: str):  # type: ignore[no-untyped-def]
        return next(c for c in checks if c.sentence.startswith(start))

    assert len(checks) == 8  # the uncited sentence is not checked
    assert verdict("Apple's total net sales for the third qua").supported
    assert verdict("During the quarter Apple bought back $18.").supported
    assert verdict("A weaker yen versus the dollar hurt net s").supported
    wrong = verdict("Apple repurchased $19.5 billion of its co")
    assert not wrong.supported and wrong.missing_numbers == ["$19.5 billion"]
    unrelated = verdict("The company's new campus runs entirely on")
    assert not unrelated.supported and unrelated.similarity < SUPPORT_SIMILARITY and not unrelated.missing_numbers
    assert verdict("Research and development expense was $7,").citations == [2]  # the [2] one comes first
    assert verdict("Research and development expense was $7,").supported
    wrong_source = next(c for c in checks if c.citations == [1] and "7,442" in c.sentence)
    assert not wrong_source.supported and wrong_source.missing_numbers == ["$7,442 million"]
    both = verdict("Net income reached $19,881 million while ")
    assert both.supported and both.citations == [1, 2]  # each figure is in one of the two
    assert "$19.5 billion is not in [1]" in wrong.reasons
    uncited = check_sentences("Apple bought back $18.0 billion of stock. It also sold 7 million robots.",
                              {1: SEGMENTS, 2: OPERATIONS}, embed)
    assert [c.supported for c in uncited] == [True, False]  # figures without [n]: checked against all sources
    assert uncited[1].citations == [] and uncited[1].reasons[:2] == ["cites no source", "7 million is not in any source"]
    assert wrong.best_quote[1].startswith("The Company repurchased $18.0 billion")
