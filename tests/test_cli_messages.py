"""What a user reads: the ingest progress line at 60, 80 and 120 columns and its status lines when
stderr is not a terminal, the `kb documents` table, and each error message (one line on stderr, one
JSON object on stdout with --json)."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from kb.cli import main
from kb.ingest.base import supported_types
from kb.ingest.pipeline import Ingesting
from tests.helpers import write_markdown, write_pdf

pytestmark = pytest.mark.usefixtures("one_parser_worker")

LONG_NAME = "/docs/20080124X00101 accident report of the board, docket and appendices.pdf"
FIELDS = {  # what shows each field of the progress line, in the order they are kept as the width shrinks
    "eta": re.compile(r"ETA \d:\d\d:\d\d"),
    "bar": re.compile("━"),
    "count": re.compile(r"\b12/69 files\b"),
    "step": re.compile(r"\bingesting\b"),
    "spinner": re.compile("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]"),
    "counts": re.compile(r"72 pages, 132 chunks"),
    "rate": re.compile(r"pages/s, \d+ chunks/s"),
    "elapsed": re.compile(r"0:00:30 elapsed"),
    "file": re.compile("20080124X00101"),
}


def run_kb(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env or None)


def progress_at(width: int) -> str:
    """The progress line of an ingest 12 files into 69, as a terminal `width` columns wide shows it."""
    from kb.cli.progress import IngestProgress

    clock = [0.0]
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    progress = IngestProgress(console, get_time=lambda: clock[0])
    progress(Ingesting("scanning"))
    progress(Ingesting("model", total=69))
    clock[0] = 5.0
    progress(Ingesting("files", 0, 69, LONG_NAME))
    for done in range(1, 13):
        clock[0] = 5.0 + 2.5 * done
        progress(Ingesting("files", done, 69, LONG_NAME, pages=6 * done, chunks=11 * done))
    screen = Console(file=io.StringIO(), width=width, color_system=None)
    screen.print(progress.bar.get_renderable())
    return screen.file.getvalue()  # type: ignore[attr-defined]


def shown_fields(line: str) -> list[str]:
    return [name for name, pattern in FIELDS.items() if pattern.search(line)]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_progress_line_keeps_bar_file_count_and_eta_and_fits(width: int) -> None:
    out = progress_at(width)
    lines = out.splitlines()
    assert len(lines) == 1 and len(lines[0]) <= width, out
    assert {"bar", "count", "eta"} <= set(shown_fields(lines[0])), out
    if width >= 80:
        assert "72 pages, 132 chunks" in lines[0]
    if width >= 120:
        assert "pages/s" in lines[0]


def test_progress_fields_are_dropped_in_a_fixed_order_the_bar_and_eta_last() -> None:
    """At every width the fields shown are the first ones of one fixed order (as the width shrinks,
    the file name goes first, the ETA last), and the line never runs past the width."""
    order = list(FIELDS)
    seen: list[list[str]] = []
    for width in [*range(30, 200, 3), 400]:
        line = progress_at(width).rstrip("\n")
        assert "\n" not in line and len(line) <= width, (width, line)
        fields = shown_fields(line)
        assert fields == order[: len(fields)], (width, line)
        seen.append(fields)
    assert [len(f) for f in seen] == sorted(len(f) for f in seen)  # wider never shows less
    assert seen[-1] == order  # with room, everything, the file name whole
    assert LONG_NAME.rsplit("/", 1)[1] in progress_at(400)


def test_a_live_ingest_on_an_80_column_terminal_draws_lines_that_fit(tmp_path: Path) -> None:
    """The bar as a real ingest drives it: every frame drawn on an 80-column terminal fits in 80 columns."""
    from kb import KnowledgeBase
    from kb.cli.progress import ingest_progress
    from tests.helpers import FAKE

    docs = tmp_path / "docs"
    for i in range(6):
        write_markdown(docs / f"note-{i} with a rather long name to see it cut short at the edge.md")
    screen = io.StringIO()
    console = Console(file=screen, width=80, force_terminal=True, force_interactive=True, color_system=None)
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb, ingest_progress(console) as progress:
        seen: list[Ingesting] = []

        def both(p: Ingesting) -> None:
            seen.append(p)
            progress(p)

        report = kb.ingest([str(docs)], progress=both)
        progress.bar.refresh()
        frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # the cursor moves between frames
    assert len(report.added) == 6 and seen[-1].done == 6
    drawn = [piece for piece in re.split(r"[\r\n]", frame) if piece.strip()]
    assert any("6/6 files" in piece and "━" in piece for piece in drawn), drawn
    assert all(len(piece) <= 80 for piece in drawn), [p for p in drawn if len(p) > 80]


def test_piped_ingest_prints_a_status_line_at_each_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where stderr is not a terminal (CI, nohup, a pipe) an ingest says where it is every interval
    (10 s; here 20 ms), one plain line each, then prints its summary as ever; -q says nothing. The ingest
    is held at two of its steps until a status line has shown each, whatever the time a step takes."""
    from kb.cli import progress
    from tests.helpers import FAKE

    monkeypatch.setenv("KB_BACKEND", FAKE["backend"])
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    monkeypatch.setattr(progress, "STATUS_EVERY_S", 0.02)
    shown = threading.Event()
    line, report = progress.IngestProgress.line, progress.IngestProgress.__call__

    def showing(self: progress.IngestProgress) -> str:
        text = line(self)
        shown.set()
        return text

    def held(self: progress.IngestProgress, p: Ingesting) -> None:
        report(self, p)
        if p.step == "model" or (p.step == "files" and p.done == 2):
            shown.clear()
            assert shown.wait(10), "no status line in 10 s"  # the ticker's next line shows this step

    monkeypatch.setattr(progress.IngestProgress, "line", showing)
    monkeypatch.setattr(progress.IngestProgress, "__call__", held)
    docs = tmp_path / "docs"
    for i in range(4):
        write_markdown(docs / f"note{i}.md")
    result = run_kb("ingest", str(docs))
    assert result.exit_code == 0, result.output
    status = [line for line in result.stderr.splitlines() if line.startswith("kb: ")]
    assert all("\r" not in line and "\x1b" not in line for line in status)
    assert "kb: loading the embedding model" in status, result.stderr
    assert any(re.fullmatch(r"kb: ingesting · 2/4 files · .*chunks · .* · note\d\.md", line) for line in status), status
    assert "\nIndexed 4 files in " in result.stdout
    (docs / "note0.md").write_text("# Changed\n\nA new line about herons.\n")
    quiet = run_kb("ingest", str(docs), "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_documents_is_a_table_with_labelled_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_markdown(tmp_path / "docs" / "runbook.md")
    write_pdf(tmp_path / "docs" / "memo.pdf", ["Memo\nDate: March 12, 2024\nThe harbour ledger is kept by the clerk."])
    write_pdf(tmp_path / "docs" / "report.pdf", ["Quarterly report overview", "Revenue grew to 1,577 million dollars"])
    assert run_kb("ingest", "docs").exit_code == 0
    listing = run_kb("documents", COLUMNS="100")
    assert listing.exit_code == 0
    table = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "YYYY-MM-DD HH:MM", listing.stdout)  # when it was ingested
    assert table == (
        "Type       Length  Chunks  Ingested          Dated       Source\n"
        "pdf        1 page       1  YYYY-MM-DD HH:MM  2024-03-12  docs/memo.pdf\n"
        "pdf       2 pages       1  YYYY-MM-DD HH:MM              docs/report.pdf\n"
        "markdown                3  YYYY-MM-DD HH:MM              docs/runbook.md\n"
    ), listing.stdout
    assert listing.stderr == "3 documents, 3 pages, 5 chunks\n"
    one = run_kb("documents", "--path", "*memo*")
    assert one.stderr == "1 document, 1 page, 1 chunk\n"
    wide = run_kb("documents")  # not a terminal, no COLUMNS: a long path stays on its row, for grep
    assert all(line.endswith(".md") or line.endswith(".pdf") for line in wide.stdout.splitlines()[1:])


