"""What stood in a new user's way in the first hour (issue 19), each as the user met it: paths that
break from another folder, the knowledge base's home, messages that mislead, a failure that could not
be cleared, global options before the command, an interrupt that printed tracebacks."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from platformdirs import user_cache_path

from kb.cli import main
from tests.helpers import sigint_as_in_a_terminal, write_markdown, write_pdf

pytestmark = pytest.mark.usefixtures("one_parser_worker")  # the tests that need more workers set KB_WORKERS


def kb(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    root = tmp_path / "work" / "notes"
    write_markdown(root / "runbook.md")
    return root


# 1. Sources are stored absolute, shown relative to where the user stands --------------------------
def test_sources_typed_relative_are_stored_absolute_and_shown_from_any_folder(
        notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(notes.parent)
    assert kb("ingest", "notes").exit_code == 0
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    hit = json.loads(kb("search", "failover region", "--json").stdout)["hits"][0]
    assert hit["source"] == str(notes / "runbook.md")
    printed = kb("search", "failover region").stdout.splitlines()[0].split()[2]  # " 1. 0.812  PATH § ..."
    assert (elsewhere / printed).resolve() == notes / "runbook.md", printed
    monkeypatch.chdir(notes)
    assert kb("search", "failover region").stdout.splitlines()[0].split()[2] == "runbook.md"
    assert json.loads(kb("status", "--json").stdout)["folder"] == str(notes)  # the page shows sources from here


def test_a_catalog_of_relative_sources_is_migrated(notes: Path, isolated_kb: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert kb("ingest", str(notes)).exit_code == 0
    with sqlite3.connect(isolated_kb / "catalog.sqlite") as db:  # as kb 0.x wrote it
        db.execute("UPDATE documents SET source = '../notes/runbook.md'")
        for column in ("reader", "reader_version"):  # added by migration 4, after kb 0.x
            db.execute(f"ALTER TABLE documents DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 2")
    db.close()
    hit = json.loads(kb("search", "failover region", "--json").stdout)["hits"][0]
    assert hit["source"] == str(notes / "runbook.md")


# 2. The knowledge base lives in the platform's data folder ---------------------------------------
def _bare_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder with no kb settings in the environment, and the current folder outside any .kb/."""
    home = tmp_path / "home"
    # The exported model stays in the real cache: exporting it again is the slow layer's test, not this one's.
    monkeypatch.setenv("XDG_CACHE_HOME", str(user_cache_path()))
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "KB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def test_default_home_is_the_data_dir_and_an_old_config_dir_kb_is_moved_once(
        notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _bare_home(tmp_path, monkeypatch)
    old = home / ".config" / "kb"
    assert kb("--kb", str(old), "ingest", str(notes)).exit_code == 0

    moved = kb("status", "--json")
    assert "moved the knowledge base from" in moved.stderr
    status = json.loads(moved.stdout)
    assert status["path"] == str(home / ".local" / "share" / "kb") and status["documents"] == 1
    assert not old.exists()
    again = kb("status", "--json")
    assert "moved" not in again.stderr and json.loads(again.stdout)["documents"] == 1


def test_two_processes_moving_the_old_knowledge_base_at_once_both_use_the_new_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import kb.config

    home = _bare_home(tmp_path, monkeypatch)
    old = home / ".config" / "kb"
    old.mkdir(parents=True)
    (old / "catalog.sqlite").write_bytes(b"")
    rename = os.rename

    def the_other_process_won(src: str, dst: str) -> None:
        rename(src, dst)
        raise OSError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(kb.config.os, "rename", the_other_process_won)
    assert kb.config.resolve_kb_dir() == home / ".local" / "share" / "kb"
    assert not old.exists()


def test_the_first_ingest_says_where_the_knowledge_base_is(notes: Path, isolated_kb: Path) -> None:
    first = kb("ingest", str(notes))
    assert f"New knowledge base in {isolated_kb}" in first.stdout
    assert "New knowledge base" not in kb("ingest", str(notes)).stdout


