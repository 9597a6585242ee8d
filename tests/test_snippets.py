"""Snippets show the match: the best window of a hit's text, the query's terms marked the way the
keyword index matches them (stems, figures, quoted phrases), in the CLI, the JSON and the library."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.cli import main
from kb.index.catalog import Catalog
from kb.query.snippet import TOKENIZE, WIDTH, annotate, best_window, find, merged, snippet, weights
from kb.types import Chunk, Hit, Snippet
from tests.helpers import FAKE

FILLER = ("The committee met in the spring and reviewed the budget, the staffing plan and the schedule for "
          "the coming year, and agreed to revisit each of them at the next meeting after the audit. ")
FIGURE = "Total gross margin was $36,413 million for the quarter."


def hit(text: str) -> Hit:
    return Hit(1, 1.0, 1, "/docs/a.md", None, None, None, text)


def marked(s: Snippet) -> list[str]:
    return [piece for piece, match in s.segments() if match]


# --- the window and its marks -------------------------------------------------------------------
def test_the_window_holds_a_match_past_the_first_300_characters() -> None:
    text = FILLER * 4 + FIGURE + " " + FILLER * 2
    assert text.index("36,413") > WIDTH
    h = hit(text)
    annotate([h], '"36,413"')
    assert h.snippet is not None
    assert "$36,413 million" in h.snippet.text and marked(h.snippet) == ["36,413"]
    assert h.snippet.text.startswith("…") and h.snippet.text.endswith("…") and len(h.snippet.text) <= WIDTH + 2
    # cut at word boundaries: the first and last words are whole words of the text
    words = h.snippet.text.strip("…").split()
    assert f" {words[0]} " in text and f" {words[-1]} " in text
    assert [text[s:e] for s, e in h.highlights] == ["36,413"]


def test_marks_agree_with_the_keyword_index_tokenizer() -> None:
    text = "Revenues rose. Net sales (net-sales) grew; 36 413 units, and U.S. résumé."
    found = find([text], ["revenue", "net sales", "36 413", "u s", "resume"])[0]
    assert {t: [text[s:e] for s, e in spans] for t, spans in found.items()} == {
        "revenue": ["Revenues"], "net sales": ["Net sales", "net-sales"], "36 413": ["36 413"], "u s": ["U.S"],
        "resume": ["résumé"]}


def test_the_catalog_indexes_with_the_same_tokenizer(tmp_path: Path) -> None:
    Catalog(tmp_path / "catalog.sqlite").close()
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
    assert f"tokenize='{TOKENIZE}'" in sql


def _chunk(text: str) -> Chunk:
    return Chunk(0, text, text, (), 1, 1, 0, len(text), len(text.split()))


def _put(catalog: Catalog, path: str, text: str) -> None:
    catalog.replace_document(path=path, source=path, file_type="text", sha256=path, size=1, mtime_ns=1, title="t",
                             pages=1, metadata={}, chunks=[_chunk(text)])


def test_the_counts_a_search_reads_follow_every_write_from_any_connection(tmp_path: Path) -> None:
    """Totals, the chunks' version and the common folder are remembered between searches (counting is
    O(chunks)), yet a document another process or thread adds or removes shows at once."""
    reader, writer = Catalog(tmp_path / "catalog.sqlite"), Catalog(tmp_path / "catalog.sqlite")
    assert reader.totals() == (0, 0, 0) and reader.common_folder() is None
    empty = reader.version()
    _put(writer, "/d/a/one.txt", "wombat burrows")
    assert reader.totals() == (1, 1, 1) and reader.common_folder() == "/d/a"
    one = reader.version()
    assert one != empty
    _put(writer, "/d/b/two.txt", "quokka burrows")
    assert reader.totals()[:2] == (2, 2) and reader.common_folder() == "/d" and reader.version() != one
    reader.delete_document("/d/b/two.txt")  # its own write
    assert reader.totals()[:2] == (1, 1) and reader.common_folder() == "/d/a" and writer.totals()[:2] == (1, 1)
    _put(writer, "/d/a/one.txt", "wombat tunnels")  # as many chunks as before, new text
    assert reader.version() != one
    assert weights(["wombat", "tunnel"], "wombat tunnel", [{}], reader) == weights(
        ["wombat", "tunnel"], "wombat tunnel", [{}], reader, counted={"wombat": 1, "tunnel": 1})
    given = weights(["wombat"], "wombat", [{}], reader, counted={"wombat": 0})  # what the search counted is used
    assert given["wombat"] > weights(["wombat"], "wombat", [{}], reader)["wombat"]
    reader.close()
    writer.close()


def test_a_quoted_phrase_beats_its_words_apart_and_rare_terms_beat_common_ones() -> None:
    apart = "Net income was flat. " + "Sales in the region were steady. " * 12
    together = "In the third quarter net sales rose by four percent on higher volumes."
    text = apart + FILLER * 2 + together
    h = hit(text)
    annotate([h], '"net sales"')
    assert h.snippet is not None and "net sales rose" in h.snippet.text

    common, rare = "alpha " * 40, "omega beta"
    text = common + FILLER * 3 + rare + " " + FILLER
    found = find([text], ["alpha", "omega"])[0]
    window = best_window(text, found, {"alpha": 0.1, "omega": 5.0})
    assert window[0] <= text.index("omega") < text.index("omega") + 5 <= window[1]
    assert "alpha" not in text[window[0]:window[1]]


def test_weights_count_rarity_and_literals() -> None:
    texts = ["net sales 36,413", "net sales", "net income"]
    wanted = ["net", "sales", "36 413"]
    w = weights(wanted, "net sales 36,413", find(texts, wanted))
    assert w["36 413"] > w["sales"] > w["net"] > 0


def test_short_text_whole_and_no_match_shows_the_start() -> None:
    assert snippet("a  b\n\nc", best_window("a  b\n\nc", {}, {}), []).text == "a b c"
    h = hit(FILLER * 5)
    annotate([h], "zebra")
    assert h.snippet is not None and h.snippet.highlights == () and h.highlights == []
    assert h.snippet.text.endswith("…") and not h.snippet.text.startswith("…")
    assert (FILLER * 5).startswith(h.snippet.text[:-1])


def test_offsets_are_code_points_and_markers_in_the_text_are_harmless() -> None:
    text = "😀 net \x02sales\x03 net"
    h = hit(text)
    annotate([h], "net sales")
    assert [text[s:e] for s, e in h.highlights] == ["net", "sales", "net"]
    assert h.snippet is not None and marked(h.snippet) == ["net", "sales", "net"]
    assert h.to_json()["highlights"] == [[2, 5], [7, 12], [14, 17]]


def test_segments_and_merged() -> None:
    s = Snippet("…total net sales rose…", ((7, 10), (11, 16)))
    assert list(s.segments()) == [("…total ", False), ("net", True), (" ", False), ("sales", True),
                                  (" rose…", False)]
    assert merged([(5, 9), (0, 3), (2, 4), (9, 10)]) == [(0, 4), (5, 10)]


# --- the CLI --------------------------------------------------------------------------------------
@pytest.fixture
def fake_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A knowledge base, embedded by the fake embedder, of one note whose figure is deep in a chunk."""
    for key, value in {**FAKE, "workers": "1"}.items():
        monkeypatch.setenv(f"KB_{key.upper()}", value)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "minutes.md").write_text("# Minutes\n\n" + FILLER * 4 + FIGURE + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["ingest", str(docs), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return docs


@pytest.mark.parametrize("mode", ["keyword", "dense", "hybrid"])
def test_cli_snippet_shows_the_match_past_the_first_300_characters(fake_kb: Path, mode: str) -> None:
    out = CliRunner().invoke(main, ["search", '"36,413"', "--mode", mode, "-k", "1", "--json"])
    assert out.exit_code == 0, out.output
    top = json.loads(out.stdout)["hits"][0]
    assert top["text"].index("36,413") > 300  # the chunk's start would not show it
    assert "36,413" in top["snippet"]
    assert [top["text"][s:e] for s, e in top["highlights"]] == ["36,413"]
    assert [top["snippet"][s:e] for s, e in top["snippet_highlights"]] == ["36,413"]

    plain = CliRunner().invoke(main, ["search", '"36,413"', "--mode", mode, "-k", "1"])
    assert plain.exit_code == 0, plain.output
    line = plain.stdout.splitlines()[1]
    assert "$36,413 million" in line and "\x1b[" not in line  # not a terminal: no styling
    bold = CliRunner().invoke(main, ["search", '"36,413"', "--mode", mode, "-k", "1"], color=True)
    assert "$\x1b[1m36,413\x1b[0m million" in bold.stdout.splitlines()[1]


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.sampled_from(["net", "sales", "36,413", "Revenues", "the", "U.S.", "😀", "\n", "  ", "x\x02y",
                                       "10-Q"]), max_size=120),
       query=st.sampled_from(["net sales", '"net sales" 36,413', "revenue", "10-Q", "zebra"]),
       width=st.sampled_from([20, 80, 300]))
def test_any_text_gives_a_one_line_snippet_whose_marks_are_the_matches(words: list[str], query: str,
                                                                        width: int) -> None:
    text = " ".join(words)
    h = hit(text)
    annotate([h], query, width=width)
    assert h.snippet is not None and "\n" not in h.snippet.text and "  " not in h.snippet.text
    assert len(h.snippet.text) <= width + 2 or len(" ".join(text.split())) <= width
    matched = {" ".join(text[s:e].split()) for s, e in h.highlights}
    assert all(0 <= s < e <= len(text) for s, e in h.highlights)
    assert all(any(piece in m for m in matched) for piece in marked(h.snippet))
