"""Source code, config and logs are read by lines and cited 'app.py L4-6'; archives are read as folders,
each file inside a document of its own cited 'bundle.zip > docs/report.pdf p.2', within bounds that refuse
a zip bomb with a reason; a member named '../x' is never written anywhere."""

from __future__ import annotations

import errno
import io
import json
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.api import KnowledgeBase
from kb.filters import Filters
from tests.helpers import FAKE, ScriptedLLM, write_docx, write_pdf

PY = '''import os


def load_settings(path):
    """Read the settings file."""
    with open(path) as f:
        return f.read()


class Wombat:
    def burrow(self, depth):
        return "tunnel of depth %d" % depth
'''
LOG = "\n".join([f"2024-03-01 10:00:{i:02d} INFO request {i} served" for i in range(1, 40)]
                + ["2024-03-01 10:00:40 ERROR quokka pool exhausted after 30 retries"]
                + [f"2024-03-01 10:00:{i:02d} INFO request {i} served" for i in range(41, 60)]) + "\n"
TOML = '[server]\nport = 8080\nhost = "0.0.0.0"\n\n[database]\nurl = "postgres://db/platypus"\npool = 12\n'
INI = "; settings\n[mail]\nrelay = smtp.example.org\n\n[backup]\nschedule = nightly at 02:00 to the capybara vault\n"
COVER = "\n".join(f"Line {i} of the cover page, which says what the report covers and for whom." for i in range(12))


def source(kb: KnowledgeBase) -> list[str]:
    return sorted(d.source.split("/docs/", 1)[-1] for d in kb.documents())


def test_code_config_and_logs_are_found_and_cited_by_line_range(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "settings.py").write_text(PY)
    (docs / "server.log").write_text(LOG)
    (docs / "app.toml").write_text(TOML)
    (docs / "mail.ini").write_text(INI)
    (docs / "Makefile").write_text("build:\n\tcc -o narwhal main.c\n")
    (docs / "deploy").write_text("#!/bin/sh\necho deploying the okapi service\n")
    (docs / "notes").write_text("no extension and no shebang: not read\n")
    (docs / "image.py").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # binary under a code name
    report = kb.ingest([str(docs)])
    assert report.types == {"code": 3, "log": 1, "config": 2}
    assert [(Path(f.source).name, f.reason) for f in report.failed] == [("image.py", "binary content, not text")]
    assert [Path(s.source).name for s in report.skipped] == ["notes"]

    hit = kb.search("burrow tunnel depth", k=1, mode="keyword")[0]  # a small file: one chunk of all its lines
    assert (hit.file_type, hit.unit, hit.page, hit.page_end) == ("code", "line", 1, 12)
    assert hit.citation.endswith("settings.py L1-12")
    assert "class Wombat:\n    def burrow(self, depth):\n        return" in hit.text  # indentation kept
    hit = kb.search("quokka pool exhausted", k=1, mode="keyword")[0]
    assert hit.source.endswith("server.log") and hit.page <= 40 <= hit.page_end
    assert "ERROR quokka pool exhausted" in hit.text
    assert hit.text.count("\n") == hit.page_end - hit.page  # a chunk is whole lines, numbered as in the file
    hit = kb.search("platypus", k=1, mode="keyword")[0]
    assert hit.citation.endswith("app.toml L5-7 § database")
    hit = kb.search("capybara vault", k=1, mode="keyword")[0]
    assert hit.citation.endswith("mail.ini L5-6 § backup")
    assert kb.search("narwhal", k=1, mode="keyword")[0].citation.endswith("Makefile L1-2")
    assert kb.search("okapi", k=1, mode="keyword")[0].citation.endswith("deploy L1-2")
    info = {Path(d.source).name: d for d in kb.documents()}
    assert (info["settings.py"].pages, info["settings.py"].unit) == (12, "line")
    # An answer cites the lines too.
    answer = kb.ask("What is the backup schedule to the capybara vault?",
                    llm=ScriptedLLM("The backup runs nightly at 02:00 to the capybara vault [1]."))
    assert any(c.citation.endswith("mail.ini L5-6 § backup") for c in answer.citations)