# 4. Messages that say what happened --------------------------------------------------------------
def test_a_filter_that_matches_nothing_says_so(notes: Path) -> None:
    kb("ingest", str(notes))
    asked = kb("ask", "Which region do we fail over to?", "--path", "*nothing*", "--llm", "none", "--json")
    answer = json.loads(asked.stdout)
    assert answer["hits"] == [] and "no passage passes the filters (path '*nothing*')" in answer["note"]
    assert "similarity" not in answer["note"]
    searched = kb("search", "failover", "--path", "*nothing*")
    assert "no passage passes the filters (path '*nothing*')" in searched.stderr


def test_a_folder_with_nothing_readable_is_an_error_listing_what_was_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.xyz").write_bytes(b"\x89PNG")
    (folder / "b.foo").write_bytes(b"GIF8")
    result = kb("ingest", str(folder))
    assert result.exit_code == 1
    assert "nothing to ingest in" in result.stderr and "2 files of types kb does not read (1 .foo, 1 .xyz)" in result.stderr
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1  # one line, and no knowledge base made
    empty = tmp_path / "empty"
    empty.mkdir()
    assert kb("ingest", str(empty)).exit_code == 1
    write_markdown(tmp_path / "notes" / "a.md")
    left_out = kb("ingest", str(tmp_path / "notes"), "--exclude", "*.md")
    assert left_out.exit_code == 1 and "no files" not in left_out.stderr
    assert "nothing to ingest in" in left_out.stderr
    assert "1 file or folder left out by --exclude or a .kbignore" in left_out.stderr



