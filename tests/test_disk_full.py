"""A full disk during an ingest (the catalog, the vectors or the model cache cannot be written): one line
naming the folder and the space free and needed, exit status 1, and the knowledge base as it was before
the document that did not fit. On a real filesystem that fills (a small tmpfs, where this machine lets
the tests mount one), and at failpoints that raise ENOSPC where each write happens."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import kb.index.catalog as catalog_module
import kb.index.faiss as faiss_module
import kb.ingest.pipeline as pipeline_module
from kb.cli import main
from tests.helpers import FAKE_MODEL, write_markdown

pytestmark = pytest.mark.usefixtures("one_parser_worker")

Usage = namedtuple("Usage", "total used free")  # what shutil.disk_usage returns
NOTE = "# Backups\n\nDatabase backups run nightly at 02:00 and are kept for 35 days in the vault.\n"
ONE_LINE = re.compile(r"kb: error: no space left in (?P<folder>\S+) to (?P<what>.+?): (?P<room>.+); "
                      r"free some space and run it again\n")


def kb(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE_MODEL)


def big_file(path: Path, words: int) -> Path:
    """Text of distinct words (each one costs the full-text index), `words` long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(" ".join(f"w{i}x{j}" for j in range(40)) for i in range(words // 40)))
    return path


def before_and_after(folder: Path, docs: Path) -> None:
    """The note ingested before is found, and the knowledge base holds it alone, catalog and vectors
    agreeing (no half of the document that did not fit)."""
    hits = json.loads(kb("search", "how long are backups kept", "--kb", str(folder), "--json").stdout)["hits"]
    assert hits and hits[0]["source"] == str(docs / "note.md")
    status = json.loads(kb("status", "--kb", str(folder), "--json").stdout)
    assert status["documents"] == 1 and status["types"] == {"markdown": 1}
    doctor = json.loads(kb("doctor", "--no-repair", "--kb", str(folder), "--json").stdout)
    assert doctor["ok"] and doctor["missing_vectors"] == doctor["orphan_vectors"] == 0


# --- a real filesystem that fills -------------------------------------------------------------------
@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root, or sudo without a password), else the test is skipped."""
    path.mkdir(parents=True, exist_ok=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and not shutil.which("sudo"):
        pytest.skip("cannot mount a tmpfs: not root, and no sudo")
    mount = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=30, check=False)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {' '.join(mount.stderr.split())[:200]}")
    try:
        yield path
    finally:
        subprocess.run([*sudo, "umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("check_first", [True, False], ids=["measured-before", "sqlite-full"])
def test_a_disk_that_fills_mid_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check_first: bool) -> None:
    """`measured-before`: kb sees the document will not fit and writes none of it. `sqlite-full`: that check
    off, the catalog's own write hits the full disk and its transaction rolls back."""
    docs = tmp_path / "docs"
    write_markdown(docs / "note.md", NOTE)
    with tmpfs(tmp_path / "disk", "512k") as disk:
        folder = disk / "kb"
        assert kb("ingest", str(docs), "--kb", str(folder)).exit_code == 0
        big_file(docs / "big.txt", 40_000)  # ~300 kB of text: ~1 MB in the catalog
        if not check_first:
            monkeypatch.setattr(pipeline_module.Pipeline, "_room", lambda *args: None)
        result = kb("ingest", str(docs), "--kb", str(folder))
        assert result.exit_code == 1 and result.stdout == ""
        said = ONE_LINE.fullmatch(result.stderr)
        assert said, result.stderr
        assert said["folder"] == str(folder)
        if check_first:
            assert said["what"] == f"add {docs / 'big.txt'}" and re.fullmatch(r"\d+ (kB|bytes) free, about \S+ [kM]B needed",
                                                                                 said["room"])
        else:
            assert said["what"] == "write the catalog" and re.fullmatch(r"\d+ (kB|bytes) free", said["room"])
        before_and_after(folder, docs)
        # Room again: the same command finishes the job.
        (docs / "big.txt").write_text("The zeppelin hangar opens at dawn.\n")
        again = kb("ingest", str(docs), "--kb", str(folder), "--json")
        assert again.exit_code == 0 and json.loads(again.stdout)["added"] == [str(docs / "big.txt")]


# --- failpoints: ENOSPC where each write happens ----------------------------------------------------
@pytest.fixture
def one_note(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    write_markdown(docs / "note.md", NOTE)
    folder = tmp_path / "kb"
    assert kb("ingest", str(docs), "--kb", str(folder)).exit_code == 0
    write_markdown(docs / "more.md", "# Zeppelins\n\nThe zeppelin hangar opens at dawn.\n")
    return folder, docs


def test_the_catalog_cannot_be_written(one_note: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, docs = one_note

    def full(name: str) -> None:  # SQLite's own error for a write the disk refuses, mid-transaction
        if name == "catalog.in_transaction":
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(catalog_module, "failpoint", full)
    result = kb("ingest", str(docs), "--kb", str(folder))
    assert result.exit_code == 1
    said = ONE_LINE.fullmatch(result.stderr)
    assert said and said["folder"] == str(folder) and said["what"] == "write the catalog", result.stderr
    assert re.fullmatch(r"[\d.]+ [kMG]B free", said["room"])
    monkeypatch.undo()
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE_MODEL)
    before_and_after(folder, docs)


def test_the_vectors_cannot_be_written(one_note: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The save writes a new file beside the old one: the old one stays whole, and the document committed
    meanwhile gets its vectors from the catalog at the next ingest."""
    folder, docs = one_note
    vectors = (folder / "vectors.faiss").read_bytes()

    def full(name: str) -> None:
        if name == "store.before_rename":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(faiss_module, "failpoint", full)
    result = kb("ingest", str(docs), "--kb", str(folder))
    assert result.exit_code == 1
    said = ONE_LINE.fullmatch(result.stderr)
    assert said and said["folder"] == str(folder) and said["what"] == "save the vectors (vectors.faiss)", result.stderr
    assert re.fullmatch(r"[\d.]+ [kMG]B free, about \d+ kB needed", said["room"])
    assert (folder / "vectors.faiss").read_bytes() == vectors
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(faiss_module, "failpoint", lambda name: None)
    hits = json.loads(kb("search", "how long are backups kept", "--kb", str(folder), "--json").stdout)["hits"]
    assert hits[0]["source"] == str(docs / "note.md")
    again = json.loads(kb("ingest", str(docs), "--kb", str(folder), "--json").stdout)
    assert again["unchanged"] == [str(docs / "more.md"), str(docs / "note.md")]
    doctor = json.loads(kb("doctor", "--no-repair", "--kb", str(folder), "--json").stdout)
    assert doctor["ok"] and doctor["vectors"] == doctor["chunks"]
    hits = json.loads(kb("search", "zeppelin hangar", "--kb", str(folder), "--json", "--mode", "dense").stdout)["hits"]
    assert hits[0]["source"] == str(docs / "more.md")


def test_no_room_for_the_document_is_said_before_writing_it(one_note: tuple[Path, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder, docs = one_note
    catalog = (folder / "catalog.sqlite").stat().st_size
    monkeypatch.setattr(pipeline_module.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 100_000, 100_000))
    result = kb("ingest", str(docs), "--kb", str(folder))
    assert result.exit_code == 1
    said = re.fullmatch(rf"kb: error: no space left in {re.escape(str(folder))} to add {re.escape(str(docs / 'more.md'))}"
                        r": 100 kB free, about (\d+) kB needed; free some space and run it again\n", result.stderr)
    assert said and int(said[1]) > 100, result.stderr
    monkeypatch.undo()
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE_MODEL)
    before_and_after(folder, docs)
    assert (folder / "catalog.sqlite").stat().st_size == catalog



def sources(folder: Path) -> dict[str, str]:
    """Each document's source, the folder's path left out, with its text."""
    from kb import KnowledgeBase
    from tests.helpers import FAKE

    with KnowledgeBase.open(folder, **FAKE) as base:
        return {d.source.rpartition("/docs/")[2]: base.text(d)[0] for d in base.documents()}


def write_zip(path: Path, files: dict[str, str]) -> None:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


@pytest.mark.parametrize("older", [False, True], ids=["new-archive", "older-version-indexed"])
def test_an_archive_goes_in_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, older: bool) -> None:
    """The disk fills while the third file of a zip is written: none of the zip is (an older version of it
    stays as it was, none of its files mixed with the new one's), and once there is room again the same
    command reads the whole zip."""
    docs, folder = tmp_path / "docs", tmp_path / "kb"
    write_markdown(docs / "note.md", NOTE)
    if older:
        write_zip(docs / "b.zip", {"a.txt": "Old alpha.\n", "b.txt": "Old beta.\n", "gone.txt": "Old gone.\n"})
    assert kb("ingest", str(docs), "--kb", str(folder)).exit_code == 0
    had = sources(folder)
    assert set(had) == ({"note.md", "b.zip", "b.zip > a.txt", "b.zip > b.txt", "b.zip > gone.txt"} if older
                        else {"note.md"})
    write_zip(docs / "b.zip", {"a.txt": "New alpha.\n", "b.txt": "New beta.\n", "c.txt": "New gamma.\n"})
    writes = {"n": 0}

    def full(name: str) -> None:  # the disk refuses the third file's rows (the zip's own come first)
        if name == "catalog.in_transaction":
            writes["n"] += 1
            if writes["n"] == 4:
                raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(catalog_module, "failpoint", full)
    result = kb("ingest", str(docs), "--kb", str(folder))
    assert result.exit_code == 1 and ONE_LINE.fullmatch(result.stderr), result.stderr
    assert writes["n"] == 4
    monkeypatch.setattr(catalog_module, "failpoint", lambda name: None)  # room again
    assert sources(folder) == had
    doctor = json.loads(kb("doctor", "--no-repair", "--kb", str(folder), "--json").stdout)
    assert doctor["ok"] and doctor["missing_vectors"] == doctor["orphan_vectors"] == 0
    again = kb("ingest", str(docs), "--kb", str(folder), "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["updated" if older else "added"] == [str(docs / "b.zip")]
    now = sources(folder)
    assert set(now) == {"note.md", "b.zip", "b.zip > a.txt", "b.zip > b.txt", "b.zip > c.txt"}
    assert "New gamma." in now["b.zip > c.txt"] and "New alpha." in now["b.zip > a.txt"]
    doctor = json.loads(kb("doctor", "--no-repair", "--kb", str(folder), "--json").stdout)
    assert doctor["ok"] and doctor["missing_vectors"] == doctor["orphan_vectors"] == 0

@pytest.mark.slow
def test_the_model_cache_cannot_be_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default model's graph is built into an empty cache on a full disk: one line naming the cache,
    nothing ingested, and no switch to another backend behind the user's back."""
    pytest.importorskip("onnxruntime")
    from kb.embed import onnx_export

    docs = tmp_path / "more"
    write_markdown(docs / "note.md", NOTE)
    monkeypatch.delenv("KB_BACKEND")
    monkeypatch.delenv("KB_MODEL")
    monkeypatch.setenv("KB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1_000_000, 1_000_000))
    folder = tmp_path / "real-kb"
    result = kb("ingest", str(docs), "--kb", str(folder))
    assert result.exit_code == 1
    cache = tmp_path / "cache" / "onnx"
    assert re.fullmatch(
        rf"kb: error: no space left in {re.escape(str(cache))} to build the ONNX graph of "
        r"sentence-transformers/all-MiniLM-L6-v2: 1 MB free, about 1\d\d(\.\d)? MB needed; free some space, or "
        r"set KB_CACHE_DIR to a folder with room\n", result.stderr), result.stderr
    assert not [p for p in cache.iterdir() if p.is_dir()]
    status = json.loads(kb("status", "--kb", str(folder), "--json").stdout)
    assert status["documents"] == 0 and status["chunks"] == 0
