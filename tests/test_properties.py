"""Property-based tests (hypothesis) where an off-by-one becomes a wrong citation: chunk spans map
back exactly to the text and pages they came from and cover every word; citation markers are
renumbered only into the sources given; a figure is matched in any of its spellings and only then."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.answer.citations import cited_numbers, clean_citations, find_numbers, number_supported
from kb.ingest.chunker import BLOCK_SEPARATOR, Chunker
from kb.types import Block, ParsedDocument
from tests.helpers import FakeEmbedder

WORDS = st.sampled_from("the harbour ledger lists 1,577 barrels; keeper Ada logs fog at dawn. Rates rose 4.5% in "
                        "March: see table 3 (page 2). Ships, crews and cargo! Why? Because tides turn".split())
SENTENCE = st.lists(WORDS, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
BLOCK_TEXT = st.lists(SENTENCE, min_size=1, max_size=12).map(" ".join)
HEADINGS = st.lists(st.sampled_from(["Intro", "Results", "Risk factors", "Notes"]), max_size=2).map(tuple)

_TOKENIZER = FakeEmbedder().tokenizer()


@st.composite
def documents(draw: st.DrawFn) -> ParsedDocument:
    blocks = []
    page = 1
    for _ in range(draw(st.integers(1, 8))):
        page += draw(st.integers(0, 1))
        kind = draw(st.sampled_from(["text", "text", "table"]))
        text = draw(BLOCK_TEXT) if kind == "text" else "\n".join(draw(st.lists(SENTENCE, min_size=1, max_size=6)))
        blocks.append(Block(text, draw(HEADINGS), page, kind))
    return ParsedDocument(title=draw(st.sampled_from(["", "Harbour report"])), blocks=blocks, pages=page)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), max_tokens=st.integers(24, 200), overlap=st.integers(0, 16))
def test_chunk_spans_are_exact_cover_every_word_and_name_their_pages(doc: ParsedDocument, max_tokens: int,
                                                                      overlap: int) -> None:
    chunker = Chunker(_TOKENIZER, max_tokens=max_tokens, overlap=overlap, max_seq_length=256)
    text, chunks = chunker.chunk(doc)
    assert text == BLOCK_SEPARATOR.join(b.text for b in doc.blocks)
    spans, start = [], 0
    for b in doc.blocks:
        spans.append((start, start + len(b.text), b.page))
        start += len(b.text) + len(BLOCK_SEPARATOR)
    covered = [False] * len(text)
    for c in chunks:
        assert c.text == text[c.char_start : c.char_end]  # the citation's span is the chunk, exactly
        pages = [p for s, e, p in spans if s < c.char_end and c.char_start < e]
        assert (c.page_start, c.page_end) == (min(pages), max(pages))  # and its pages are those it spans
        for i in range(c.char_start, c.char_end):
            covered[i] = True
    missed = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missed, f"characters in no chunk: {text[missed[0]:missed[0] + 40]!r}"
    assert [c.ord for c in chunks] == list(range(len(chunks)))


@given(text=st.lists(st.one_of(SENTENCE, st.lists(st.integers(0, 12), min_size=1, max_size=3).map(
    lambda ns: "[" + ", ".join(map(str, ns)) + "]")), max_size=12).map(" ".join),
    valid=st.sets(st.integers(1, 8), max_size=6))
def test_citations_keep_only_the_sources_given(text: str, valid: set[int]) -> None:
    cleaned, removed = clean_citations(text, sorted(valid))
    assert set(cited_numbers(cleaned)) <= valid
    assert set(removed) == set(cited_numbers(text)) - valid
    assert set(cited_numbers(cleaned)) == set(cited_numbers(text)) & valid


@given(n=st.integers(1_000, 999_999_999))
def test_a_figure_is_found_in_any_spelling_and_a_different_one_is_not(n: int) -> None:
    claim = find_numbers(f"Revenue was {n:,} dollars.")[0]
    assert number_supported(claim, find_numbers(f"revenue of {n} dollars"))
    assert number_supported(find_numbers(f"Revenue was {n} dollars.")[0], find_numbers(f"total {n:,}"))
    other = n * 3 + 7  # three times as large: no rounding or scale word makes it the same figure
    assert not re.fullmatch(r"0*", str(other)) and not number_supported(claim, find_numbers(f"total {other:,}"))
