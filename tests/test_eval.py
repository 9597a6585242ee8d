"""`kb eval`: gold files (CSV, JSONL), recall@k at document and page level, MRR, misses, --compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import main
from kb.errors import ConfigError
from kb.query.evaluate import GoldQuestion, evaluate, load_gold, parse_run, source_matches
from kb.types import Hit
from tests.conftest import EVAL, SEC

REPO = Path(__file__).resolve().parents[1]
PAGE_GOLD = REPO / "benchmarks" / "sec10q_pages.jsonl"


def hit(source: str, page: int | None = None, page_end: int | None = None) -> Hit:
    return Hit(rank=0, score=0.0, chunk_id=0, source=source, page=page, page_end=page_end or page, section=None, text="")


def test_gold_names_and_globs_match_file_names() -> None:
    src = "/data/sec/2023 Q3 AAPL.pdf"
    assert source_matches("*2023 Q3 AAPL*", src)
    assert source_matches("*aapl*", src)  # case does not matter
    assert not source_matches("*2023 Q2 AAPL*", src)
    assert source_matches("2023 Q3 AAPL.pdf", src) and source_matches("2023 Q3 AAPL", src)  # name, or stem
    assert not source_matches("AAPL", src)  # a bare word is a whole name, not a substring
    assert source_matches("sec/*.pdf", src) and not source_matches("other/*.pdf", src)
    assert not source_matches("*sec*", src)  # globs without a slash look at the file name only


def test_recall_mrr_and_misses_computed_by_hand() -> None:
    questions = [
        GoldQuestion("q1", ["*2023 Q3 AAPL*"], [4, 20]),
        GoldQuestion("q2", ["*AAPL*"]),
        GoldQuestion("q3", ["report.pdf"], [2]),
        GoldQuestion("q4", ["*nothing*"]),
    ]
    answers = {
        "q1": [hit("/d/2023 Q1 MSFT.pdf", 3), hit("/d/2023 Q3 AAPL.pdf", 19), hit("/d/2023 Q3 AAPL.pdf", 20)],
        "q2": [hit("/d/2022 Q3 AAPL.pdf", 5), hit("/d/2023 Q1 MSFT.pdf", 5)],
        "q3": [hit("/d/report.pdf", 1, 2)],  # a chunk spanning pages 1-2 holds page 2
        "q4": [hit("/d/report.pdf", 1)],
    }
    sources = ["/d/2023 Q3 AAPL.pdf", "/d/2022 Q3 AAPL.pdf", "/d/2023 Q1 MSFT.pdf", "/d/report.pdf"]
    asked: list[int] = []

    def search(question: str, k: int) -> list[Hit]:
        asked.append(k)
        return answers[question][:k]

    r = evaluate(questions, search, [3, 1], name="hand", sources=sources)
    assert asked == [3, 3, 3, 3]  # one search per question, at the largest k
    assert r.questions == 4 and r.ks == [1, 3]
    assert r.doc_recall == {"1": 0.5, "3": 0.75}  # q2, q3 at rank 1; q1 at rank 2; q4 never
    assert r.mrr == 0.625  # (1/2 + 1 + 1 + 0) / 4
    assert r.page_questions == 2
    assert r.page_recall == {"1": 0.5, "3": 1.0}  # q3 at rank 1, q1 at rank 3
    assert r.page_mrr == pytest.approx(0.6667)  # (1/3 + 1) / 2
    assert [m["question"] for m in r.misses] == ["q4"]
    assert r.misses[0]["got"] == ["/d/report.pdf p.1"]
    assert r.groups["single-doc"]["questions"] == 2 and r.groups["single-doc"]["doc_recall"] == {"1": 0.5, "3": 1.0}
    assert r.groups["multi-doc"]["questions"] == 1 and r.groups["gold-not-indexed"]["questions"] == 1


def test_gold_files_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "gold.csv"
    csv_file.write_text(
        '\ufeffQuestion,Source Docs,Pages,Question Type\n'
        '"Net sales?","*2023 Q3 AAPL*,\n*2023 Q2 AAPL*","4, 10-11",Table\n'
        '"Empty rows are skipped",x,,\n'
        ',"*x*",,\n',
        encoding="utf-8",
    )
    qs = load_gold(csv_file)
    assert [q.question for q in qs] == ["Net sales?", "Empty rows are skipped"]
    assert qs[0].sources == ["*2023 Q3 AAPL*", "*2023 Q2 AAPL*"]
    assert qs[0].pages == [4, 10, 11] and qs[0].meta == {"Question Type": "Table"}
    jsonl = tmp_path / "gold.jsonl"
    jsonl.write_text('{"query": "a", "docs": "x.pdf", "pages": [3]}\n\n{"question": "b", "sources": ["*y*", "*z*"]}\n')
    assert [(q.question, q.sources, q.pages) for q in load_gold(jsonl)] == [("a", ["x.pdf"], [3]), ("b", ["*y*", "*z*"], None)]
    bad = tmp_path / "bad.csv"
    bad.write_text("Prompt,Docs\nhello,x\n")
    with pytest.raises(ConfigError, match="question column"):
        load_gold(bad)
    (tmp_path / "gold.txt").write_text("x")
    with pytest.raises(ConfigError, match=".csv, .tsv or .jsonl"):
        load_gold(tmp_path / "gold.txt")
    with pytest.raises(ConfigError, match="pages"):
        (tmp_path / "p.jsonl").write_text('{"question": "a", "sources": "x", "pages": "four"}\n')
        load_gold(tmp_path / "p.jsonl")


def test_run_specs() -> None:
    assert parse_run("dense").mode == "dense"
    spec = parse_run("hybrid:keyword_weight=0.5,per_page=3")
    assert spec.tuning == {"keyword_weight": 0.5, "per_page": 3} and isinstance(spec.tuning["per_page"], int)
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_run("hybrid:speed=9")
    with pytest.raises(ConfigError, match="unknown search mode"):
        parse_run("fuzzy")


@pytest.mark.needs_eval
def test_reads_the_sec10q_questions_as_they_are() -> None:
    qs = load_gold(EVAL / "sec-10q" / "questions.csv")
    assert len(qs) == 195
    assert qs[0].sources == ["*AAPL*"] and qs[0].question.startswith("How has Apple's total net sales changed")
    assert {"Question Type", "Source Chunk Type", "Answer"} <= set(qs[0].meta)
    pdfs = [str(p) for p in sorted(SEC.glob("*.pdf"))]
    r = evaluate(qs, lambda q, k: [], [5], sources=pdfs)
    assert r.groups["single-doc"]["questions"] == 130 and r.groups["multi-doc"]["questions"] == 65
    assert r.doc_recall == {"5": 0.0} and len(r.misses) == 195
    pages = load_gold(PAGE_GOLD)
    assert len(pages) >= 30 and all(q.pages for q in pages)
    asked = {q.question for q in qs}
    assert all(q.question in asked for q in pages)  # a sample of the real questions
    assert all(sum(1 for p in pdfs if q.matches(p)) == 1 for q in pages)


@pytest.mark.slow
@pytest.mark.needs_eval
def test_page_gold_figures_are_on_the_gold_pages() -> None:
    """In the page gold for the two filings of the test corpus, every gold page prints one of the
    evidence figures and every figure is on a gold page (benchmarks/check_sec10q_pages.py checks all)."""
    from pypdf import PdfReader, apply_configuration

    texts: dict[str, list[str]] = {}
    checked = 0
    for line in PAGE_GOLD.read_text().splitlines():
        entry = json.loads(line)
        name = entry["sources"][0].strip("*") + ".pdf"
        if name not in ("2023 Q3 AAPL.pdf", "2023 Q1 MSFT.pdf"):
            continue
        if name not in texts:
            with apply_configuration(array_maximum_element_count=5_000_000, dictionary_maximum_element_count=5_000_000,
                                     stream_parsing_work_maximum_count=50_000_000):
                texts[name] = [" ".join((p.extract_text() or "").split()) for p in PdfReader(SEC / name).pages]
        pages = [texts[name][page - 1] for page in entry["pages"]]
        for page, text in zip(entry["pages"], pages):
            assert any(figure in text for figure in entry["evidence"]), (entry["question"], page)
        for figure in entry["evidence"]:
            assert any(figure in text for text in pages), (entry["question"], figure)
        checked += 1
    assert checked >= 8


# --- the command ---------------------------------------------------------------------------------
GOLD_CSV = (
    "Question,Source Docs,Pages\n"
    '"What happens on error 5031 on the payment gateway?",*runbook*,\n'
    '"Which class must I fly on short trips?",*handbook*,\n'
    '"How many shares in total, 102,673, were repurchased?","*2023 Q3 AAPL*\n*2023 Q1 MSFT*",24\n'
    '"Who approves refunds above 500 euros?",*nothing*,\n'
)


@pytest.mark.slow
@pytest.mark.needs_eval
def test_eval_command_json_and_table(ingested: Path, tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD_CSV)
    run = CliRunner().invoke
    out = run(main, ["eval", str(gold), "--kb", str(ingested), "--k", "1", "5", "10", "--json"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert r["questions"] == 4
    assert r["doc_recall"] == {"1": 0.75, "5": 0.75, "10": 0.75}
    assert r["page_recall"] == {"1": 1.0, "5": 1.0, "10": 1.0}
    assert r["mrr"] == 0.75
    assert [m["question"] for m in r["misses"]] == ["Who approves refunds above 500 euros?"]
    assert r["groups"]["gold-not-indexed"]["questions"] == 1

    compare = run(main, ["eval", str(gold), "--kb", str(ingested), "--k", "1,5", "--compare", "dense", "keyword",
                         "hybrid", "hybrid:title_weight=0,document_weight=0", "--json"])
    assert compare.exit_code == 0, compare.output
    runs = json.loads(compare.stdout)["runs"]
    assert list(runs) == ["dense", "keyword", "hybrid", "hybrid:title_weight=0,document_weight=0"]
    assert runs["dense"]["doc_recall"] == {"1": 0.75, "5": 0.75}
    # BM25 alone puts a Microsoft page ("class" of shares) above the handbook's travel class.
    assert runs["keyword"]["doc_recall"] == {"1": 0.5, "5": 0.75}

    table = run(main, ["eval", str(gold), "--kb", str(ingested), "--compare"])
    assert table.exit_code == 0, table.output
    assert "doc recall@5" in table.stdout and "page recall@1" in table.stdout
    assert all(name in table.stdout.splitlines()[1] for name in ("dense", "keyword", "hybrid"))
    assert "Who approves refunds" in table.stdout

    bad = run(main, ["eval", str(gold), "--kb", str(ingested), "--k", "0"])
    assert bad.exit_code == 2