def test_an_unknown_llm_lists_every_name_kb_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.llm import LLMS

    monkeypatch.setattr(LLMS, "_entries", {**LLMS._entries, "my-plugin": "nowhere:Nothing"})
    monkeypatch.setattr(LLMS, "_plugins_loaded", True)
    result = run_kb("ask", "where do herons nest?", "--llm", "bogus")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith("kb: error: unknown LLM backend 'bogus': choose one of auto, ")
    for name in ("auto", "llama-cpp", "openai", "ollama", "transformers", "gguf", "hf", "none", "my-plugin"):
        assert re.search(rf"[ (]{re.escape(name)}([,) ]|$)", message), (name, message)


def test_json_failures_are_one_json_object(tmp_path: Path) -> None:
    """With --json, a command that fails prints one JSON object on stdout, with the error and the exit
    status, beside its one line on stderr: a usage error, nothing ingested yet, no knowledge base."""
    typo = str(tmp_path / "tpyo")
    empty = tmp_path / "empty-kb"
    empty.mkdir()
    cases = [
        (["ask", "where do herons nest?", "--kb", str(empty)], 1, "is empty: run `kb ingest PATH` first"),
        (["search", "herons", "--kb", str(empty)], 1, "is empty"),
        (["ask", "   "], 2, "the question is empty"),
        (["search", ""], 2, "the query is empty"),
        (["search", "--k", "0", "herons"], 2, "0 is not in the range"),
        (["ingest", str(tmp_path / "missing")], 2, "does not exist"),
        (["ask", "where do herons nest?", "--llm", "bogus"], 2, "unknown LLM backend 'bogus'"),
        *[([cmd, *rest, "--kb", typo], 1, f"no knowledge base at {typo}")
          for cmd, *rest in (["status"], ["documents"], ["search", "herons"], ["ask", "herons?"], ["doctor"],
                             ["reindex"], ["remove", "x.md"])],
    ]
    for args, status, said in cases:
        for where in ("after", "before"):
            result = run_kb(*args, "--json") if where == "after" else run_kb("--json", *args)
            assert result.exit_code == status, (args, result.output)
            out = json.loads(result.stdout)  # exactly one object: anything more fails to parse
            assert out["exit_status"] == status and said in out["error"], (args, out)
            assert said in result.stderr, (args, result.stderr)
    assert not Path(typo).exists()