def test_the_first_ingest_walks_the_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before a knowledge base is made, kb looks for one file it reads and stops there: a large folder is
    not walked in full twice."""
    from kb.ingest import walk as walk_module
    from tests.helpers import FAKE

    monkeypatch.setenv("KB_BACKEND", FAKE["backend"])
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    docs = tmp_path / "docs"
    for n in range(5):
        write_markdown(docs / f"part{n}" / "note.md")
    walked: list[str] = []
    os_walk = os.walk

    def counted(top: str, followlinks: bool = False) -> Iterator[tuple[str, list[str], list[str]]]:
        for entry in os_walk(top, followlinks=followlinks):
            walked.append(entry[0])
            yield entry

    monkeypatch.setattr(walk_module.os, "walk", counted)
    result = kb("ingest", str(docs), "--kb", str(tmp_path / "kb"), "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)["added"]) == 5
    # The pipeline's walk: the folder and its 5 subfolders; the look before it: the folder and the first one.
    assert len(walked) == 6 + 2, walked

@pytest.mark.slow
def test_ctrl_c_during_an_ingest_prints_one_clean_line(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for n in range(1500):  # many small files: the parser workers are mostly idle, waiting for the next
        write_markdown(docs / f"note-{n:03}.md", f"# Note {n}\n\nThe failover region for cell {n} is wombat-{n}.\n")
    env = {**os.environ, "KB_DIR": str(tmp_path / "kb"), "KB_WORKERS": "2"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "kb"), "ingest", str(docs)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_children(proc.pid)) < 2:  # the parser workers are up
        time.sleep(0.2)
    assert len(_children(proc.pid)) >= 2, "the parser workers never started"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1].startswith("kb: interrupted; what was committed is kept"), err


def test_a_ctrl_c_while_a_parser_worker_starts_is_kept_for_later_not_lost() -> None:
    from kb.ingest.worker import workers_ignore_interrupts

    reached_the_end = False
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see sigint_as_in_a_terminal)
    try:
        with pytest.raises(KeyboardInterrupt):
            with workers_ignore_interrupts():
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)  # Ctrl-C mid-submit
                time.sleep(0.05)
                reached_the_end = True  # a worker starting here inherits the block: it prints no traceback
    finally:
        signal.signal(signal.SIGINT, before)
    assert reached_the_end


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


# 5. A failed file can be cleared -----------------------------------------------------------------
def test_remove_clears_a_failure(notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (notes / "bin.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    assert kb("ingest", str(notes)).exit_code == 1
    assert [f["source"] for f in json.loads(kb("status", "--json").stdout)["failed"]] == [str(notes / "bin.txt")]
    monkeypatch.chdir(notes.parent)
    removed = kb("remove", "notes/bin.txt")
    assert removed.exit_code == 0 and "removed notes/bin.txt" in removed.stdout
    status = json.loads(kb("status", "--json").stdout)
    assert status["failed"] == [] and status["documents"] == 1


# 6. Global options before the command, as in git -------------------------------------------------
def test_global_options_work_before_the_command(notes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    assert kb("--kb", str(mine), "ingest", str(notes)).exit_code == 0
    status = kb("--kb", str(mine), "--json", "status")
    assert status.exit_code == 0 and json.loads(status.stdout)["documents"] == 1
    monkeypatch.setenv("KB_DIR", str(tmp_path / "other"))  # a flag beats the environment, wherever it stands
    assert json.loads(kb("--kb", str(mine), "status", "--json").stdout)["path"] == str(mine)
    after = kb("--kb", str(tmp_path / "nowhere"), "status", "--kb", str(mine), "--json")  # after the command wins
    assert json.loads(after.stdout)["path"] == str(mine)
    hits = json.loads(kb("--json", "--kb", str(mine), "search", "failover region").stdout)["hits"]
    assert hits and hits[0]["source"].endswith("runbook.md")
    assert kb("-q", "--kb", str(mine), "ingest", str(notes)).exit_code == 0


# 7. Progress: the model's load is a step of its own, then files, pages and chunks --------------
def test_progress_reports_the_model_step_then_files_pages_and_chunks(notes: Path, tmp_path: Path) -> None:
    from kb import KnowledgeBase

    write_pdf(notes / "report.pdf", ["Quarterly report overview", "Revenue grew to 1,577 million dollars"])
    seen: list = []
    with KnowledgeBase.open(tmp_path / "kb") as knowledge:
        report = knowledge.ingest([str(notes)], progress=seen.append)
    steps = [p.step for p in seen]
    assert steps[0] == "scanning" and "model" in steps and steps.index("model") < steps.index("files")
    files = [p for p in seen if p.step == "files"]
    assert [p.done for p in files] == sorted(p.done for p in files)
    last = files[-1]
    assert (last.done, last.total) == (2, 2)
    assert (last.pages, last.chunks) == (report.pages, report.chunks) and report.pages == 2 and report.chunks > 0


def test_a_message_while_the_bar_is_shown_prints_above_it_whole() -> None:
    import io
    import logging

    from rich.console import Console
    from rich.progress import Progress

    from kb.cli.common import messages_above, show_logs

    show_logs()
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with Progress(console=console, transient=True) as bar, messages_above(console):
        bar.add_task("loading the embedding model", total=None)
        logging.getLogger("kb.embed.onnx_export").warning("kb: exporting M to ONNX (once)")
    assert "kb: exporting M to ONNX (once)\n" in screen.getvalue()


# Also expected: a list of the documents, and files left out by globs or a .kbignore ---------------
def test_documents_lists_each_with_type_pages_chunks_time_and_the_failures(notes: Path) -> None:
    write_pdf(notes / "report.pdf", ["Quarterly report overview", "Revenue grew to 1,577 million dollars"])
    (notes / "bin.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    kb("ingest", str(notes))
    listing = json.loads(kb("documents", "--json").stdout)
    assert [(d["source"], d["file_type"], d["pages"]) for d in listing["documents"]] == [
        (str(notes / "report.pdf"), "pdf", 2), (str(notes / "runbook.md"), "markdown", None)]
    assert all(d["chunks"] > 0 and d["ingested_at"].startswith("20") for d in listing["documents"])
    assert listing["failed"] == [{"source": str(notes / "bin.txt"), "reason": "binary content, not text"}]
    text = kb("documents", "--type", "pdf")
    assert "report.pdf" in text.stdout and "runbook.md" not in text.stdout and " 2 pages " in text.stdout
    assert "failed" not in text.stdout  # the failure is a .txt file: the filter leaves it out too
    assert "failed    " in kb("documents", "--type", "text").stdout
    assert json.loads(kb("documents", "--path", "bin.txt", "--json").stdout)["failed"] == listing["failed"]
    assert json.loads(kb("documents", "--path", "*.md", "--json").stdout)["failed"] == []


def test_include_exclude_and_kbignore_leave_files_out_and_drop_them_if_indexed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    write_markdown(docs / "drafts" / "idea.md", "# Idea\n\nA wombat-powered datacenter.\n")
    write_markdown(docs / "team" / "notes.md", "# Notes\n\nThe quokka rota.\n")
    write_markdown(docs / "team" / "secret.md", "# Secret\n\nThe numbat password.\n")
    (docs / "team" / "log.txt").write_text("plain text log\n")
    first = json.loads(kb("ingest", str(docs), "--json").stdout)
    assert len(first["added"]) == 5

    (docs / ".kbignore").write_text("drafts/\n")
    (docs / "team" / ".kbignore").write_text("secret.md\n")
    again = json.loads(kb("ingest", str(docs), "--exclude", "*.txt", "--json").stdout)
    assert sorted(again["removed"]) == sorted(str(docs / p) for p in ("drafts/idea.md", "team/secret.md", "team/log.txt"))
    assert again["excluded"] == 3
    text = kb("ingest", str(docs), "--exclude", "*.md")  # what leaves the knowledge base is named
    from kb.types import shown

    assert f"removed  {shown(str(docs / 'runbook.md'))}" in text.stdout
    assert f"removed  {shown(str(docs / 'team' / 'notes.md'))}" in text.stdout
    kb("ingest", str(docs), "--exclude", "*.txt")
    sources = {d["source"] for d in json.loads(kb("documents", "--json").stdout)["documents"]}
    assert sources == {str(docs / "runbook.md"), str(docs / "team" / "notes.md")}

    only = json.loads(kb("ingest", str(docs), "--include", "team/*", "--json").stdout)
    assert only["removed"] == [str(docs / "runbook.md")] and only["unchanged"] == [str(docs / "team" / "notes.md")]
    assert only["added"] == [str(docs / "team" / "log.txt")]  # --exclude is not remembered; .kbignore is
    named = json.loads(kb("ingest", str(docs / "runbook.md"), "--exclude", "*.md", "--json").stdout)
    assert named["added"] == [str(docs / "runbook.md")]  # a file named on its own is taken


def test_a_file_deleted_between_the_walk_and_its_read_is_no_failure(notes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb import KnowledgeBase
    from kb.ingest import pipeline

    doomed = write_markdown(notes / "doomed.md", "# Doomed\n\nThis note is deleted while kb reads the folder.\n")
    walk = pipeline.walk

    def walk_then_delete(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = walk(*args, **kwargs)
        doomed.unlink(missing_ok=True)
        return found

    monkeypatch.setattr(pipeline, "walk", walk_then_delete)
    with KnowledgeBase.open() as knowledge:
        report = knowledge.ingest([str(notes)])
        assert report.failed == [] and knowledge.status().failed == []
        assert [d.source for d in knowledge.documents()] == [str(notes / "runbook.md")]


@pytest.mark.slow
def test_an_unguarded_script_that_ingests_is_told_how_to_fix_it(notes: Path, tmp_path: Path) -> None:
    write_markdown(notes / "second.md", "# Second\n\nAnother note, so the ingest uses its worker processes.\n")
    script = tmp_path / "ingest_notes.py"
    script.write_text("from kb import KnowledgeBase\n"
                      f"with KnowledgeBase.open({str(tmp_path / 'skb')!r}) as kb:\n"
                      f"    print([f.reason for f in kb.ingest([{str(notes)!r}]).failed])\n")
    env = {**os.environ, "KB_WORKERS": "2"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert 'if __name__ == "__main__":' in out.stdout, out.stdout + out.stderr[-2000:]


def test_status_and_the_ingest_summary_count_documents_per_type(notes: Path) -> None:
    write_pdf(notes / "report.pdf", ["Quarterly report overview", "The depot counted 1,577 crates in the quarter"])
    write_markdown(notes / "more.md", "# More\n\nA second note about the wombat rota.\n")
    summary = next(line for line in kb("ingest", str(notes)).stdout.splitlines() if line.startswith("Indexed"))
    assert summary.startswith("Indexed 3 files in ") and summary.endswith(": 2 markdown, 1 pdf"), summary
    assert json.loads(kb("ingest", str(notes), "--json").stdout)["types"] == {}  # nothing new
    status = json.loads(kb("status", "--json").stdout)
    assert status["types"] == {"markdown": 2, "pdf": 1}
    assert "Documents 3 (2 markdown, 1 pdf)" in kb("status").stdout
