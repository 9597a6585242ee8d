"""`kb watch` and `kb serve --watch`: the knowledge base follows files as they are created, changed,
renamed and deleted, without re-embedding what did not change, and survives what goes wrong.

The watcher runs for real (watchfiles on this machine's file-system events) with `FakeEmbedder`, so
that counting its calls shows what was embedded; every wait is bounded."""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kb import KnowledgeBase
from kb.watch import Batch, Watcher, writing_to
from tests.helpers import FAKE, free_port, sigint_as_in_a_terminal, write_markdown

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 30.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll `check` until it returns something true, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.1)


class Watching:
    """A `Watcher` on a background thread over a fake-embedder knowledge base; each read opens the
    knowledge base anew, as another process's `kb search` would, while the watcher writes."""

    def __init__(self, kb_dir: Path, paths: list[Path], debounce_ms: int = 100, **options: Any):
        self.kb_dir = kb_dir
        self.kb = KnowledgeBase.open(kb_dir, workers=1, **FAKE)
        self.batches: list[Batch] = []
        self.watcher = Watcher([str(p) for p in paths], writing_to(self.kb), ignore=[kb_dir], debounce_ms=debounce_ms,
                               **options)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run(self.batches.append)
        except BaseException as e:  # the test fails on it, in its own thread
            self.errors.append(e)

    def __enter__(self) -> Watching:
        self.thread.start()
        wait_for("the first pass", lambda: self.batches or self.errors)
        assert not self.errors, self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        self.watcher.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the watcher did not stop"
        self.kb.close()
        assert not self.errors, self.errors

    @property
    def embedded(self) -> int:
        return int(self.kb.embedder.calls)  # type: ignore[attr-defined]

    def sources(self) -> list[str]:
        with KnowledgeBase.open(self.kb_dir, **FAKE) as kb:
            return [d.source for d in kb.documents()]

    def chunk_ids(self) -> list[int]:
        with KnowledgeBase.open(self.kb_dir, **FAKE) as kb:
            return sorted(kb.catalog.chunk_ids())

    def top(self, query: str) -> str | None:
        with KnowledgeBase.open(self.kb_dir, **FAKE) as kb:
            if not kb.documents():
                return None
            hits = kb.search(query, k=1, mode="keyword")
            return hits[0].source if hits else None

    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b.lines()]


