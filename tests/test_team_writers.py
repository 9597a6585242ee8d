"""Many writers, one team store: two members ingest different folders into one Milvus at the same time,
one of them removes files while a third member searches; nothing is lost or duplicated, and every
member's mirror ends up listing what Milvus holds.

Milvus Lite lets one process at a time open its folder (an flock on its LOCK file), so the members
share it the supported way: one `milvus-lite server` on 127.0.0.1 serves the folder, and every member
connects to it by URI, as it would to a Milvus server. The server runs with one worker thread: Lite's
engine is single-writer per collection, and with the default ten threads two clients' flushes collided
('current_seq is monotonic', the flush failed) in 3 of 13 runs of a two-writer stress script (none in
15 runs with one thread). All members are real `kb` processes with their own knowledge base folders
and the packaged model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import stop

pytest.importorskip("milvus_lite")

FILES = 30  # per member
REMOVED = 10  # of B's files, removed while the others run
COLLECTION = "team"
DEADLINE_S = 240.0  # the whole concurrent phase; a member process alone is bounded by it too
MAX_SEARCHES = 60


def _exe(name: str) -> str:
    exe = shutil.which(name, path=os.path.dirname(sys.executable))
    assert exe, f"{name} is not installed beside {sys.executable}"
    return exe


@pytest.fixture
def lite_server(tmp_path: Path) -> Iterator[str]:
    """One Milvus Lite folder served on 127.0.0.1, one request at a time (see the module's docstring)."""
    with helpers.lite_server(tmp_path / "team.db", tmp_path / "milvus-lite.log") as uri:
        yield uri


def write_folder(root: Path, side: str, sections: tuple[int, int]) -> dict[Path, str]:
    """FILES Markdown notes, each with a word found nowhere else in every sentence (so every chunk of
    the file carries it), of `sections` (fewest, most) sections; returns file -> word."""
    words = {}
    for i in range(FILES):
        word = f"{side}{i:02d}"
        parts = [
            f"## Shipment {s}\n\n" + " ".join(
                f"Ledger line {n} of {word}: crates, pallets and invoices moved through depot {s} in week {n}."
                for n in range(14))
            for s in range(sections[0] + i % (sections[1] - sections[0] + 1))
        ]
        path = root / f"{side}-{i:02d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Depot note {word}\n\n" + "\n\n".join(parts) + "\n", encoding="utf-8")
        words[path] = word
    return words


@dataclass
class Search:
    member: str
    word: str
    started: float
    ended: float
    rc: int
    out: str
    err: str