def test_a_long_log_is_chunked_at_line_ends_and_cited_by_its_lines(kb: KnowledgeBase, tmp_path: Path) -> None:
    lines = [f"2024-03-01 10:{i // 60:02d}:{i % 60:02d} INFO worker {i} finished job number {i * 7}" for i in range(1, 2001)]
    lines[1499] = "2024-03-01 10:25:00 ERROR the ocelot cache is corrupt"
    (tmp_path / "big.log").write_text("\n".join(lines) + "\n")
    (tmp_path / "min.js").write_text("var a=1;" * 5000 + "\nvar ocelotMinified = 2;\n")  # one 40,000-char line
    kb.ingest([str(tmp_path / "big.log"), str(tmp_path / "min.js")])
    hit = kb.search("ocelot cache corrupt", k=1, mode="keyword", filters=Filters(file_type="log"))[0]
    assert hit.page <= 1500 <= hit.page_end and hit.page_end - hit.page < 100
    text = Path(tmp_path / "big.log").read_text().split("\n")
    assert hit.text == "\n".join(text[hit.page - 1 : hit.page_end])  # exactly the lines named
    js = next(d for d in kb.documents() if d.source.endswith("min.js"))
    assert js.chunks <= 8  # the minified line is cut: a few chunks, not a hundred
    assert kb.search("ocelotMinified", k=1, mode="keyword")[0].page_end == 2


def test_extensions_added_in_config_are_read_as_code(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "Page.astro").write_text("---\nconst title = 'The tapir gallery';\n---\n<h1>{title}</h1>\n")
    (docs / "menu.njk").write_text("<nav>axolotl menu</nav>\n")
    (docs / "x.unknown").write_text("not read\n")
    # Without the setting, neither extension is read (kb does not know them)...
    with KnowledgeBase.open(tmp_path / "plain", workers=1, **FAKE) as kb:
        report = kb.ingest([str(docs)])
        assert sorted(Path(s.source).name for s in report.skipped) == ["Page.astro", "menu.njk", "x.unknown"]
    # ...with it, both are read as code.
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "kb.toml").write_text('code_extensions = [".astro", "njk"]\n')
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(docs)])
        assert report.types == {"code": 2} and [Path(s.source).name for s in report.skipped] == ["x.unknown"]
        assert kb.search("tapir gallery", k=1, mode="keyword")[0].citation.endswith("Page.astro L1-4")


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_an_archive_is_read_as_a_folder_of_documents(kb: KnowledgeBase, tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "src" / "report.pdf", [COVER, "The quarterly narwhal census counted 41."])
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("deep/notes.md", "# Notes\n\nThe okapi forecast was revised twice.\n")
    docs = tmp_path / "docs"
    _zip(docs / "bundle.zip", {
        "docs/report.pdf": pdf.read_bytes(),
        "readme.md": b"# Readme\n\nWombat burrows are mapped here.\n",
        "nested.zip": inner.getvalue(),
        "tools/run.py": PY.encode(),
        "blob.bin": b"\x00\x01" * 50,  # a type kb does not read: listed, not read, no warning
        "__MACOSX/._readme.md": b"junk",  # hidden: left out like a folder's
    })
    with tarfile.open(docs / "logs.tar.gz", "w:gz") as tar:
        data = LOG.encode()
        info = tarfile.TarInfo("var/server.log")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    report = kb.ingest([str(docs)])
    assert sorted(Path(s).name for s in report.added) == ["bundle.zip", "logs.tar.gz"] and not report.failed
    assert source(kb) == ["bundle.zip", "bundle.zip > docs/report.pdf", "bundle.zip > nested.zip",
                          "bundle.zip > nested.zip > deep/notes.md", "bundle.zip > readme.md",
                          "bundle.zip > tools/run.py", "logs.tar.gz", "logs.tar.gz > var/server.log"]

    hit = kb.search("narwhal census", k=1, mode="keyword")[0]
    assert hit.citation.endswith("bundle.zip > docs/report.pdf p.2") and hit.file_type == "pdf"
    hit = kb.search("okapi forecast", k=1, mode="keyword")[0]
    assert hit.citation.endswith("bundle.zip > nested.zip > deep/notes.md § Notes")
    hit = kb.search("burrow tunnel depth", k=1, mode="keyword")[0]
    assert hit.citation.endswith("bundle.zip > tools/run.py L1-12")
    hit = kb.search("quokka pool exhausted", k=1, mode="keyword")[0]
    assert hit.source.endswith("logs.tar.gz > var/server.log") and hit.unit == "line"
    # The archive's own document lists its files, so a file's name finds it.
    hit = kb.search("blob.bin", k=1, mode="keyword")[0]
    assert hit.source.endswith("bundle.zip") and hit.file_type == "archive"
    # Filters: by the inner file's type, and by path (the archive's, or a path inside it).
    assert [h.source.split("/docs/")[-1] for h in kb.search("narwhal", k=5, mode="keyword",
                                                            filters=Filters(file_type="pdf"))] == [
        "bundle.zip > docs/report.pdf"]
    assert {d.source.split("/docs/")[-1] for d in kb.documents(Filters(path="*bundle.zip/docs/*"))} == {
        "bundle.zip > docs/report.pdf"}
    assert not kb.search("narwhal", k=5, mode="keyword", filters=Filters(path="*logs.tar.gz*"))

    # A changed archive: a member gone is forgotten, a new one read; unchanged, nothing is re-read.
    assert kb.ingest([str(docs)]).unchanged and not kb.ingest([str(docs)]).updated
    _zip(docs / "bundle.zip", {"readme.md": b"# Readme\n\nWombat burrows are mapped here.\n",
                               "new.txt": b"Pangolin sightings rose.\n"})
    again = kb.ingest([str(docs)])
    assert [Path(s).name for s in again.updated] == ["bundle.zip"]
    assert source(kb) == ["bundle.zip", "bundle.zip > new.txt", "bundle.zip > readme.md", "logs.tar.gz",
                          "logs.tar.gz > var/server.log"]
    assert not kb.search("narwhal census", k=3, mode="keyword")
    assert kb.search("pangolin", k=1, mode="keyword")[0].source.endswith("bundle.zip > new.txt")
    # Renamed, its files follow it (read again under the new name); removed, it takes them along.
    (docs / "bundle.zip").rename(docs / "renamed.zip")
    kb.ingest([str(docs)])
    assert source(kb) == ["logs.tar.gz", "logs.tar.gz > var/server.log", "renamed.zip", "renamed.zip > new.txt",
                          "renamed.zip > readme.md"]
    assert kb.search("pangolin", k=1, mode="keyword")[0].citation.endswith("renamed.zip > new.txt")
    (docs / "renamed.zip").unlink()
    kb.ingest([str(docs)])
    assert source(kb) == ["logs.tar.gz", "logs.tar.gz > var/server.log"]