@pytest.mark.slow
def test_created_changed_renamed_deleted_files_follow_without_reembedding(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_markdown(docs / "kept.md", "# Kept\n\nThe archive keeps old ledgers in the basement.\n")
    with Watching(tmp_path / "kb", [docs]) as w:
        assert w.batches[0].first and w.batches[0].added == [str(docs / "kept.md")]
        note = write_markdown(docs / "note.md", "# Kennel\n\nThe kennel feeds the greyhounds at nine.\n")
        wait_for("the new file is searchable", lambda: w.top("greyhounds") == str(note))

        write_markdown(note, "# Kennel\n\nThe kennel feeds the greyhounds at nine and walks them at noon.\n")
        wait_for("the change is searchable", lambda: w.top("noon") == str(note))
        wait_for("an 'updated' batch", lambda: any(b.updated == [str(note)] for b in w.batches))

        ids, embedded = w.chunk_ids(), w.embedded
        (docs / "pets").mkdir()
        moved = docs / "pets" / "dogs.md"
        os.rename(note, moved)
        wait_for("the renamed file is found under its new name", lambda: w.top("greyhounds") == str(moved))
        assert sorted(w.sources()) == sorted([str(docs / "kept.md"), str(moved)])
        assert w.chunk_ids() == ids and w.embedded == embedded  # the same chunks and vectors: nothing re-embedded
        wait_for("a 'moved' line", lambda: f"moved    {note} -> {moved}" in w.lines())

        moved.unlink()
        wait_for("the deleted file is gone", lambda: w.sources() == [str(docs / "kept.md")])
        wait_for("a 'removed' batch", lambda: any(b.removed == [str(moved)] for b in w.batches))

        # Editors' and downloads' leftovers never reach the knowledge base, and a burst is one pass.
        before = len(w.batches)
        for name in (".kept.md.swp", "kept.md~", "~$draft.docx", "report.pdf.part", "4913"):
            (docs / name).write_bytes(b"\x00scratch")
        for n in range(5):
            write_markdown(docs / f"burst-{n}.md", f"# Burst {n}\n\nA quick series of notes, number {n}.\n")
        wait_for("the burst is in", lambda: len(w.sources()) == 6)
        assert not [line for line in w.lines() if "scratch" in line or "~" in line or "4913" in line or ".part" in line]
        assert len(w.batches) - before <= 2  # debounced: not a pass per file
    assert not [b for b in w.batches if b.error]


@pytest.mark.slow
def test_a_failing_file_is_reported_and_watching_goes_on(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    with Watching(tmp_path / "kb", [docs]) as w:
        bad = docs / "blob.txt"
        bad.write_bytes(bytes(range(256)) * 8)  # binary under a text extension
        failed = wait_for("the failure is reported", lambda: [f for b in w.batches for f in b.failed])
        assert failed[0].source == str(bad) and "binary" in failed[0].reason
        assert f"failed   {bad}: {failed[0].reason}" in w.lines()  # one line, with the reason

        good = write_markdown(docs / "good.md", "# Good\n\nThe lighthouse keeper logs every ship.\n")
        wait_for("the next file is still ingested", lambda: w.top("lighthouse") == str(good))
        with KnowledgeBase.open(tmp_path / "kb", **FAKE) as kb:
            assert [f.source for f in kb.status().failed] == [str(bad)]
        bad.unlink()  # its failure goes with it

        def no_failures() -> bool:
            with KnowledgeBase.open(tmp_path / "kb", **FAKE) as kb:
                return not kb.status().failed

        wait_for("the failure is forgotten", no_failures)


@pytest.mark.slow
def test_a_folder_that_goes_away_and_comes_back_is_followed_again(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "a.md", "# Alpha\n\nThe alpaca grazes on the hill.\n")
    write_markdown(docs / "sub" / "b.md", "# Beta\n\nThe beaver builds a dam.\n")
    with Watching(tmp_path / "kb", [docs]) as w:
        ids, embedded = w.chunk_ids(), w.embedded
        os.rename(docs, tmp_path / "away")  # unmounted, or moved aside: its documents wait for it
        time.sleep(2.5)
        assert len(w.sources()) == 2
        write_markdown(tmp_path / "away" / "c.md", "# Gamma\n\nThe gazelle runs at dawn.\n")
        os.rename(tmp_path / "away", docs)
        wait_for("the file added while it was away", lambda: w.top("gazelle") == str(docs / "c.md"))
        assert set(ids) <= set(w.chunk_ids()) and w.embedded == embedded + 1  # only the new file was embedded

        os.rename(docs, tmp_path / "away")  # and back before the watcher looks: the folder is looked at again
        write_markdown(tmp_path / "away" / "f.md", "# Phi\n\nThe flamingo stands on one leg.\n")
        os.rename(tmp_path / "away", docs)
        wait_for("the file added in a short absence", lambda: w.top("flamingo") == str(docs / "f.md"))

        shutil.rmtree(docs)  # deleted file by file: its documents go
        wait_for("the deleted folder's documents are gone", lambda: w.sources() == [])
        write_markdown(docs / "d.md", "# Delta\n\nThe dolphin jumps.\n")  # the folder is back
        wait_for("a file in the new folder", lambda: w.sources() == [str(docs / "d.md")])
        write_markdown(docs / "e.md", "# Epsilon\n\nThe eel hides.\n")  # and watched again
        wait_for("a later file in the new folder", lambda: len(w.sources()) == 2)


@pytest.mark.slow
def test_kbignore_and_exclude_are_honoured(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "notes.md", "# Notes\n\nThe orchard has forty apple trees.\n")
    (docs / "log.txt").write_text("The furnace was serviced in March.\n")
    with Watching(tmp_path / "kb", [docs], exclude=["drafts/"]) as w:
        write_markdown(docs / "drafts" / "wip.md", "# WIP\n\nThe zeppelin draft is unfinished.\n")
        write_markdown(docs / "later.md", "# Later\n\nThe quarry closed in winter.\n")
        wait_for("the file outside drafts/", lambda: w.top("quarry") == str(docs / "later.md"))
        assert str(docs / "drafts" / "wip.md") not in w.sources()

        (docs / ".kbignore").write_text("*.txt\n")  # what it leaves out now is dropped
        wait_for("the text file is dropped", lambda: str(docs / "log.txt") not in w.sources())
        assert sorted(w.sources()) == sorted([str(docs / "notes.md"), str(docs / "later.md")])


def test_kb_ingest_moves_a_renamed_file_too(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "draft.md", "# Minutes\n\nThe board approved the new roof.\n")
    (docs / "scan.txt").write_text("The boiler was replaced in the spring.\n")
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(docs)])
        ids, calls = sorted(kb.catalog.chunk_ids()), kb.embedder.calls  # type: ignore[attr-defined]
        os.rename(docs / "draft.md", docs / "2026 board minutes.md")
        os.rename(docs / "scan.txt", docs / "boiler log.txt")
        report = kb.ingest([str(docs)])
        assert sorted((m.source, m.to) for m in report.moved) == [
            (str(docs / "draft.md"), str(docs / "2026 board minutes.md")),
            (str(docs / "scan.txt"), str(docs / "boiler log.txt"))]
        assert not report.added and not report.removed
        assert sorted(kb.catalog.chunk_ids()) == ids and kb.embedder.calls == calls  # type: ignore[attr-defined]
        assert kb.search("roof", k=1)[0].source == str(docs / "2026 board minutes.md")
        # A title that was the file's name follows it; one from the text (the Markdown heading) stays.
        assert {d.source: d.title for d in kb.documents()} == {str(docs / "2026 board minutes.md"): "Minutes",
                                                               str(docs / "boiler log.txt"): "boiler log"}


