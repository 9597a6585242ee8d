"""Chunking in the model's own tokens: nothing truncated, exact spans, structure respected."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.embed.torch import SentenceTransformerEmbedder
from kb.ingest.base import parser_for
from kb.ingest.chunker import Chunker
from kb.types import Block, ParsedDocument
from tests.conftest import AAPL_Q3_2023
from tests.helpers import write_markdown


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def chunker(embedder: SentenceTransformerEmbedder) -> Chunker:
    return Chunker(embedder.tokenizer(), max_tokens=256, overlap=32, max_seq_length=embedder.max_seq_length)


def _model_tokens(embedder: SentenceTransformerEmbedder, text: str) -> int:
    """Tokens the model itself sees, special tokens included, with no truncation."""
    tok = embedder.tokenizer()
    return len(tok.encode(text).ids)


@pytest.mark.needs_eval
@pytest.mark.slow
def test_real_10q_chunks_fit_the_model_and_are_exact_slices(embedder: SentenceTransformerEmbedder, chunker: Chunker) -> None:
    doc = parser_for(AAPL_Q3_2023).parse(AAPL_Q3_2023)
    text, chunks = chunker.chunk(doc)
    assert len(chunks) > 50
    assert embedder.max_seq_length == 256
    for c in chunks:
        assert text[c.char_start : c.char_end] == c.text
        assert c.embed_text.endswith(c.text)
        assert c.embed_text.startswith("2023 Q3 AAPL")
        assert _model_tokens(embedder, c.embed_text) <= 256, c.embed_text[:200]
        assert c.page_start is not None and c.page_start <= c.page_end
    # Chunks follow the document: ordinals ascend and every page is covered.
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    assert {p for c in chunks for p in range(c.page_start, c.page_end + 1)} == set(range(1, 30))
    # Most chunks use the window well (no confetti).
    assert sum(c.tokens for c in chunks) / len(chunks) > 100


def test_heading_path_is_in_embedded_text_not_in_shown_text(chunker: Chunker, tmp_path: Path) -> None:
    path = write_markdown(tmp_path / "runbook.md")
    _, chunks = chunker.chunk(parser_for(path).parse(path))
    incident = next(c for c in chunks if "error 5031" in c.text)
    assert incident.section == "Payments runbook > Incident response"
    assert incident.embed_text.startswith("Payments runbook / Payments runbook / Incident response\n")
    assert "Payments runbook /" not in incident.text


def test_chunks_split_at_headings(chunker: Chunker, tmp_path: Path) -> None:
    path = write_markdown(tmp_path / "runbook.md")
    _, chunks = chunker.chunk(parser_for(path).parse(path))
    assert [c.section for c in chunks] == [
        "Payments runbook",
        "Payments runbook > Incident response",
        "Payments runbook > Capacity",
    ]
    # The code block stays whole, with the prose of its section.
    assert "kubectl rollout restart deployment/payments\nkubectl get pods" in chunks[1].text


def test_long_section_splits_at_sentences_with_overlap(chunker: Chunker) -> None:
    sentences = [f"Sentence number {i} talks about topic {i} in some detail for the reader." for i in range(120)]
    doc = ParsedDocument("Long", [Block(" ".join(sentences), ("Chapter",), None)])
    text, chunks = chunker.chunk(doc)
    assert len(chunks) >= 3
    for c in chunks:
        assert c.text.startswith("Sentence number") and c.text.endswith("reader.")
        assert c.tokens <= chunker.limit
    # Neighbours share whole sentences, at most `overlap` tokens of them.
    for a, b in zip(chunks, chunks[1:]):
        assert b.char_start < a.char_end
        shared = a.text[b.char_start - a.char_start :]
        assert shared == b.text[: len(shared)]
        assert chunker.count([shared])[0] <= 32


def test_table_larger_than_window_splits_between_rows(chunker: Chunker) -> None:
    rows = "\n".join(f"| row {i} | value {i * 7} | note {i} |" for i in range(200))
    doc = ParsedDocument("T", [Block(rows, (), None, kind="table")])
    _, chunks = chunker.chunk(doc)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text.startswith("| row ") and c.text.endswith("|")


def test_word_longer_than_window_is_split_by_tokens(chunker: Chunker) -> None:
    blob = "x" * 5000
    doc = ParsedDocument("B", [Block(blob, (), None)])
    text, chunks = chunker.chunk(doc)
    assert "".join(c.text for c in chunks) == blob
    assert all(c.tokens <= chunker.limit for c in chunks)


def test_pages_start_new_chunks(chunker: Chunker) -> None:
    para = "This paragraph is long enough to matter for the page rule of the chunker. " * 8
    doc = ParsedDocument("P", [Block(para, (), 1), Block(para, (), 2), Block("short note", (), 3), Block("tail", (), 4)])
    _, chunks = chunker.chunk(doc)
    # A well-filled chunk ends at its page; a small one takes in the next page rather than stand alone.
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2), (3, 4)]