class Team:
    """Runs `kb` as a member: its own knowledge base folder, the shared URI and collection."""

    def __init__(self, tmp_path: Path, uri: str):
        self.tmp, self.uri = tmp_path, uri
        self.exe = _exe("kb")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}

    def argv(self, member: str, *args: str) -> list[str]:
        return [self.exe, *args, "--kb", str(self.tmp / member), "--store", "milvus", "--store-uri", self.uri,
                "--collection", COLLECTION, "--json"]

    def start(self, member: str, name: str, *args: str) -> subprocess.Popen[bytes]:
        # Output to files: a pipe nobody reads while the test searches could fill and stall the member.
        out, err = (open(self.tmp / f"{name}.{s}", "wb") for s in ("out", "err"))
        with out, err:
            return subprocess.Popen(self.argv(member, *args), stdout=out, stderr=err, env=self.env)

    def finished(self, proc: subprocess.Popen[bytes], name: str) -> dict[str, Any]:
        proc.wait(timeout=max(1.0, DEADLINE_S))
        err = (self.tmp / f"{name}.err").read_text()
        assert proc.returncode == 0, f"{name}: {err}"
        return json.loads((self.tmp / f"{name}.out").read_text())

    def run(self, member: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(member, *args), capture_output=True, text=True, env=self.env, timeout=120,
                              check=False)

    def json(self, member: str, *args: str) -> dict[str, Any]:
        out = self.run(member, *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def search(self, member: str, word: str) -> Search:
        started = time.monotonic()
        out = self.run(member, "search", word, "--k", "5")
        return Search(member, word, started, time.monotonic(), out.returncode, out.stdout, out.stderr)


def store_contents(uri: str) -> tuple[dict[str, int], dict[str, float], Counter[int], dict[str, int]]:
    """What Milvus holds, read with pymilvus itself: document records (path -> chunks, path -> when
    written), how many rows each chunk id has, and chunk rows per path."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=30)
    try:
        def rows(name: str, fields: list[str]) -> Iterator[dict[str, Any]]:
            client.load_collection(name, timeout=60)
            it = client.query_iterator(name, batch_size=1000, filter="", output_fields=fields,
                                       consistency_level="Strong", timeout=30)
            try:
                for _ in range(1000):  # bounded: far more pages than the rows need
                    page = it.next()
                    if not page:
                        break
                    yield from page
            finally:
                it.close()

        docs = list(rows(f"{COLLECTION}_documents", ["path", "chunks", "ingested_at"]))
        records = {r["path"]: int(r["chunks"]) for r in docs}
        ids: Counter[int] = Counter()
        per_path: Counter[str] = Counter()
        for r in rows(f"{COLLECTION}_chunks", ["id", "path"]):
            ids[int(r["id"])] += 1
            per_path[r["path"]] += 1
        return records, {r["path"]: float(r["ingested_at"]) for r in docs}, ids, dict(per_path)
    finally:
        client.close()


@pytest.mark.slow
def test_two_members_write_one_removes_a_third_searches(tmp_path: Path, lite_server: str) -> None:
    words = {str(p.resolve()): w for p, w in [*write_folder(tmp_path / "fa", "aquila", (3, 6)).items(),
                                               *write_folder(tmp_path / "fb", "borealis", (1, 2)).items()]}
    by_word = {w: p for p, w in words.items()}
    a_files = sorted(p for p in words if "/fa/" in p)
    b_files = sorted(p for p in words if "/fb/" in p)
    removed, kept = b_files[:REMOVED], [*a_files, *b_files[REMOVED:]]
    team = Team(tmp_path, lite_server)

    # A and B ingest at once; B removes files the moment its ingest ends (A may still be writing);
    # meanwhile a third member searches, round robin over a word of A's, of B's kept and of B's removed.
    queries = [words[a_files[5]], words[b_files[-3]], words[removed[4]]]
    t0, wall0 = time.monotonic(), time.time()
    spans: dict[str, list[float]] = {}
    searches: list[Search] = []
    done_searching = threading.Event()

    def searcher() -> None:
        for n in range(MAX_SEARCHES):
            if done_searching.is_set():
                return
            searches.append(team.search("carol", queries[n % len(queries)]))

    ingest_a = team.start("alice", "ingest-a", "ingest", str(tmp_path / "fa"))
    ingest_b = team.start("bob", "ingest-b", "ingest", str(tmp_path / "fb"))
    remove_b: subprocess.Popen[bytes] | None = None
    thread = threading.Thread(target=searcher, daemon=True)
    thread.start()
    try:
        while True:
            now = time.monotonic() - t0
            assert now < DEADLINE_S, f"the members did not finish within {DEADLINE_S:.0f} s"
            if remove_b is None and ingest_b.poll() is not None:
                assert ingest_b.returncode == 0, (tmp_path / "ingest-b.err").read_text()
                remove_b = team.start("bob", "remove-b", "remove", *removed)
                spans["ingest-b"], spans["remove-b"] = [0.0, now], [now, 0.0]
            if "ingest-a" not in spans and ingest_a.poll() is not None:
                spans["ingest-a"] = [0.0, now]
            if remove_b is not None and not spans["remove-b"][1] and remove_b.poll() is not None:
                spans["remove-b"][1] = now
            if "ingest-a" in spans and remove_b is not None and spans["remove-b"][1]:
                break
            time.sleep(0.05)
        removal_done = t0 + spans["remove-b"][1]
        done_searching.set()
        thread.join(timeout=180)
        assert not thread.is_alive()
        report_a = team.finished(ingest_a, "ingest-a")
        report_b = team.finished(ingest_b, "ingest-b")
        assert sorted(team.finished(remove_b, "remove-b")["removed"]) == removed
    finally:
        done_searching.set()
        for proc in (ingest_a, ingest_b, remove_b):
            if proc is not None and proc.poll() is None:
                stop(proc)
    assert sorted(report_a["added"]) == a_files and report_a["removed"] == []
    assert sorted(report_b["added"]) == b_files and report_b["removed"] == []
    # After the removal: a few more searches, which must not find what was removed.
    for word in queries:
        searches.append(team.search("carol", word))

    # Every search succeeded, or failed in one line without a traceback (the knowledge base is empty
    # before either member committed anything).
    for s in searches:
        assert "Traceback" not in s.err, s.err
        if s.rc != 0:
            lines = [line for line in s.err.splitlines() if line.startswith("kb: error:")]
            assert s.rc == 1 and len(lines) == 1, s.err
            assert "is empty" in lines[0] or "busy" in lines[0] or "lock" in lines[0], s.err
            continue
        hits = json.loads(s.out)["hits"]
        for hit in hits:
            # Each hit's text is a chunk of the file it names (every chunk holds its file's word)...
            assert words.get(hit["source"], "(not a test file)") in hit["text"], hit
            # ...and nothing removed is found by a search that started once the removal was over.
            if s.started > removal_done:
                assert hit["source"] not in removed, (s.word, hit["source"])
        if s.started > removal_done and by_word[s.word] in kept:
            assert by_word[s.word] in {h["source"] for h in hits}, (s.word, hits)
    assert all(s.rc == 0 for s in searches if s.started > removal_done)

    # Milvus holds exactly A's 30 and B's 20 documents, each chunk once, each document's chunks all there.
    records, written, ids, per_path = store_contents(lite_server)
    assert sorted(records) == sorted(kept)
    assert [i for i, n in ids.items() if n > 1] == []
    assert per_path == records

    # The members did write at the same time: B's ingest or its removal while A's ingest was committing.
    a_at, b_at = ([written[p] - wall0 for p in files if p in written] for files in (a_files, b_files))
    spans["writes-a"], spans["writes-b"] = [min(a_at), max(a_at)], [min(b_at), max(b_at)]
    print("\n" + ", ".join(f"{k} {a:.1f}-{b:.1f} s" for k, (a, b) in spans.items()) + f"; {len(searches)} searches, "
          f"{sum(s.rc == 0 for s in searches)} answered")
    assert max(min(a_at), min(b_at)) < min(max(a_at), max(b_at)) or spans["remove-b"][0] < max(a_at)

    # Every member's mirror (synced when it opens) lists the same documents with the same chunk counts.
    for member in ("alice", "bob", "carol"):
        listing = {d["source"]: d["chunks"] for d in team.json(member, "documents")["documents"]}
        assert listing == records, member
        status = team.json(member, "status")
        assert (status["documents"], status["chunks"]) == (len(kept), sum(records.values())), member
    # ...and each member finds a word of either side, and not a removed one.
    for member in ("alice", "bob"):
        for word in (words[a_files[17]], words[b_files[-1]]):
            hits = team.json(member, "search", word, "--k", "3")["hits"]
            assert hits and hits[0]["source"] == by_word[word], (member, word, hits)
        gone = team.json(member, "search", words[removed[0]], "--k", "10")["hits"]
        assert not {h["source"] for h in gone} & set(removed), member


@pytest.mark.slow
def test_a_held_lite_folder_names_the_way_to_share_it(tmp_path: Path) -> None:
    """A second process on a Lite folder is told, in one line, how members share one: serve it."""
    folder = tmp_path / "team.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         ("import sys, time; from pymilvus import MilvusClient; MilvusClient(sys.argv[1]).list_collections();"
          " print('open', flush=True); time.sleep(60)"), str(folder)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
        out = subprocess.run([_exe("kb"), "status", "--kb", str(tmp_path / "member"), "--store", "milvus",
                              "--store-uri", str(folder)], capture_output=True, text=True, env=env, timeout=120,
                             check=False)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert f"milvus-lite server --data-dir {folder} --host 127.0.0.1 --port 19530 --max-workers 1" in out.stderr
        assert "--store-uri http://127.0.0.1:19530" in out.stderr
    finally:
        stop(holder)