# --- real processes ------------------------------------------------------------------------------
def _env(kb_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_DIR=str(kb_dir), KB_BACKEND=FAKE["backend"], KB_MODEL=FAKE["model"], KB_WORKERS="1",
               PYTHONPATH=str(REPO), OLLAMA_HOST=f"127.0.0.1:{free_port()}")
    return env


def _lines(stream: Any) -> queue.Queue[str]:
    """The lines a process prints, read on a thread so that every wait for one can be bounded."""
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _next_json(lines: queue.Queue[str], timeout: float = WAIT_S) -> dict[str, Any]:
    return json.loads(lines.get(timeout=timeout))


@pytest.fixture
def stop_at_end() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.slow
def test_kb_watch_process_prints_json_batches_and_stops_cleanly_on_ctrl_c(
        tmp_path: Path, stop_at_end: list[subprocess.Popen[str]]) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "a.md", "# Alpha\n\nThe alpaca grazes on the hill.\n")
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_kb", "watch", str(docs), "--json", "--debounce", "100"],
                            cwd=REPO, env=_env(tmp_path / "kb"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)  # Ctrl-C as a terminal sends it
    stop_at_end.append(proc)
    out = _lines(proc.stdout)
    first = _next_json(out)
    assert first["first"] is True and first["added"] == [str(docs / "a.md")] and first["error"] is None

    write_markdown(docs / "b.md", "# Beta\n\nThe beaver builds a dam.\n")
    batch = _next_json(out)
    assert batch["first"] is False and batch["added"] == [str(docs / "b.md")]
    with KnowledgeBase.open(tmp_path / "kb", **FAKE) as kb:  # another reader, while the watcher runs
        assert kb.search("beaver dam", k=1)[0].source == str(docs / "b.md")
    os.rename(docs / "b.md", docs / "c.md")
    batch = _next_json(out)
    assert batch["moved"] == [{"source": str(docs / "b.md"), "to": str(docs / "c.md")}] and not batch["added"]

    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in its terminal reaches the whole process group
    try:
        code = proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("kb watch did not stop on SIGINT")
    err = proc.stderr.read() if proc.stderr else ""
    assert code in (0, 130), err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "kb: stopped watching; every document committed is kept whole"
    assert len([line for line in err.splitlines() if "stopped" in line]) == 1


