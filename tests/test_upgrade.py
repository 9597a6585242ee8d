"""Knowledge bases built by an older kb keep working: the catalog records which reader read each file,
`kb status` and `kb doctor` say what a newer reader or embedding format does better, `kb ingest
--reparse` re-reads those files and `kb reindex` re-embeds (tests/fixtures/kb-0.1.0: one built by kb
0.1.0, before readers had versions)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kb import KnowledgeBase
from kb.cli import main
from kb.index.catalog import MIGRATIONS, Catalog
from kb.ingest.base import PARSERS, read_better, reader_version
from tests.helpers import FAKE, write_markdown

FIXTURE = Path(__file__).parent / "fixtures" / "kb-0.1.0"
BUILT_IN = "/tmp/kb-fixture/docs"  # where the fixture's files were when it was built (its README)

pytestmark = pytest.mark.usefixtures("one_parser_worker")  # parsed in this process: a patched version counts


def kb(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def kb_json(*args: str) -> dict:
    result = kb(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def newer(monkeypatch: pytest.MonkeyPatch, name: str) -> int:
    """Make the parser `name` one version newer than it is (as an upgrade of kb would); its new version."""
    cls = PARSERS.get(name)
    monkeypatch.setattr(cls, "version", reader_version(cls) + 1, raising=False)
    return reader_version(cls)


@pytest.fixture
def old_kb(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the fixture, its documents' paths moved to the copy of its files (as if it had been built there)."""
    docs, folder = tmp_path / "docs", tmp_path / "kb"
    shutil.copytree(FIXTURE / "docs", docs)
    shutil.copytree(FIXTURE / "kb", folder)
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3  # from before readers were recorded
        db.execute("UPDATE documents SET path = replace(path, ?, ?), source = replace(source, ?, ?)",
                   (BUILT_IN, str(docs), BUILT_IN, str(docs)))
    db.close()
    return folder, docs