def test_a_missing_knowledge_base_is_named_not_shown_empty(tmp_path: Path) -> None:
    typo = tmp_path / "tpyo"
    for args in (["status"], ["documents"], ["search", "herons"], ["ask", "where do herons nest?"]):
        result = run_kb(*args, "--kb", str(typo))
        assert result.exit_code == 1, (args, result.output)
        assert result.stdout == ""
        assert result.stderr == f"kb: error: no knowledge base at {typo} (no such folder; `kb ingest FOLDER` makes one)\n"
    assert not typo.exists()


def test_ingest_of_a_folder_with_nothing_readable_makes_no_knowledge_base(tmp_path: Path, isolated_kb: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_kb("ingest", str(empty))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"kb: error: nothing to ingest in {empty}: no files there; kb reads ")
    # What kb reads, by type (as `kb --help` says it), not a line of every extension.
    assert result.stderr.endswith(f"kb reads {supported_types()}\n") and "markdown, " in result.stderr
    assert ".md" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not isolated_kb.exists()

    other = tmp_path / "other"
    other.mkdir()
    for name in ("a.xyz", "b.xyz", "c.bin", "Makefile-like"):
        (other / name).write_bytes(b"data")
    as_json = run_kb("ingest", str(other), "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert "4 files of types kb does not read (2 .xyz, 1 (no extension), 1 .bin)" in report["error"]
    assert report["exit_status"] == 1  # as every failure's JSON object (docs/json.md)
    assert len(report["skipped"]) == 4 and not isolated_kb.exists()
    assert run_kb("status").exit_code == 1  # still none


def test_empty_question_and_query_say_which(tmp_path: Path) -> None:
    asked = run_kb("ask", "")
    assert asked.exit_code == 2 and asked.stderr == "kb: error: the question is empty\n"
    searched = run_kb("search", "  ")
    assert searched.exit_code == 2 and searched.stderr == "kb: error: the query is empty\n"


def test_a_pdf_that_is_not_one_and_a_truncated_one_say_so(tmp_path: Path) -> None:
    from kb import KnowledgeBase
    from tests.helpers import FAKE

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "x.pdf").write_bytes(bytes(range(256)) * 12)  # bytes of anything but a PDF
    (docs / "page.pdf").write_bytes(b"<!DOCTYPE html><html><body>Sign in to download</body></html>")
    real = write_pdf(tmp_path / "real.pdf", ["A report on the harbour ledger.", "Its second page."]).read_bytes()
    (docs / "cut.pdf").write_bytes(real[: len(real) // 2])
    write_pdf(docs / "fine.pdf", ["A fine report on the harbour ledger."])
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(docs)])
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert failed == {
        "x.pdf": "not a PDF (it does not start with %PDF)",
        "page.pdf": "not a PDF (it does not start with %PDF)",
        "cut.pdf": "unreadable PDF: truncated (it does not end with %%EOF)",
    }
    assert [Path(s).name for s in report.added] == ["fine.pdf"]