@pytest.mark.slow
def test_installed_kb_watch_with_the_real_model_prints_a_line_per_change(
        tmp_path: Path, stop_at_end: list[subprocess.Popen[str]]) -> None:
    """The installed entry point and the packaged embedding model: text lines, then Ctrl-C."""
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_DIR"] = str(tmp_path / "kb")
    exe = Path(sys.executable).with_name("kb")
    proc = subprocess.Popen([str(exe), "watch", str(docs)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)  # Ctrl-C as a terminal sends it
    stop_at_end.append(proc)
    out = _lines(proc.stdout)
    assert out.get(timeout=120).startswith("Indexed 1 file in ")  # the first pass: kb ingest's summary
    assert "added 1" in out.get(timeout=WAIT_S)
    write_markdown(docs / "kennel.md", "# Kennel\n\nThe kennel feeds the greyhounds twice a day at nine.\n")
    assert out.get(timeout=WAIT_S).split()[1:] == ["added", "docs/kennel.md"]
    os.rename(docs / "kennel.md", docs / "dogs.md")
    assert out.get(timeout=WAIT_S).split()[1:] == ["moved", "docs/kennel.md", "->", "docs/dogs.md"]
    with KnowledgeBase.open(tmp_path / "kb") as kb:
        assert kb.search("When are the greyhounds fed?", k=1)[0].source == str(docs / "dogs.md")
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(20) == 130
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("kb: stopped watching"), err


@pytest.mark.slow
def test_kb_serve_watch_ingests_a_new_file(tmp_path: Path, stop_at_end: list[subprocess.Popen[str]]) -> None:
    pytest.importorskip("uvicorn")
    docs = tmp_path / "docs"
    write_markdown(docs / "a.md", "# Alpha\n\nThe alpaca grazes on the hill.\n")
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_kb", "serve", "--port", str(port), "--llm", "none",
                             "--watch", str(docs), "--log-level", "warning"], cwd=REPO, env=_env(tmp_path / "kb"),
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)  # Ctrl-C as a terminal sends it
    stop_at_end.append(proc)

    def search(query: str) -> str | None:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/search", json.dumps({"query": query, "k": 1, "mode": "keyword"}),
                         {"content-type": "application/json"})
            response = conn.getresponse()
            body = json.loads(response.read() or b"{}")
        except OSError:
            return None
        hits = body.get("hits") or [{}]
        return hits[0].get("source") if response.status == 200 else None

    wait_for("the first pass, served", lambda: search("alpaca") == str(docs / "a.md"), timeout=60)
    write_markdown(docs / "b.md", "# Beta\n\nThe beaver builds a dam.\n")
    wait_for("the new file, served", lambda: search("beaver") == str(docs / "b.md"))
    proc.send_signal(signal.SIGINT)
    proc.wait(20)
    printed = (tmp_path / "serve.log").read_text()
    assert f"kb watch: added    {docs / 'b.md'}" in printed and "Traceback" not in printed, printed


