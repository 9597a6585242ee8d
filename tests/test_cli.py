"""The `kb` command as a user drives it: ingest, re-ingest, search, status, remove, exit statuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kb.cli import main
from tests.helpers import write_docx, write_markdown, write_pdf

HIT_KEYS = {"rank", "score", "chunk_id", "source", "page", "page_end", "section", "text"}

pytestmark = pytest.mark.usefixtures("one_parser_worker")


def kb(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def kb_json(*args: str) -> dict:
    result = kb(*args, "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write_markdown(root / "runbook.md")
    write_docx(root / "hr" / "handbook.docx")
    write_pdf(root / "report.pdf", ["Quarterly report overview", "Revenue grew to 1,577 million dollars in the quarter"])
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "hr" / "~$handbook.docx").write_bytes(b"lock")
    (root / "image.xyz").write_bytes(b"\x89PNG")
    return root


def test_ingest_reports_each_file_and_ignores_temp_files(docs: Path) -> None:
    report = kb_json("ingest", str(docs))
    assert sorted(report["added"]) == sorted([f"{docs}/runbook.md", f"{docs}/hr/handbook.docx", f"{docs}/report.pdf"])
    assert report["skipped"] == [{"source": f"{docs}/image.xyz", "reason": "unsupported file type .xyz"}]
    assert report["failed"] == []
    assert report["ignored"] == 2
    assert report["pages"] == 2 and report["chunks"] >= 6


def test_reingest_is_a_noop_then_handles_changes_and_deletions(docs: Path) -> None:
    kb("ingest", str(docs), "--json")
    ids_before = {h["chunk_id"] for h in kb_json("search", "travel policy economy class", "--k", "50")["hits"]}
    again = kb_json("ingest", str(docs))
    assert again["added"] == again["updated"] == again["removed"] == []
    assert len(again["unchanged"]) == 3 and again["chunks"] == 0
    ids_again = {h["chunk_id"] for h in kb_json("search", "travel policy economy class", "--k", "50")["hits"]}
    assert ids_again == ids_before

    write_markdown(docs / "runbook.md", "# Runbook\n\nThe failover region is now wombat-south.\n")
    (docs / "report.pdf").unlink()
    changed = kb_json("ingest", str(docs))
    assert changed["updated"] == [f"{docs}/runbook.md"]
    assert changed["removed"] == [f"{docs}/report.pdf"]
    assert changed["unchanged"] == [f"{docs}/hr/handbook.docx"]

    hits = kb_json("search", "which region do we fail over to", "--k", "20")["hits"]
    texts = " ".join(h["text"] for h in hits)
    assert "wombat-south" in texts and "quokka-west" not in texts
    assert not any(h["source"].endswith("report.pdf") for h in hits)
    status = kb_json("status")
    assert status["documents"] == 2


def test_search_json_contract_and_citation(docs: Path) -> None:
    kb("ingest", str(docs))
    out = kb_json("search", "hotel night expense limit", "--k", "3")
    assert out["query"] == "hotel night expense limit"
    assert 1 <= len(out["hits"]) <= 3
    top = out["hits"][0]
    assert HIT_KEYS <= set(top) <= HIT_KEYS | {"also", "highlights", "snippet", "snippet_highlights", "unit"}
    assert "$240" in top["snippet"] and "hotel" in [top["snippet"][a:b].lower() for a, b in top["snippet_highlights"]]
    assert [h["rank"] for h in out["hits"]] == list(range(1, len(out["hits"]) + 1))
    assert top["source"] == f"{docs}/hr/handbook.docx"
    assert top["section"] == "Employee handbook > Expense limits"
    assert "Hotel night | $240" in top["text"]
    assert top["page"] is None and top["page_end"] is None
    scores = [h["score"] for h in out["hits"]]
    assert scores == sorted(scores, reverse=True)

    pdf_hit = kb_json("search", "revenue grew to 1,577 million", "--k", "1")["hits"][0]
    assert pdf_hit["source"].endswith("report.pdf")
    assert (pdf_hit["page"], pdf_hit["page_end"]) == (1, 2)  # a small chunk takes in the next page


def test_human_search_output(docs: Path) -> None:
    kb("ingest", str(docs))
    result = kb("search", "what to do when the payment gateway returns an error", "--k", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(" 1. ") and f"{docs}/runbook.md § Payments runbook > Incident response" in lines[0]
    assert "quokka-west" in lines[1]


def test_status_json_contract(docs: Path) -> None:
    kb("ingest", str(docs))
    status = kb_json("status")
    assert {"documents", "chunks", "pages", "model", "store", "bytes", "failed"} <= set(status)
    assert status["documents"] == 3 and status["pages"] == 2 and status["chunks"] >= 6
    assert status["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert status["store"] == "faiss" and status["bytes"] > 0 and status["failed"] == []


def test_broken_file_is_reported_and_the_rest_ingests(docs: Path) -> None:
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    (docs / "empty.md").write_bytes(b"")
    result = kb("ingest", str(docs), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    failed = {f["source"]: f["reason"] for f in report["failed"]}
    assert set(failed) == {f"{docs}/broken.pdf", f"{docs}/empty.md"}
    assert failed[f"{docs}/empty.md"] == "empty file (0 bytes)"
    assert "PDF" in failed[f"{docs}/broken.pdf"]
    assert len(report["added"]) == 3
    assert {f["source"] for f in kb_json("status")["failed"]} == set(failed)

    human = kb("ingest", str(docs))
    assert human.exit_code == 1
    assert f"failed   {docs}/empty.md: empty file (0 bytes)" in human.stdout
    assert "Traceback" not in human.output

    (docs / "broken.pdf").unlink()
    (docs / "empty.md").unlink()
    assert kb("ingest", str(docs)).exit_code == 0
    assert kb_json("status")["failed"] == []


def test_remove(docs: Path) -> None:
    kb("ingest", str(docs))
    out = kb_json("remove", str(docs / "hr"))
    assert out == {"removed": [f"{docs}/hr/handbook.docx"]}
    assert kb_json("status")["documents"] == 2
    hits = kb_json("search", "hotel night expense limit", "--k", "10")["hits"]
    assert not any("handbook" in h["source"] for h in hits)
    assert kb("remove", str(docs / "hr")).exit_code == 1  # nothing left to remove there


def test_exit_statuses_and_one_line_errors(tmp_path: Path, docs: Path) -> None:
    assert kb("ingest", str(tmp_path / "missing")).exit_code == 2
    assert kb("search").exit_code == 2
    empty = kb("search", "anything")
    assert empty.exit_code == 1 and "no knowledge base at " in empty.stderr  # none made yet
    kb("ingest", str(docs))
    blank = kb("search", "   ")
    assert blank.exit_code == 2 and blank.stderr.strip() == "kb: error: the query is empty"
    other = kb("ingest", str(docs), "--model", "some/other-model")
    assert other.exit_code == 1
    assert "built with the embedding model 'sentence-transformers/all-MiniLM-L6-v2'" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_kb_dir_resolution_nearest_dot_kb(tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / ".kb").mkdir(parents=True)
    (project / "sub").mkdir()
    monkeypatch.delenv("KB_DIR")
    monkeypatch.chdir(project / "sub")
    kb("ingest", str(docs / "runbook.md"))
    assert (project / ".kb" / "catalog.sqlite").is_file()


def test_kb_toml_settings_and_precedence(tmp_path: Path, docs: Path, isolated_kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.config import Settings

    isolated_kb.mkdir()
    (isolated_kb / "kb.toml").write_text('chunk_tokens = 128\nworkers = 1\n')
    assert Settings.load(isolated_kb).chunk_tokens == 128
    monkeypatch.setenv("KB_CHUNK_TOKENS", "96")
    assert Settings.load(isolated_kb).chunk_tokens == 96
    assert Settings.load(isolated_kb, {"chunk_tokens": 64}).chunk_tokens == 64
    monkeypatch.delenv("KB_CHUNK_TOKENS")
    write_markdown(docs / "long.md", "# Long\n\n" + "The archive keeps every ledger from the harbour office. " * 60)
    kb("ingest", str(docs))
    import sqlite3

    def chunks(kb_dir: Path) -> tuple[int, int, str]:
        db = sqlite3.connect(kb_dir / "catalog.sqlite")
        n, longest = db.execute("SELECT count(*), max(tokens) FROM chunks").fetchone()
        built = db.execute("SELECT value FROM meta WHERE key = 'chunk_tokens'").fetchone()[0]
        db.close()
        return n, longest, built

    n_small, longest, built = chunks(isolated_kb)
    assert built == "128" and longest <= 128  # the setting took effect: no chunk is longer
    kb("ingest", str(docs), "--kb", str(tmp_path / "default"))
    n_default, longest_default, _ = chunks(tmp_path / "default")
    assert n_small > n_default and longest_default > 128  # the default (256) makes fewer, longer chunks
    (isolated_kb / "kb.toml").write_text("chunk_tokenz = 1\n")
    bad = kb("status")
    assert bad.exit_code == 2 and "unknown key(s) chunk_tokenz" in bad.stderr


@pytest.mark.needs_eval
@pytest.mark.slow
def test_real_10q_search_finds_the_right_filing_and_page(ingested: Path) -> None:
    out = kb_json("search", "Apple total net sales for the three months ended July 1, 2023", "--kb", str(ingested), "--k", "5")
    top = out["hits"][0]
    assert top["source"].endswith("2023 Q3 AAPL.pdf")
    assert top["page"] in (4, 10, 19)  # statements of operations, Note 2 and MD&A all state it
    msft = kb_json("search", "Microsoft comprehensive income", "--kb", str(ingested), "--k", "3")["hits"]
    assert msft[0]["source"].endswith("2023 Q1 MSFT.pdf") and msft[0]["page"] == 4


@pytest.mark.slow
def test_installed_entry_point_runs(docs: Path, tmp_path: Path) -> None:
    exe = shutil.which("kb", path=os.path.dirname(sys.executable))
    assert exe, "the kb console script is not installed next to this python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_DIR"] = str(tmp_path / "sub-kb")
    ingest = subprocess.run([exe, "ingest", str(docs / "runbook.md"), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["added"] == [f"{docs}/runbook.md"]
    search = subprocess.run([exe, "search", "failover", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert json.loads(search.stdout)["hits"][0]["source"] == f"{docs}/runbook.md"
    assert search.stderr == ""
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert helped.returncode == 0 and "ingest" in helped.stdout


def test_help_loads_no_numerical_library() -> None:
    """`kb --help` is instant: the CLI, the front door and the index modules import numpy, FAISS, ONNX
    Runtime and the tokenizer only when a command needs a vector."""
    code = ("import sys; from kb.cli import main; sys.argv = ['kb', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'faiss', 'onnxruntime', 'tokenizers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]
