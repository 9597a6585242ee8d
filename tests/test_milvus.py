"""Milvus store and team mode: a knowledge base in Milvus that any member with the URI can use.

Milvus Lite (embedded, a `.db` folder) lets one process at a time open it, so members share a Lite
folder one after the other; `milvus-lite server` on 127.0.0.1 stands in for a Milvus server where
members work at the same time (the server code path: HNSW, no exclusive lock).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.cli import main
from kb.errors import ConfigError, DependencyError, EmbedderMismatchError, StoreError
from kb.filters import Filters
from tests.helpers import free_port, lite_server, write_docx, write_markdown, write_pdf

pytest.importorskip("milvus_lite")


def kb_json(*args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def make_docs(root: Path) -> Path:
    write_markdown(root / "runbook.md")
    write_docx(root / "handbook.docx")
    write_pdf(root / "report.pdf", ["Quarterly report\nRevenue grew in the northern region.",
                                    "Risk factors\nThe zeppelin fleet was grounded by storms."])
    return root


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KB_STORE=milvus on a Milvus Lite folder; returns that folder's path."""
    uri = tmp_path / "team.db"
    monkeypatch.setenv("KB_STORE", "milvus")
    monkeypatch.setenv("KB_STORE_URI", str(uri))
    return uri


def sources(hits: dict) -> list[str]:
    return [Path(h["source"]).name for h in hits["hits"]]