@pytest.mark.slow
def test_a_file_still_being_written_waits_for_its_last_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long copy outlasts the longest batch (MAX_BATCH_MS): the passes meanwhile leave the file alone,
    and it is ingested once, whole, after its last write."""
    monkeypatch.setattr("kb.watch.MAX_BATCH_MS", 600)
    docs = tmp_path / "docs"
    docs.mkdir()
    write_markdown(docs / "kept.md", "# Kept\n\nThe archive keeps old ledgers in the basement.\n")
    with Watching(tmp_path / "kb", [docs], debounce_ms=300) as w:
        big = docs / "copy.txt"
        with open(big, "w") as out:  # a copy writing every 50 ms for 2.5 s: never 300 ms of quiet
            for i in range(50):
                out.write(f"Line {i} of the long copy about the osprey nesting season.\n")
                out.flush()
                time.sleep(0.05)
            out.write("The last line names the quokka.\n")
        copied = time.time()
        wait_for("the copy is searchable", lambda: w.top("quokka") == str(big))
        wait_for("its batch is reported", lambda: any(str(big) in b.added for b in w.batches))
        later = [b for b in w.batches if not b.first]
        assert [b.added for b in later if b.added] == [[str(big)]]  # added once, not part-way
        assert not any(b.updated or b.failed for b in later)
        assert next(b for b in later if b.added).at >= copied


@pytest.mark.slow
def test_a_file_deleted_while_a_pass_reads_it_is_no_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file gone between the pass's walk and its reading is not reported, nor kept, as a failure."""
    from kb.ingest import pipeline

    walk = pipeline.walk

    def walk_then_delete(*args: Any, **kwargs: Any) -> Any:
        walked = walk(*args, **kwargs)
        for cand in walked.found:
            if cand.path.name == "fleeting.md":
                cand.path.unlink(missing_ok=True)
        return walked

    monkeypatch.setattr(pipeline, "walk", walk_then_delete)
    docs = tmp_path / "docs"
    docs.mkdir()
    with Watching(tmp_path / "kb", [docs]) as w:
        write_markdown(docs / "fleeting.md", "# Fleeting\n\nGone before it is read.\n")
        good = write_markdown(docs / "good.md", "# Good\n\nThe lighthouse keeper logs every ship.\n")
        wait_for("the next file is ingested", lambda: w.top("lighthouse") == str(good))
        time.sleep(1.5)  # a pass or two more
        assert not [f for b in w.batches for f in b.failed]
        with KnowledgeBase.open(tmp_path / "kb", **FAKE) as kb:
            assert not kb.status().failed


@pytest.mark.slow
def test_a_pass_that_breaks_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a pass: the batch carries the error in one line and the watch goes on; the traceback is
    logged only with KB_DEBUG=1."""
    monkeypatch.delenv("KB_DEBUG", raising=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    kb = KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE)
    direct = writing_to(kb)
    calls = [0]

    def write(p: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("the disk sneezed")
        return direct(p)

    batches: list[Batch] = []
    watcher = Watcher([str(docs)], write, ignore=[tmp_path / "kb"], debounce_ms=100)
    thread = threading.Thread(target=watcher.run, args=(batches.append,), daemon=True)
    try:
        with caplog.at_level("DEBUG", logger="kb"):
            thread.start()
            wait_for("the first pass", lambda: batches)
            write_markdown(docs / "a.md", "# Alpha\n\nThe alpaca grazes on the hill.\n")
            wait_for("the error", lambda: any(b.error for b in batches))
            assert next(b.error for b in batches if b.error) == "RuntimeError: the disk sneezed"
            wait_for("the retry ingests it", lambda: any(b.added for b in batches), timeout=RETRY_WAIT_S)
    finally:
        watcher.stop()
        thread.join(15)
        kb.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged without KB_DEBUG"


RETRY_WAIT_S = 45.0


@pytest.mark.slow
def test_kb_watch_summarises_its_first_pass(tmp_path: Path, stop_at_end: list[subprocess.Popen[str]]) -> None:
    """The first pass prints kb ingest's summary (counts, failures listed), not a line per file; later
    changes print a line each."""
    docs = tmp_path / "docs"
    for i in range(5):
        write_markdown(docs / f"n{i}.md", f"# Note {i}\n\nThe otter number {i} swims.\n")
    (docs / "blob.txt").write_bytes(bytes(range(256)) * 8)
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_kb", "watch", str(docs), "--debounce", "100"],
                            cwd=REPO, env=_env(tmp_path / "kb"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)  # Ctrl-C as a terminal sends it
    stop_at_end.append(proc)
    out = _lines(proc.stdout)
    assert out.get(timeout=WAIT_S).startswith("Indexed 5 files in ")
    counts = out.get(timeout=WAIT_S)
    assert "added 5" in counts and "failed 1" in counts, counts
    failed = out.get(timeout=WAIT_S).split()
    assert failed[0] == "failed" and failed[1].endswith("docs/blob.txt:"), failed  # as kb ingest lists it
    assert out.empty()  # and no line per file
    write_markdown(docs / "b.md", "# Beta\n\nThe beaver builds a dam.\n")
    added = out.get(timeout=WAIT_S).split()  # "HH:MM:SS added    docs/b.md", the path shown as kb shows it
    assert added[1] == "added" and added[2].endswith("docs/b.md"), added
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(20) in (0, 130)
