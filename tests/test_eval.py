"""`kb eval`: gold files (CSV, JSONL), recall@k at document and page level, MRR, misses, --compare; and
`kb eval --answers`: "not found" precision and recall, gold figure on the first line, gold source cited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.answer.evaluate import AnswerQuestion, evaluate_answers, gold_figures, gold_files, judge, load_answers
from kb.answer.types import Answer, Citation
from kb.cli import main
from kb.errors import ConfigError
from kb.query.evaluate import GoldQuestion, evaluate, load_gold, parse_run, source_matches
from kb.types import Hit
from tests.conftest import EVAL, SEC
from tests.helpers import ScriptedLLM, write_markdown, write_pdf

REPO = Path(__file__).resolve().parents[1]
PAGE_GOLD = REPO / "benchmarks" / "sec10q_pages.jsonl"
UNANSWERABLE = REPO / "benchmarks" / "sec10q_unanswerable.jsonl"


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


# --- kb eval --answers ---------------------------------------------------------------------------
def test_answer_set_jsonl_fields_split_and_bad_records(tmp_path: Path) -> None:
    lines: list[dict[str, object]] = [
        {"question": "What is the meal allowance?", "answer": "45 euros", "sources": ["travel.md"], "split": "tune"},
        {"question": "How many patients?", "answer": "240", "sources": ["*clinic*"], "pages": [1], "split": "validate"},
        {"question": "Initech revenue 2019", "unanswerable": True, "split": "validate"},
        {"question": "who won the 1998 tour de france"},  # no gold at all: only a refusal can be checked
        {"question": "Which region fails over?", "sources": "runbook.md"},  # gold source, no gold answer
    ]
    path = _write(tmp_path, lines)
    qs = load_answers(path)
    assert [q.unanswerable for q in qs] == [False, False, True, True, False]
    assert (qs[1].answer, qs[1].sources, qs[1].pages, qs[1].split) == ("240", ["*clinic*"], [1], "validate")
    assert [q.question for q in load_answers(path, "validate")] == ["How many patients?", "Initech revenue 2019"]
    with pytest.raises(ConfigError, match="no question has split 'tune'"):
        load_answers(_write(tmp_path, lines[1:3]), "tune")
    with pytest.raises(ConfigError, match="record 1 is marked unanswerable but gives a gold answer"):
        load_answers(_write(tmp_path, [{"question": "q", "answer": "1", "unanswerable": True}]))
    with pytest.raises(ConfigError, match="split must be one of tune, validate"):
        load_answers(_write(tmp_path, [{"question": "q", "unanswerable": True, "split": "test"}]))
    with pytest.raises(ConfigError, match="unanswerable must be true or false"):
        load_answers(_write(tmp_path, [{"question": "q", "unanswerable": "maybe"}]))


def _write(tmp_path: Path, records: list[dict[str, object]]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.needs_eval
def test_reads_the_shared_answer_sets_as_they_are() -> None:
    """sec-10q's Answer column, financebench-dev's answer and pages, the unanswerable set: the counts the
    answers benchmark reports (86 of the 130 single-filing sec-10q answers hold an amount, 40 of 46
    financebench-dev answers a figure)."""
    pdfs = [str(p) for p in sorted(SEC.glob("*.pdf"))]
    sec = load_answers(EVAL / "sec-10q" / "questions.csv")
    assert len(sec) == 195 and not any(q.unanswerable for q in sec) and all(q.answer for q in sec)
    single = [q for q in sec if gold_files(q, pdfs) == 1]
    assert len(single) == 130 and sum(1 for q in single if gold_figures(q.answer or "")) == 86
    fb = load_answers(EVAL / "financebench-dev" / "questions.jsonl")
    assert len(fb) == 46 and all(q.pages and len(q.sources) == 1 for q in fb)
    assert sum(1 for q in fb if gold_figures(q.answer or "")) == 40
    absent = load_answers(UNANSWERABLE)
    assert len(absent) == 48 and all(q.unanswerable for q in absent)


def test_gold_figures_of_short_and_long_answers() -> None:
    # A short gold answer is the figure: all its numbers but years; a long one: its amounts only.
    assert [n.text for n in gold_figures("0.66")] == ["0.66"]
    assert [n.text for n in gold_figures("65.4% in 2023")] == ["65.4%"]
    long = ("Intel's gross margin for the quarterly period ended September 30, 2023, was $6,018 million, as "
            "reported in note 3.\n\nSOURCE(S): 2023 Q3 INTC.pdf, page 4")
    assert [n.text for n in gold_figures(long)] == ["$6,018 million"]


def test_the_figure_counts_on_the_first_line_and_anywhere_apart() -> None:
    """A dump of figures with the gold one on its third line holds it anywhere, not on its first line;
    a citation of the gold file on another page cites the file, not the page."""
    q = AnswerQuestion("What were net sales?", "Net sales were $81,797 million.", sources=["*2023 Q3 AAPL*"], pages=[4])
    cite = Citation(1, "/d/2023 Q3 AAPL.pdf", 7, 7, None, "", True)
    dump = Answer(q.question, "\nTotal 5,791 7,224 [1]\nServices 21,213 [1]\nNet sales 81,797 [1]", [cite], [], None,
                  "extractive")
    row = judge(q, dump, 0.1, ["/d/2023 Q3 AAPL.pdf", "/d/2023 Q2 AAPL.pdf"])
    assert (row.gold_figure_in_answer, row.gold_figure_first_line) == (True, False)
    assert (row.cites_gold_file, row.cites_gold_page, row.refused) == (True, False, False)
    first = Answer(q.question, "Net sales were $81,797 million [1].", [Citation(1, "/d/2023 Q3 AAPL.pdf", 3, 4, None, "",
                                                                                 True)], [], None, "extractive")
    row = judge(q, first, 0.1, ["/d/2023 Q3 AAPL.pdf"])
    assert (row.gold_figure_first_line, row.cites_gold_page) == (True, True)
    several = AnswerQuestion("How did net sales change?", "From $81,797 million to $90,146 million", sources=["*AAPL*"])
    row = judge(several, first, 0.1, ["/d/2023 Q3 AAPL.pdf", "/d/2023 Q2 AAPL.pdf"])
    assert row.gold_files == 2 and row.gold_figure_in_answer is None and row.cites_gold_file is None  # not scored


ANSWER_SET: list[dict[str, object]] = [
    {"question": "What is the daily meal allowance?", "answer": "45 euros", "sources": ["travel.md"], "split": "tune"},
    {"question": "How many patients does the study enroll?", "answer": "240 patients", "sources": ["*clinic*"],
     "pages": [1], "split": "validate"},
    {"question": "What dose of the study drug does each patient receive?", "answer": "50 mg twice daily",
     "sources": ["clinic.pdf"], "pages": [2], "split": "validate"},
    {"question": "Which region does the payments service fail over to?", "answer": "quokka-west",
     "sources": ["runbook.md"], "split": "tune"},
    # Answerable by the user's reading (the policy is Contoso's), but no document names Contoso.
    {"question": "What is Contoso's daily meal allowance?", "answer": "45 euros", "sources": ["travel.md"],
     "split": "tune"},
    {"question": "What was Initech's revenue in 2019?", "unanswerable": True, "split": "tune"},
    {"question": "How many vacation days does Globex give its employees?", "unanswerable": True, "split": "validate"},
    {"question": "Who won the 1998 Tour de France?", "split": "validate"},
]


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """A travel policy, the runbook and a two-page clinical PDF, ingested with the real embedder."""
    docs = tmp_path / "docs"
    write_markdown(docs / "travel.md", "# Travel policy\n\nThe daily meal allowance is 45 euros.\n\n"
                   "Hotel nights are capped at 180 euros in capital cities.\n\n"
                   "Economy class is required for flights shorter than six hours.\n")
    write_markdown(docs / "runbook.md")
    write_pdf(docs / "clinic.pdf", ["Clinical trial protocol\nThe study enrolls 240 adult patients at four hospitals.",
                                    "Dosing\nEach patient receives 50 mg of the study drug twice daily."])
    with KnowledgeBase.open(tmp_path / "kb", workers=1) as kb:
        kb.ingest([str(docs)])
    return tmp_path / "kb"


@pytest.mark.slow
def test_eval_answers_command_on_a_small_folder(small_folder: Path, tmp_path: Path) -> None:
    gold = _write(tmp_path, ANSWER_SET)
    run = CliRunner().invoke
    out = run(main, ["eval", "--answers", str(gold), "--kb", str(small_folder), "--llm", "none", "--json"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert r["llm"] == "none (extractive)" and r["k"] == 5
    assert r["counts"] == {"questions": 8, "answerable": 5, "unanswerable": 3, "gold_not_indexed": 0,
                           "multi_file_gold": 0}
    # The three unanswerable questions and the one naming Contoso are answered "not found".
    assert r["not_found"] == {"precision": 0.75, "recall": 1.0, "answered_not_found": 4, "unanswerable_not_found": 3,
                              "unanswerable": 3}
    assert r["answerable_refused"] == {"share": 0.2, "n": 5, "yes": 1}
    assert r["gold_figure_first_line"] == r["gold_figure_in_answer"] == {"share": 0.75, "n": 4, "yes": 3}
    assert r["gold_file_cited"] == {"share": 0.8, "n": 5, "yes": 4}
    assert r["gold_page_cited"] == {"share": 1.0, "n": 2, "yes": 2}
    rows = {q["question"]: q for q in r["questions"]}
    assert len(rows) == 8 and rows["What is Contoso's daily meal allowance?"]["refused"]
    assert rows["How many patients does the study enroll?"]["answer"].startswith("The study enrolls 240")

    table = run(main, ["eval", "--answers", str(gold), "--kb", str(small_folder), "--llm", "none", "--split", "validate"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].endswith("4 questions, 2 answerable, 2 unanswerable; answered by none (extractive)")
    assert any(line.split() == ['"not', 'found"', "recall", "2/2", "(100%)", "of", "the", "unanswerable"]
               for line in lines)
    assert any("gold page cited" in line and "2/2" in line for line in lines)
    assert "wrong refusal" not in table.stdout  # on validate, every question went right

    for bad in (["eval", "--kb", str(small_folder)], ["eval", "--answers", str(gold), "--compare"],
                ["eval", "--answers", str(gold), "-k", "1", "5"], ["eval", str(gold), "--answers", str(gold)]):
        res = run(main, bad)
        assert res.exit_code == 2 and "Traceback" not in res.output, bad


@pytest.mark.slow
def test_a_model_is_measured_like_the_quoted_answers(small_folder: Path) -> None:
    """Through the library with any LLM object: the model's answer is what is scored."""
    questions = [AnswerQuestion(**ANSWER_SET[0]), AnswerQuestion(**ANSWER_SET[5])]  # type: ignore[arg-type]
    model = ScriptedLLM("The daily meal allowance is 45 euros [1].")
    with KnowledgeBase.open(small_folder) as kb:
        result = evaluate_answers(questions, lambda q: kb.ask(q, llm=model, stream=False),
                                  [d.source for d in kb.documents()], llm=model.name)
    answered, refused = result.questions
    assert (answered.mode, answered.gold_figure_first_line, answered.cites_gold_file) == ("llm", True, True)
    assert refused.refused and result.to_json()["not_found"]["recall"] == 1.0
