"""Crash safety where it matters: a real `kb` process killed (SIGKILL) at every failpoint of the write
path (kb/failpoints.py), on FAISS and on Milvus Lite; the next runs must leave the knowledge base in
the state of a clean one: same documents and chunks, one vector per chunk and none else, a sound FTS
index, no leftover files, the same search results."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kb import KnowledgeBase
from kb.failpoints import POINTS
from tests.helpers import write_markdown, write_pdf

REPO = Path(__file__).resolve().parents[1]
QUERIES = ["greyhounds kennel feeding", "ferry island pier", "lighthouse lamp", "revenue northern region"]
INGEST_POINTS = {
    "faiss": ["ingest.after_parse", "ingest.after_embed", "catalog.in_transaction", "catalog.after_commit",
              "store.before_save", "store.before_rename", "store.after_rename"],
    "milvus": ["ingest.after_parse", "ingest.after_embed", "catalog.in_transaction", "milvus.upsert",
               "milvus.delete", "team.after_chunks", "team.after_record"],
}


def paragraph(topic: str, n: int) -> str:
    return " ".join(f"{topic} sentence {i} tells one more thing about the {topic}." for i in range(n))


def write_v1(docs: Path) -> None:
    write_markdown(docs / "kennel.md", f"# Kennel\n\n{paragraph('greyhounds kennel feeding', 40)}\n\n## Water\n\n"
                                       f"{paragraph('fresh water bowls', 30)}\n")
    write_markdown(docs / "boats.md", f"# Boats\n\n{paragraph('ferry island pier', 50)}\n")
    write_markdown(docs / "garden.md", f"# Garden\n\n{paragraph('tomatoes roses', 20)}\n")
    write_pdf(docs / "report.pdf", ["Quarterly report", "Revenue grew in the northern region."])


def write_v2(docs: Path) -> None:
    """An incremental run with every kind of write: an update, a removal, an addition."""
    write_markdown(docs / "boats.md", f"# Boats\n\n{paragraph('ferry island pier timetable', 45)}\n")
    (docs / "garden.md").unlink()
    write_markdown(docs / "lighthouse.md", f"# Lighthouse\n\n{paragraph('lighthouse lamp keeper', 35)}\n")


def kb(*args: str, failpoint: str | None = None, store: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update({"KB_BACKEND": "fake", "KB_WORKERS": "1"})  # the model: the index's own
    env.update({f"KB_{k.upper()}": v for k, v in (store or {}).items()})
    if failpoint:
        env["KB_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "tests.fake_kb", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


def killed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == -signal.SIGKILL, f"the failpoint was not reached: {result.returncode} {result.stderr[-800:]}"


def snapshot(kb_dir: Path, store: dict[str, str]) -> dict[str, Any]:
    db = sqlite3.connect(kb_dir / "catalog.sqlite")
    try:
        db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")  # raises if FTS disagrees
        rows = db.execute("SELECT d.source, c.ord, c.text, c.page_start, c.section FROM chunks c"
                          " JOIN documents d ON d.id = c.doc_id ORDER BY d.source, c.ord").fetchall()
        chunk_ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
        fts_rows = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('model', 'dimensions')").fetchall())
    finally:
        db.close()
    with KnowledgeBase.open(kb_dir, backend="fake", **store) as k:
        vector_ids = set(k.store.ids().tolist())
        results = {q: [(Path(h.source).name, h.text) for h in k.search(q, k=3)] for q in QUERIES}
    assert vector_ids == chunk_ids, "every chunk has exactly one vector, and no vector lacks a chunk"
    assert fts_rows == len(chunk_ids)
    files = sorted(p.name for p in kb_dir.iterdir() if p.name.endswith((".faiss", ".tmp")))
    return {"rows": rows, "chunks": len(chunk_ids), "meta": meta, "results": results,
            "vector_files": len(files), "leftovers": [f for f in files if f.endswith(".tmp")]}


def stores(tmp_path: Path) -> dict[str, dict[str, str]]:
    return {"faiss": {}, "milvus": {"store": "milvus", "store_uri": str(tmp_path / "team.db")}}


def killed_during_v2(tmp_path: Path, failpoint: str, store: dict[str, str] | None = None) -> tuple[Path, Path]:
    """A knowledge base of v1 whose incremental ingest of v2 was killed at `failpoint`: (docs, kb folder)."""
    docs, crashed = tmp_path / "docs", tmp_path / "crashed"
    write_v1(docs)
    ok(kb("ingest", str(docs), "--kb", str(crashed), "--json", store=store))
    write_v2(docs)
    killed(kb("ingest", str(docs), "--kb", str(crashed), "--json", failpoint=failpoint, store=store))
    return docs, crashed


def assert_recovers_to_clean(tmp_path: Path, docs: Path, crashed: Path, store_name: str = "faiss") -> dict[str, Any]:
    """`kb doctor` then `kb ingest` leave `crashed` as a clean ingest of `docs` would be; its snapshot."""
    store = stores(tmp_path)[store_name]
    ok(kb("doctor", "--kb", str(crashed), "--json", store=store))
    assert not ok(kb("ingest", str(docs), "--kb", str(crashed), "--json", store=store))["failed"]
    (tmp_path / "clean-side").mkdir()
    clean_store = stores(tmp_path / "clean-side")[store_name]
    clean = tmp_path / "clean"
    ok(kb("ingest", str(docs), "--kb", str(clean), "--json", store=clean_store))
    after = snapshot(crashed, store)
    assert after == snapshot(clean, clean_store)
    return after


@pytest.mark.slow
@pytest.mark.parametrize("store_name,point", [(s, p) for s, points in INGEST_POINTS.items() for p in points])
def test_killed_ingest_is_repaired_to_a_clean_state(tmp_path: Path, store_name: str, point: str) -> None:
    if store_name == "milvus":
        pytest.importorskip("milvus_lite")
    assert point in POINTS
    docs, crashed = killed_during_v2(tmp_path, f"{point}:kill", stores(tmp_path)[store_name])
    after = assert_recovers_to_clean(tmp_path, docs, crashed, store_name)
    assert {Path(r[0]).name for r in after["rows"]} == {"kennel.md", "boats.md", "lighthouse.md", "report.pdf"}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["reindex.after_save", "reindex.after_switch"])
def test_killed_reindex_keeps_a_working_index_and_finishes_on_the_next_run(tmp_path: Path, point: str) -> None:
    docs = tmp_path / "docs"
    write_v1(docs)
    crashed, clean = tmp_path / "crashed", tmp_path / "clean"
    for kb_dir in (crashed, clean):
        ok(kb("ingest", str(docs), "--kb", str(kb_dir), "--json"))
    killed(kb("reindex", "--model", "fake-hash-v2", "--kb", str(crashed), failpoint=f"{point}:kill"))
    hits = ok(kb("search", "greyhounds kennel", "--kb", str(crashed), "--json", "-k", "1"))["hits"]
    assert Path(hits[0]["source"]).name == "kennel.md"  # the index answers between the two runs
    ok(kb("doctor", "--kb", str(crashed), "--json"))
    ok(kb("reindex", "--model", "fake-hash-v2", "--kb", str(crashed), "--json"))
    ok(kb("reindex", "--model", "fake-hash-v2", "--kb", str(clean), "--json"))
    after, expected = snapshot(crashed, {}), snapshot(clean, {})
    assert after == expected and after["meta"]["model"] == "fake-hash-v2" and after["vector_files"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("store_name", ["faiss", "milvus"])
def test_killed_remove_finishes_on_the_next_run(tmp_path: Path, store_name: str) -> None:
    if store_name == "milvus":
        pytest.importorskip("milvus_lite")
    docs = tmp_path / "docs"
    write_v1(docs)
    targets = [str(docs / "kennel.md"), str(docs / "garden.md")]
    results = {}
    for name, failpoint in (("crashed", "remove.after_forget:kill"), ("clean", None)):
        side = tmp_path / name
        side.mkdir()
        store = stores(side)[store_name]
        ok(kb("ingest", str(docs), "--kb", str(side / "kb"), "--json", store=store))
        first = kb("remove", *targets, "--kb", str(side / "kb"), "--json", failpoint=failpoint, store=store)
        if failpoint:
            killed(first)
            ok(kb("doctor", "--kb", str(side / "kb"), "--json", store=store))
            assert ok(kb("remove", *targets, "--kb", str(side / "kb"), "--json", store=store))["removed"]
        else:
            ok(first)
        results[name] = snapshot(side / "kb", store)
    assert results["crashed"] == results["clean"]
    assert {Path(r[0]).name for r in results["clean"]["rows"]} == {"boats.md", "report.pdf"}


@pytest.mark.slow
def test_killed_team_pull_mirrors_everything_on_the_next_open(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite")
    store = stores(tmp_path)["milvus"]
    docs = tmp_path / "docs"
    write_v1(docs)
    ok(kb("ingest", str(docs), "--kb", str(tmp_path / "alice"), "--json", store=store))
    member = tmp_path / "bob"
    killed(kb("status", "--kb", str(member), "--json", failpoint="team.pull:kill@2", store=store))
    assert ok(kb("status", "--kb", str(member), "--json", store=store))["documents"] == 4
    assert snapshot(member, store) == snapshot(tmp_path / "alice", store)


def test_failpoints_are_named_and_checked() -> None:
    bad = kb("status", failpoint="store.nowhere:kill")
    assert bad.returncode != 0 and "unknown failpoint" in bad.stderr


@pytest.mark.slow
def test_a_torn_vectors_file_is_refused_clearly_then_rebuilt(tmp_path: Path) -> None:
    """A power loss can leave the newest vectors file cut short: searches refuse it in one line, never
    answer from it; `kb doctor` rebuilds it from the catalog."""
    docs, crashed = killed_during_v2(tmp_path, "catalog.after_commit:kill@2")
    vectors = crashed / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[: vectors.stat().st_size // 2])
    refused = kb("search", "greyhounds", "--kb", str(crashed), "--json")
    assert refused.returncode == 1 and set(json.loads(refused.stdout)) == {"error", "exit_status"}  # no hits
    assert refused.stderr.count("\n") == 1 and "unreadable FAISS index" in refused.stderr and "kb doctor" in refused.stderr
    assert ok(kb("doctor", "--kb", str(crashed), "--json"))["ok"]
    assert_recovers_to_clean(tmp_path, docs, crashed)


@pytest.mark.slow
def test_a_torn_catalog_log_rolls_back_and_stale_vectors_are_never_served(tmp_path: Path) -> None:
    """A power loss can cut the end off SQLite's write-ahead log: the catalog comes back as of an earlier
    commit, while the vectors file already holds later chunks. Those are never served, and the next
    run drops them before their ids could be used again."""
    docs, crashed = killed_during_v2(tmp_path, "store.after_rename:kill")
    wal = crashed / "catalog.sqlite-wal"
    assert wal.stat().st_size > 0
    wal.write_bytes(wal.read_bytes()[: wal.stat().st_size // 3])
    db = sqlite3.connect(crashed / "catalog.sqlite")
    texts = {r[0]: r[1] for r in db.execute("SELECT id, text FROM chunks")}
    db.close()
    with KnowledgeBase.open(crashed, backend="fake") as k:
        assert set(k.store.ids().tolist()) - set(texts), "the torn log lost commits whose vectors were saved"
    for query in QUERIES:
        for hit in ok(kb("search", query, "--kb", str(crashed), "--json", "-k", "5"))["hits"]:
            assert texts[hit["chunk_id"]] == hit["text"]  # only chunks the catalog has, with their own text
    assert_recovers_to_clean(tmp_path, docs, crashed)