@pytest.mark.slow
def test_cli_ingest_search_reingest_remove(tmp_path: Path, team: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    report = kb_json("ingest", str(docs))
    assert sorted(Path(a).name for a in report["added"]) == ["handbook.docx", "report.pdf", "runbook.md"]
    assert team.is_dir()  # the Lite "file" is a folder

    hits = kb_json("search", "payment gateway error", "--k", "3")
    top = hits["hits"][0]
    assert top["source"] == str(docs / "runbook.md") and top["section"] == "Payments runbook > Incident response"
    assert isinstance(top["chunk_id"], int) and top["chunk_id"] > 0
    assert sources(kb_json("search", "quokka-west", "--mode", "keyword"))[0] == "runbook.md"  # Milvus BM25
    # Filters become Milvus expressions: type, pages, section, path glob.
    pdf = kb_json("search", "storms", "--type", "pdf", "--pages", "2")["hits"]
    assert pdf and all(h["source"].endswith("report.pdf") and h["page"] <= 2 <= h["page_end"] for h in pdf)
    assert {h["source"] for h in kb_json("search", "flights", "--section", "travel")["hits"]} == {str(docs / "handbook.docx")}
    assert set(sources(kb_json("search", "anything", "--path", "*runbook*"))) == {"runbook.md"}
    assert kb_json("search", "anything", "--path", "*nothing-matches*")["hits"] == []

    status = kb_json("status")
    assert status["store"] == "milvus" and status["documents"] == 3 and status["dimensions"] == 384

    again = kb_json("ingest", str(docs))
    assert again["added"] == [] and again["updated"] == [] and len(again["unchanged"]) == 3

    write_markdown(docs / "runbook.md", "# Payments runbook\n\nThe gateway now fails over to region wombat-east.\n")
    changed = kb_json("ingest", str(docs))
    assert changed["updated"] == [str(docs / "runbook.md")]
    assert sources(kb_json("search", "wombat-east", "--mode", "keyword"))[0] == "runbook.md"
    assert not any("quokka" in h["text"] for h in kb_json("search", "quokka-west failover", "--k", "10")["hits"])  # the old version is gone

    assert kb_json("remove", str(docs / "handbook.docx"))["removed"] == [str(docs / "handbook.docx")]
    assert "handbook.docx" not in sources(kb_json("search", "economy class flights", "--k", "10"))
    check = kb_json("doctor")
    assert check["ok"] and check["chunks"] == check["vectors"]  # no stale or orphan rows in Milvus


@pytest.mark.slow
def test_second_member_with_only_the_uri(tmp_path: Path) -> None:
    """Real processes, one after the other (Lite allows one process at a time): a member with
    another KB folder and only the URI searches what the first ingested and re-ingests incrementally."""
    exe = shutil.which("kb", path=os.path.dirname(sys.executable))
    assert exe
    docs = make_docs(tmp_path / "docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    uri = str(tmp_path / "shared" / "team.db")

    def kb(member: str, *args: str) -> dict:
        out = subprocess.run([exe, *args, "--kb", str(tmp_path / member), "--store", "milvus", "--store-uri", uri,
                              "--collection", "acme", "--json"], check=False, capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert len(kb("alice", "ingest", str(docs))["added"]) == 3
    found = kb("bob", "search", "zeppelin fleet grounded")["hits"][0]
    assert found["source"] == str(docs / "report.pdf") and found["page"] <= 2 <= found["page_end"]
    assert kb("bob", "status")["documents"] == 3
    again = kb("bob", "ingest", str(docs))
    assert again["added"] == [] and len(again["unchanged"]) == 3 and again["chunks"] == 0
    (docs / "runbook.md").unlink()
    assert kb("bob", "ingest", str(docs))["removed"] == [str(docs / "runbook.md")]
    assert kb("alice", "status")["documents"] == 2  # alice's mirror follows bob's change


@pytest.mark.slow
def test_lite_folder_open_in_another_process_is_a_clear_error(tmp_path: Path, team: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         ("import sys, time; from pymilvus import MilvusClient; MilvusClient(sys.argv[1]).list_collections();"
          " print('open', flush=True); time.sleep(60)"), str(team)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = CliRunner().invoke(main, ["status"])
        assert result.exit_code == 1
        assert "is open in another process" in result.stderr and "docker compose up -d" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`milvus-lite server` on 127.0.0.1: the server code path, several clients at once."""
    with lite_server(tmp_path / "server.db") as uri:
        yield uri


@pytest.mark.slow
def test_members_at_once_on_a_server_do_not_clobber_each_other(tmp_path: Path, server: str) -> None:
    a_docs, b_docs = tmp_path / "alice-docs", tmp_path / "bob-docs"
    write_markdown(a_docs / "runbook.md")
    write_pdf(b_docs / "report.pdf", ["Risk factors\nThe zeppelin fleet was grounded by storms."])
    opts = {"store": "milvus", "store_uri": server}
    alice = KnowledgeBase.open(tmp_path / "alice", **opts)
    bob = KnowledgeBase.open(tmp_path / "bob", **opts)
    try:
        assert bob.status().documents == 0  # bob opened (and synced) before anything was shared
        assert alice.ingest([str(a_docs)]).added == [str(a_docs / "runbook.md")]
        # bob ingests another folder: alice's document is not "vanished", and bob's repair does not
        # take alice's fresh vectors for orphans.
        report = bob.ingest([str(b_docs)])
        assert report.added == [str(b_docs / "report.pdf")] and report.removed == []
        assert bob.check().ok
        bob.refresh()  # a long-lived KnowledgeBase pulls others' changes every TEAM_SYNC_S, or when told
        assert {Path(h.source).name for h in bob.search("quokka-west failover", k=10)} >= {"runbook.md"}
    finally:
        alice.close()
        bob.close()
    with KnowledgeBase.open(tmp_path / "alice", **opts) as again:
        assert {Path(d.source).name for d in again.catalog.documents()} == {"runbook.md", "report.pdf"}
        hits = again.search("zeppelin", k=3, filters=Filters(file_type="pdf"))
        assert hits and hits[0].source == str(b_docs / "report.pdf") and hits[0].page == 1
        assert again.store.count() == again.catalog.totals()[1]


@pytest.mark.slow
def test_building_model_is_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member whose model differs from the one the team index was built with gets a clear error."""
    from kb.index.milvus import MilvusStore

    uri = str(tmp_path / "team.db")
    store = MilvusStore(uri, "kb", 4)
    store.set_meta(model="acme/other-model", dimensions="4", store="milvus")
    store.close()
    monkeypatch.setenv("KB_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(EmbedderMismatchError, match="acme/other-model"), \
            KnowledgeBase.open(tmp_path / "member", store="milvus", store_uri=uri) as kb:
        kb.ingest([str(write_markdown(tmp_path / "docs" / "a.md"))])


def _chunks(n: int, word: str) -> list:
    from kb.types import Chunk

    return [Chunk(ord=i, text=f"{word} part {i}", embed_text="", headings=("Title", f"Part {i}"), page_start=i + 1,
                  page_end=i + 1, char_start=10 * i, char_end=10 * i + 9, tokens=4) for i in range(n)]


def _publish(store, path: str, sha: str, n: int, word: str) -> list[int]:  # type: ignore[no-untyped-def]
    from kb.index.team import publish

    vectors = np.random.default_rng(len(path)).standard_normal((n, 4)).astype(np.float32)
    return publish(store, path=path, source=path, file_type="pdf", sha256=sha, size=1, mtime_ns=1, title="T",
                   pages=n, metadata={"k": "v"}, chunks=_chunks(n, word), vectors=vectors)


@pytest.mark.slow
def test_sync_skips_cut_short_documents_and_repair_waits_before_deleting_orphans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kb.index import team as sync
    from kb.index.catalog import Catalog
    from kb.index.milvus import MilvusStore

    store = MilvusStore(str(tmp_path / "team.db"), "kb", 4)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        ids = _publish(store, "/d/a.pdf", "a" * 64, 3, "alpha")
        assert ids == [sync.chunk_id("/d/a.pdf", "a" * 64, i) for i in range(3)]  # the same on every machine
        # An ingest cut short after its chunks, before its record:
        store.add(np.array([7, 8], dtype=np.int64), np.ones((2, 4), dtype=np.float32),
                  [{"path": "/d/b.pdf", "sha256": "b" * 64, "text": "beta", "at": int(time.time())}] * 2)
        # A record whose chunks are not all there:
        store.put_document({"path": "/d/c.pdf", "source": "/d/c.pdf", "file_type": "pdf", "sha256": "c" * 64,
                            "size": 1, "mtime_ns": 1, "title": "", "pages": 1, "metadata": {}, "chunks": 2,
                            "ingested_at": 0.0})
        store.add(np.array([9], dtype=np.int64), np.ones((1, 4), dtype=np.float32),
                  [{"path": "/d/c.pdf", "sha256": "c" * 64, "text": "gamma", "at": 0}])

        report = sync.pull(catalog, store)
        assert report.pulled == ["/d/a.pdf"] and report.incomplete == ["/d/c.pdf"]
        rows = catalog.chunks(ids)
        assert [rows[i]["text"] for i in ids] == ["alpha part 0", "alpha part 1", "alpha part 2"]
        assert rows[ids[1]]["section"] == "Title > Part 1" and rows[ids[1]]["page_start"] == 2
        assert sorted(catalog.chunk_ids()) == sorted(ids)

        # Chunks no record claims (7, 8) may be another member's ingest in flight: kept while fresh.
        assert sync.repair(catalog, store) == (0, 0)
        assert sorted(store.ids().tolist()) == sorted([*ids, 7, 8, 9])
        monkeypatch.setattr(sync, "ORPHAN_GRACE_S", -1.0)
        assert sync.repair(catalog, store) == (2, 0)
        assert sorted(store.ids().tolist()) == sorted([*ids, 9])  # 9 has a record, only not all its siblings

        # A new version replaces the old chunks everywhere; a deleted document leaves the mirror.
        new_ids = _publish(store, "/d/a.pdf", "d" * 64, 2, "delta")
        assert sorted(store.ids().tolist()) == sorted([*new_ids, 9])
        sync.pull(catalog, store)
        assert sorted(catalog.chunk_ids()) == sorted(new_ids)
        store.delete_document("/d/a.pdf")
        assert sync.pull(catalog, store).dropped == ["/d/a.pdf"] and catalog.totals()[0] == 0
    finally:
        catalog.close()
        store.close()


@pytest.mark.slow
def test_filters_become_milvus_expressions(tmp_path: Path) -> None:
    from kb.index.catalog import Catalog
    from kb.index.milvus import MilvusStore

    store = MilvusStore(str(tmp_path / "team.db"), "kb", 4)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        a = _publish(store, "/d/reports/2023 Q3.pdf", "a" * 64, 3, "alpha")
        b = _publish(store, "/d/notes/q3_plan.pdf", "b" * 64, 2, "beta")
        from kb.index.team import pull

        pull(catalog, store)
        expr = store.expression(Filters(path="reports/*", file_type="PDF", pages=(2, 3), section="part 1"), catalog)
        assert expr == ('path in ["/d/reports/2023 Q3.pdf"] and file_type == "pdf" and '
                        '(page_start <= 3 and (page_end >= 2 or (page_end is null and page_start >= 2))) and '
                        'section_lc like "%part 1%"')
        vector = np.ones(4, dtype=np.float32)
        assert [i for i, _ in store.search_filtered(vector, 10, Filters(path="reports/*", pages=(2, 3)), catalog)] \
            and {i for i, _ in store.search_filtered(vector, 10, Filters(path="reports/*", pages=(2, 3)), catalog)} == set(a[1:])
        # A section holding a LIKE wildcard is matched through the catalog's chunk ids...
        assert store.expression(Filters(section="q3_"), catalog) is None  # no such section: nothing passes
        # ...with the catalog's own LIKE semantics, as FAISS filtering has them.
        assert store.expression(Filters(section="part_1"), catalog) == f"id in {catalog.filtered_ids(Filters(section='part_1'))}"
        assert store.expression(Filters(path="*nothing*"), catalog) is None
        assert store.search_filtered(vector, 10, Filters(path="*nothing*"), catalog) == []
        assert {i for i, _ in store.keyword_search("beta", 10, None, catalog)} == set(b)
        assert {i for i, _ in store.keyword_search("part", 10, Filters(path="*plan*"), catalog)} == set(b)
        fused = store.hybrid_search(vector, "alpha", 3, None, catalog)
        assert len(fused) == 3 and fused[0][0] in a
    finally:
        catalog.close()
        store.close()


def test_configuration_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.index.milvus import MilvusStore

    with pytest.raises(ConfigError, match="must end in .db"):
        MilvusStore(str(tmp_path / "team"), "kb")
    with pytest.raises(ConfigError, match="collection"):
        MilvusStore(str(tmp_path / "team.db"), "bad-name")
    with pytest.raises(StoreError, match="cannot open Milvus at http://127.0.0.1:"):
        MilvusStore(f"http://127.0.0.1:{free_port()}", "kb", timeout=3)
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(DependencyError, match=re.escape("pip install -e '.[milvus]' (in the kb checkout)")):
        MilvusStore(str(tmp_path / "team.db"), "kb")


def test_a_local_faiss_kb_folder_is_not_taken_over(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    with KnowledgeBase.open(kb_dir) as kb:
        kb.catalog.set_meta(store="faiss")
        kb.catalog.replace_document(path="/x.md", source="/x.md", file_type="markdown", sha256="0", size=1,
                                    mtime_ns=1, title="", pages=None, metadata={}, chunks=_chunks(1, "x"))
    with pytest.raises(ConfigError, match="holds a local faiss knowledge base"), \
            KnowledgeBase.open(kb_dir, store="milvus", store_uri=str(tmp_path / "team.db")) as kb:
        kb.status()


@pytest.mark.slow
def test_a_members_searches_pull_what_others_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived `KnowledgeBase` (kb serve, the LangChain retriever) pulls a team store's changes
    when its mirror is older than the index's refresh interval."""
    from kb.index.team import TeamIndex
    from tests.helpers import FAKE

    opts = {"store": "milvus", "store_uri": str(tmp_path / "team.db"), "workers": 1, **FAKE}
    write_markdown(tmp_path / "a" / "kennel.md", "# Kennel\n\nThe kennel feeds the greyhounds at nine.\n")
    with KnowledgeBase.open(tmp_path / "alice", **opts) as alice, KnowledgeBase.open(tmp_path / "bob", **opts) as bob:
        alice.ingest([str(tmp_path / "a")])
        assert [Path(h.source).name for h in bob.search("greyhounds", k=1)] == ["kennel.md"]
        write_markdown(tmp_path / "a" / "boats.md", "# Boats\n\nThe ferry leaves at seven from pier four.\n")
        alice.ingest([str(tmp_path / "a")])
        assert "boats.md" not in {Path(h.source).name for h in bob.search("ferry pier", k=2)}  # pulled < 10 s ago
        monkeypatch.setattr(TeamIndex, "refresh_every_s", 0.0)
        assert [Path(h.source).name for h in bob.search("ferry pier", k=1)] == ["boats.md"]


@pytest.mark.slow
def test_reindex_on_a_team_store_is_refused_before_the_model_loads(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.embed import EMBEDDERS
    from kb.errors import KBError
    from tests.helpers import FAKE

    opts = {"store": "milvus", "store_uri": str(tmp_path / "team.db"), "workers": 1, **FAKE}
    write_markdown(tmp_path / "a" / "kennel.md", "# Kennel\n\nThe kennel feeds the greyhounds at nine.\n")
    with KnowledgeBase.open(tmp_path / "alice", **opts) as alice:
        alice.ingest([str(tmp_path / "a")])
        monkeypatch.setitem(EMBEDDERS._entries, "fake", lambda *a, **k: pytest.fail("a model was loaded"))
        with pytest.raises(KBError, match="does not work on a Milvus store"):
            alice.reindex("another-model")