@pytest.mark.slow
def test_a_knowledge_base_from_kb_0_1_0_is_brought_up_to_date(old_kb: tuple[Path, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder, docs = old_kb
    # Opened by today's kb: migrated, searchable with its old vectors, and nothing stale unless a reader is
    # newer than version 1 (the one that read every file of a catalog from before versions).
    before = kb_json("status", "--kb", str(folder))
    assert before["documents"] == 2 and before["vectors"] == "onnx-int8+w8"
    today = {t: n for t, n in {"markdown": 1, "text": 1}.items() if reader_version(PARSERS.get(t)) > 1}
    assert before["stale"] == {"documents": len(today), "types": today, "vectors": None}
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert set(db.execute("SELECT reader, reader_version FROM documents")) == {(None, 1)}
    db.close()
    hit = kb_json("search", "failover region for the payment gateway", "--kb", str(folder))["hits"][0]
    assert hit["source"] == str(docs / "runbook.md")

    # An upgrade reads Markdown better: status and doctor say so, and how to re-read.
    version = newer(monkeypatch, "markdown")
    stale = kb_json("status", "--kb", str(folder))["stale"]
    assert stale["documents"] == len(today | {"markdown": 1}) and stale["types"]["markdown"] == 1
    shown = kb("status", "--kb", str(folder))
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("Stale: "))
    assert "1 markdown" in line and line.endswith("a newer reader reads better: `kb ingest --reparse` re-reads them")
    doctor = kb("doctor", "--kb", str(folder))
    assert doctor.exit_code == 0 and "kb ingest --reparse" in doctor.stdout and doctor.stdout.endswith("ok\n")
    assert kb_json("doctor", "--kb", str(folder))["stale"]["types"]["markdown"] == 1

    # A plain ingest leaves unchanged files alone; --reparse re-reads the stale ones (no paths: all of them).
    plain = kb_json("ingest", str(docs), "--kb", str(folder))
    assert plain["reparsed"] == [] and len(plain["unchanged"]) == 2
    again = kb_json("ingest", "--reparse", "--kb", str(folder))
    assert str(docs / "runbook.md") in again["reparsed"] and again["failed"] == []
    after = kb_json("status", "--kb", str(folder))
    assert after["stale"] == {"documents": 0, "types": {}, "vectors": None} and after["documents"] == 2
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        assert ("markdown", version) in set(db.execute("SELECT reader, reader_version FROM documents"))
    db.close()
    assert kb_json("search", "failover region for the payment gateway", "--kb", str(folder))["hits"][0]["source"] \
        == str(docs / "runbook.md")
    nothing = kb("ingest", "--reparse", "--kb", str(folder))
    assert nothing.exit_code == 0 and "nothing is stale" in nothing.stderr

    # Vectors of an older graph (as kb 0.1.0 before graph 2 made them): status says so; kb reindex re-embeds.
    with sqlite3.connect(folder / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'graph'")
    db.close()
    vectors = kb_json("status", "--kb", str(folder))["stale"]["vectors"]
    assert vectors == "made by graph 1 of onnx-int8+w8, and new ones here by graph 2"
    assert "`kb reindex` re-embeds them" in kb("doctor", "--kb", str(folder)).stdout
    assert kb("reindex", "--kb", str(folder)).exit_code == 0
    assert kb_json("status", "--kb", str(folder))["stale"]["vectors"] is None
    assert kb_json("search", "how long are backups kept", "--kb", str(folder))["hits"][0]["source"] \
        == str(docs / "runbook.md")


def test_the_fixture_is_small_and_as_kb_0_1_0_wrote_it() -> None:
    files = [p for p in FIXTURE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 200_000
    with sqlite3.connect(f"file:{FIXTURE / 'kb' / 'catalog.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert dict(db.execute("SELECT key, value FROM meta"))["kb_version"] == "0.1.0"
    db.close()


def test_an_old_catalog_migrates_and_records_readers_from_then_on(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "kb" / "catalog.sqlite", tmp_path / "catalog.sqlite")
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        rows = catalog.documents()
        assert {(Path(d.path).name, d.reader, d.reader_version) for d in rows} == {
            ("runbook.md", None, 1), ("notes.txt", None, 1)}
        # Read-only (a shared folder nobody here may write) before migration: the same, from the old schema.
        shutil.copy(FIXTURE / "kb" / "catalog.sqlite", tmp_path / "old.sqlite")
        old = Catalog(tmp_path / "old.sqlite", readonly=True)
        assert [(d.reader, d.reader_version) for d in old.documents()] == [(None, 1), (None, 1)]
        assert sum(old.readers().values()) == 2
        old.close()
    finally:
        catalog.close()


def test_what_counts_as_read_better(monkeypatch: pytest.MonkeyPatch) -> None:
    markdown = reader_version(PARSERS.get("markdown"))
    assert not read_better("markdown", markdown, "/d/a.md")
    assert read_better("markdown", markdown, "/d/a.md") is False
    assert read_better("text", 1, "/d/a.md")  # another reader reads .md now
    assert not read_better("markdown", 1, "/d/a.unknown-extension")  # nothing reads it now
    newer(monkeypatch, "markdown")
    assert read_better("markdown", markdown, "/d/a.md") and read_better(None, 1, "/d/mail.eml/a.md")
    assert not read_better("markdown", markdown + 1, "/d/a.md")


def test_reparse_with_paths_rereads_only_what_a_newer_reader_reads_better(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    (docs / "notes.txt").write_text("The heron release moves search to the new cluster in April.\n")
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as k:
        k.ingest([str(docs)])
        assert not k.status().stale
        newer(monkeypatch, "markdown")
        status = k.status()
        assert status.stale.documents == 1 and status.stale.types == {"markdown": 1}
        report = k.ingest([str(docs)], reparse=True)
        assert report.reparsed == [str(docs / "runbook.md")] and report.unchanged == [str(docs / "notes.txt")]
        assert report.added == report.updated == []
        assert not k.status().stale
        assert k.search("payment gateway error 5031", k=1)[0].source == str(docs / "runbook.md")
        # A stale file gone from disk is named, not an error; `kb remove` forgets it.
        newer(monkeypatch, "markdown")
        (docs / "runbook.md").unlink()
        gone = k.ingest([], reparse=True)
        assert [(s.source, "no longer there" in s.reason) for s in gone.skipped] == [(str(docs / "runbook.md"), True)]
        assert gone.failed == [] and k.status().stale.documents == 1


def test_ingest_needs_paths_unless_reparsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["ingest", "--kb", str(tmp_path / "kb")])
    assert result.exit_code == 2 and "PATHS" in result.stderr and "--reparse" in result.stderr
    # A mistyped --kb is named, as by the other commands that read a knowledge base, and none is made.
    missing = kb("ingest", "--reparse", "--kb", str(tmp_path / "kb"))
    assert missing.exit_code == 1 and missing.stderr.startswith(f"kb: error: no knowledge base at {tmp_path / 'kb'} ")
    as_json = kb("ingest", "--reparse", "--kb", str(tmp_path / "kb"), "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout) == {
        "error": f"no knowledge base at {tmp_path / 'kb'} (no such folder; `kb ingest FOLDER` makes one)",
        "exit_status": 1}
    assert not (tmp_path / "kb").exists()  # asking creates no knowledge base
    monkeypatch.setenv("KB_BACKEND", FAKE["backend"])
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    write_markdown(tmp_path / "docs" / "note.md", "# Note\n\nThe kennel opens at nine.\n")
    assert kb("ingest", str(tmp_path / "docs"), "--kb", str(tmp_path / "kb")).exit_code == 0
    fresh = kb("ingest", "--reparse", "--kb", str(tmp_path / "kb"))
    assert fresh.exit_code == 0 and "nothing is stale" in fresh.stderr


@pytest.mark.slow
def test_the_reader_recorded_is_the_parser_that_read_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file read by its name ('CMakeLists.txt': code) records that parser, not its extension's (text),
    so it is not stale the day after, and it is when that parser gets newer."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "CMakeLists.txt").write_text("project(kiwi)\nadd_executable(kiwi main.c)\n")
    (tmp_path / "src" / "notes.txt").write_text("The kiwi build notes.\n")
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as k:
        k.ingest([str(tmp_path / "src")])
        readers = {Path(d.path).name: (d.file_type, d.reader) for d in k.catalog.documents()}
        assert readers == {"CMakeLists.txt": ("code", "code"), "notes.txt": ("text", "text")}
        assert not k.status().stale
        newer(monkeypatch, "code")
        assert k.status().stale.types == {"code": 1}


def test_a_team_member_sees_which_reader_read_each_shared_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a team store the reader rides in the shared record: another member's mirror knows it too, and
    says what is stale the same way."""
    pytest.importorskip("milvus_lite")
    opts = {"store": "milvus", "store_uri": str(tmp_path / "team.db"), "workers": 1, **FAKE}
    write_markdown(tmp_path / "a" / "kennel.md", "# Kennel\n\nThe kennel feeds the greyhounds at nine.\n")
    with KnowledgeBase.open(tmp_path / "alice", **opts) as alice:
        alice.ingest([str(tmp_path / "a")])
    with KnowledgeBase.open(tmp_path / "bob", **opts) as bob:
        assert [Path(h.source).name for h in bob.search("greyhounds", k=1)] == ["kennel.md"]
        (doc,) = bob.catalog.documents()
        assert (doc.reader, doc.reader_version) == ("markdown", reader_version(PARSERS.get("markdown")))
        assert bob.documents()[0].title == "Kennel" and not bob.status().stale
        newer(monkeypatch, "markdown")
        assert bob.status().stale.types == {"markdown": 1}