def test_a_tar_whose_last_file_is_a_docx_is_read_as_a_tar(kb: KnowledgeBase, tmp_path: Path) -> None:
    # A .docx is a zip, whose end marker is then in the tar's last bytes: the tar's extension decides.
    import docx

    first = write_docx(tmp_path / "src" / "handbook.docx").read_bytes()
    final = docx.Document()
    final.add_paragraph("The final report on the heron survey.")
    final.save(tmp_path / "src" / "final.docx")
    docs = tmp_path / "docs"
    docs.mkdir()
    with tarfile.open(docs / "reports.tar", "w") as tar:
        for name, data in (("reports/first.docx", first), ("reports/notes.txt", b"The heron survey notes.\n"),
                           ("reports/zz-final.docx", (tmp_path / "src" / "final.docx").read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    report = kb.ingest([str(docs)])
    assert not report.failed
    assert {d.source.split("/docs/")[-1]: d.file_type for d in kb.documents()} == {
        "reports.tar": "archive", "reports.tar > reports/first.docx": "docx",
        "reports.tar > reports/notes.txt": "text", "reports.tar > reports/zz-final.docx": "docx"}


def test_zip_bombs_traversal_names_and_encrypted_members_are_refused_with_a_reason(
        kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.ingest.formats import archive

    docs = tmp_path / "docs"
    _zip(docs / "bomb.zip", {"zeros.txt": b"\0" * (8 << 20)})  # 8 MB of zeros in about 8 KB
    gz = docs / "zeros.txt.gz"
    import gzip

    gz.write_bytes(gzip.compress(b"\0" * (8 << 20)))
    (docs / "plain.txt.gz").write_bytes(gzip.compress(b"The marmot report, compressed.\n"))
    crypt = _zip(docs / "locked.zip", {"secret.txt": b"hidden"})
    raw = bytearray(crypt.read_bytes())  # mark the member encrypted (bit 0 of the flags), as a password tool does
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.index(sig)
        raw[i + at] |= 1
    crypt.write_bytes(bytes(raw))
    report = kb.ingest([str(docs)])
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert failed == {
        "bomb.zip": "refused, zeros.txt would expand more than 200 times its compressed size (a zip bomb)",
        "zeros.txt.gz": "refused, zeros.txt would expand more than 200 times its compressed size (a zip bomb)",
        "locked.zip": "encrypted archive: its files need a password",
    }
    # The bounds on count and size, set low here (three files: parsed in this process, which sees the patches).
    monkeypatch.setattr(archive, "MAX_MEMBERS", 20)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 5000)
    small = tmp_path / "small"
    _zip(small / "many.zip", {f"f{i}.txt": b"x" for i in range(30)})
    _zip(small / "big.zip", {"a.txt": b"a" * 3000, "b.txt": b"b" * 3000}, zipfile.ZIP_STORED)
    # A name climbing out of the folder a part is written to (temp/kb-part-x/0/), past the temporary folder.
    _zip(small / "evil.zip", {"../../../evil.txt": b"Escaped to the parent folder.", "ok.txt": b"Lemurs are fine.\n"})
    parts = tmp_path / "tmp" / "parts"
    parts.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(parts))
    written: list[Path] = []
    write = Path.write_bytes

    def recorded(self: Path, data: bytes) -> int:
        written.append(self.resolve())
        return write(self, data)

    monkeypatch.setattr(Path, "write_bytes", recorded)
    report = kb.ingest([str(small)])
    assert {Path(f.source).name: f.reason for f in report.failed} == {
        "many.zip": "refused, holds more than 20 files (unpack it to read it)",
        "big.zip": "refused, would expand to more than 5 kB (a zip bomb, or too large to read in memory: "
                   "unpack it to read it)"}
    # The traversal name is listed and named as left out, never written; ok.txt is, in a part's own folder.
    assert [(w.parent.parent.parent == parts, w.name) for w in written if w.suffix == ".txt"] == [(True, "ok.txt")]
    assert kb.search("lemurs", k=1, mode="keyword")[0].source.endswith("evil.zip > ok.txt")
    assert not kb.search("escaped parent folder", k=3, mode="keyword", filters=Filters(path="*evil.zip/*"))
    row = kb.catalog.db.execute("SELECT metadata FROM documents WHERE path LIKE '%evil.zip'").fetchone()
    assert json.loads(row[0])["parts_skipped"] == {"../../../evil.txt": "unsafe name: leads outside the archive"}
    assert kb.search("marmot report", k=1, mode="keyword")[0].source.endswith("plain.txt.gz > plain.txt")


def test_the_bounds_hold_for_a_file_and_the_archives_inside_it_together(
        kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.ingest.formats import archive

    def zipped(members: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        return out.getvalue()

    # Four archives of four archives of 1,500 bytes of text: each archive alone is within a bound of
    # 10,000 bytes, the whole is not (24,000 bytes of text, and the inner archives).
    def text(i: int, j: int) -> bytes:
        return f"Section {i}.{j} of the falcon survey. ".encode() * 40

    middle = [zipped({f"in{j}.zip": zipped({"t.txt": text(i, j)}) for j in range(4)}) for i in range(4)]
    docs = tmp_path / "docs"
    _zip(docs / "outer.zip", {f"mid{i}.zip": middle[i] for i in range(4)})
    assert all(len(text(0, 0)) * 4 + len(m) < 10_000 for m in middle)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 10_000)
    report = kb.ingest([str(docs)])
    assert [(Path(f.source).name, f.reason) for f in report.failed] == [
        ("outer.zip", "refused, outer.zip with the archives inside it would expand to more than 10 kB (a zip bomb, "
                      "or too large to read in memory: unpack it to read it)")]
    assert not kb.documents()
    # The same files copied over and over are read once: the copies are named as left out.
    copies = tmp_path / "copies" / "docs"
    _zip(copies / "copies.zip", {f"mid{i}.zip": middle[0] for i in range(4)})
    report = kb.ingest([str(copies)])
    assert not report.failed
    assert source(kb) == sorted(["copies.zip", "copies.zip > mid0.zip",
                                 *[f"copies.zip > mid0.zip > in{j}.zip" for j in range(4)],
                                 *[f"copies.zip > mid0.zip > in{j}.zip > t.txt" for j in range(4)]])
    row = kb.catalog.db.execute("SELECT metadata FROM documents WHERE path LIKE '%copies.zip'").fetchone()
    assert json.loads(row[0])["parts_skipped"] == {f"mid{i}.zip": "the same as mid0.zip" for i in (1, 2, 3)}


def test_a_member_that_cannot_be_written_as_named_costs_itself_only(
        kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long = "d/" + "x" * 300 + ".md"  # longer than a file name may be on disk
    docs = tmp_path / "docs"
    _zip(docs / "long.zip", {"ok.txt": b"The aardvark memo is fine.\n", long: b"# Long\n\nThe gecko lives here.\n"})
    report = kb.ingest([str(docs)])
    assert not report.failed
    hit = kb.search("gecko", k=1, mode="keyword")[0]  # read under a short name, cited under its own
    assert hit.source.endswith(f"long.zip > {long}") and hit.file_type == "markdown"
    assert kb.search("aardvark memo", k=1, mode="keyword")[0].source.endswith("long.zip > ok.txt")

    # A part that cannot be written is left out and named; a full disk fails the archive, to be read again.
    write = Path.write_bytes
    error = {"errno": errno.EIO}

    def failing(self: Path, data: bytes) -> int:
        if self.name == "b.txt" and self.parent.parent.name.startswith("kb-part-"):
            raise OSError(error["errno"], os.strerror(error["errno"]))
        return write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    _zip(tmp_path / "more" / "two.zip", {"a.txt": b"The okapi is fine.\n", "b.txt": b"The heron is lost.\n"})
    kb.ingest([str(tmp_path / "more")])
    row = kb.catalog.db.execute("SELECT metadata FROM documents WHERE path LIKE '%two.zip'").fetchone()
    assert json.loads(row[0])["parts_skipped"] == {"b.txt": "cannot write it to a temporary file: Input/output error"}
    error["errno"] = errno.ENOSPC
    _zip(tmp_path / "full" / "three.zip", {"a.txt": b"The ibis is fine.\n", "b.txt": b"The ibis is lost.\n"})
    report = kb.ingest([str(tmp_path / "full")])
    [(source, reason)] = [(Path(f.source).name, f.reason) for f in report.failed]
    assert source == "three.zip"
    assert reason.startswith(f"no space left in {tempfile.gettempdir()} to unpack b.txt from three.zip")
    assert not kb.search("ibis", k=1, mode="keyword")


def test_the_cli_shows_line_ranges_and_archive_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "settings.py").write_text(PY)
    _zip(docs / "bundle.zip", {"inner/notes.md": b"# Notes\n\nThe okapi forecast was revised.\n"})
    monkeypatch.setenv("KB_DIR", str(tmp_path / "kb"))
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    monkeypatch.setenv("KB_WORKERS", "1")
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["ingest", "docs"]).exit_code == 0
    result = CliRunner().invoke(main, ["search", "burrow tunnel", "--mode", "keyword", "--k", "1"])
    assert result.exit_code == 0 and "docs/settings.py L1-12" in result.output
    out = json.loads(CliRunner().invoke(main, ["search", "burrow tunnel", "--mode", "keyword", "--k", "1",
                                               "--json"]).output)
    assert {k: out["hits"][0][k] for k in ("page", "page_end", "unit")} == {"page": 1, "page_end": 12, "unit": "line"}
    result = CliRunner().invoke(main, ["search", "okapi", "--mode", "keyword", "--k", "1"])
    assert "docs/bundle.zip > inner/notes.md § Notes" in result.output
    result = CliRunner().invoke(main, ["documents", "--type", "code"])
    assert "settings.py" in result.output and "12 lines" in result.output and "bundle.zip" not in result.output


def test_a_7z_archive_is_read_like_a_zip(kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    py7zr = pytest.importorskip("py7zr", reason="py7zr (the 7z extra) is not installed")
    docs = tmp_path / "docs"
    docs.mkdir()
    with py7zr.SevenZipFile(docs / "pack.7z", "w") as z:
        z.writestr(b"# Field notes\n\nThe jerboa colony moved north.\n", "notes/field.md")
        z.writestr(PY.encode(), "src/settings.py")
    report = kb.ingest([str(docs)])
    assert report.types == {"archive": 1, "markdown": 1, "code": 1} and not report.failed
    assert kb.search("jerboa colony", k=1, mode="keyword")[0].citation.endswith("pack.7z > notes/field.md § Field notes")
    assert kb.search("burrow tunnel", k=1, mode="keyword")[0].citation.endswith("pack.7z > src/settings.py L1-12")
    # Without py7zr, the reason says what to install.
    from kb.errors import ParseError
    from kb.ingest.formats.archive import ArchiveParser

    monkeypatch.setitem(__import__("sys").modules, "py7zr", None)
    with pytest.raises(ParseError, match=r"reading \.7z needs the py7zr library: pip install -e '\.\[7z\]'"):
        ArchiveParser().parse(docs / "pack.7z")
