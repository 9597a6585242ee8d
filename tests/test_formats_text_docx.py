"""Text files in UTF-16/32 (with and without a BOM) and Word tables with merged cells that python-docx
cannot iterate are ingested whole and searchable; real binary files are still refused."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import pytest

from kb.api import KnowledgeBase

SENTENCE = "Grüße aus Zürich: the {word} ledger closes at noon — ключ.\nA second line follows.\n"
ENCODINGS = {  # file name -> bytes written the way Windows editors and tools write them
    "le_bom.txt": lambda s: b"\xff\xfe" + s.encode("utf-16-le"),
    "le_plain.txt": lambda s: s.encode("utf-16-le"),
    "be_bom.txt": lambda s: b"\xfe\xff" + s.encode("utf-16-be"),
    "be_plain.txt": lambda s: s.encode("utf-16-be"),
    "utf16.txt": lambda s: s.encode("utf-16"),
    "utf32.txt": lambda s: s.encode("utf-32"),
    "utf32_le_plain.txt": lambda s: s.encode("utf-32-le"),
    "utf32_be_plain.txt": lambda s: s.encode("utf-32-be"),
    "legacy.txt": lambda s: s.replace("ключ", "naïve café").encode("cp1252"),
}
WORDS = ["narwhal", "okapi", "axolotl", "pangolin", "quokka", "tapir", "wombat", "ibis", "dugong"]
ASCII_WORDS = ["heron", "lynx", "marmot", "ocelot", "puffin", "serval", "vole", "egret", "gecko"]
ASCII = "Plain ASCII: the {word} ledger closes at noon.\nA second line follows.\n"  # valid UTF-8 bytes with NULs


def names(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [Path(h.source).name for h in hits]


def test_wide_encodings_are_read_and_binary_files_still_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for (name, encode), word, ascii_word in zip(ENCODINGS.items(), WORDS, ASCII_WORDS):
        (docs / name).write_bytes(encode(SENTENCE.format(word=word)))
        (docs / f"ascii_{name}").write_bytes(encode(ASCII.format(word=ascii_word)))
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4 + zlib.compress(bytes(range(97)) * 40)
    (docs / "photo.txt").write_bytes(png)
    (docs / "nulls.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    report = kb.ingest([str(docs)])
    assert sorted(Path(s).name for s in report.added) == sorted([*ENCODINGS, *(f"ascii_{n}" for n in ENCODINGS)])
    assert sorted((Path(f.source).name, f.reason) for f in report.failed) == [
        ("nulls.txt", "binary content, not text"), ("photo.txt", "binary content, not text")]
    for name, word in zip(ENCODINGS, WORDS):
        hits = kb.search(word, k=1, mode="keyword")
        assert names(hits) == [name]
        assert f"the {word} ledger closes at noon" in hits[0].text
        assert ("naïve café" if name == "legacy.txt" else "Grüße aus Zürich") in hits[0].text
    for name, word in zip(ENCODINGS, ASCII_WORDS):
        hits = kb.search(word, k=1, mode="keyword")
        assert names(hits) == [f"ascii_{name}"] and f"Plain ASCII: the {word} ledger" in hits[0].text


def merged_cells_docx(path: Path) -> Path:
    """A table whose first row spans two grid columns (gridSpan) above a row whose second cell is a
    vertical-merge continuation: Word opens it, python-docx's row iteration raises ValueError."""
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    d = docx.Document()
    d.add_paragraph("Shipping rates before the table.")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Region", "", "Rate"), ("Lisbon", "harbour fee", "$12"), ("Oporto", "quay", "$9")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    table.cell(0, 0).merge(table.cell(0, 1))
    tc = table.rows[1]._tr.tc_lst[1]
    vmerge = OxmlElement("w:vMerge")
    vmerge.set(qn("w:val"), "continue")
    tc.get_or_add_tcPr().append(vmerge)
    d.add_paragraph("Rates are reviewed every September.")
    d.save(str(path))
    return path


def test_docx_table_with_merged_cells_is_ingested_whole(kb: KnowledgeBase, tmp_path: Path) -> None:
    import docx

    (tmp_path / "docs").mkdir()
    path = merged_cells_docx(tmp_path / "docs" / "rates.docx")
    with pytest.raises(ValueError, match="no `tc` element"):  # the layout python-docx chokes on
        [cell.text for row in docx.Document(str(path)).tables[0].rows for cell in row.cells]
    report = kb.ingest([str(path.parent)])
    assert names_of(report.added) == ["rates.docx"] and not report.failed
    for query, expected in [("Lisbon harbour", "Lisbon | harbour fee | $12"), ("Oporto quay", "Oporto | quay | $9"),
                            ("shipping before", "Shipping rates before the table."),
                            ("reviewed September", "Rates are reviewed every September.")]:
        hits = kb.search(query, k=1, mode="keyword")
        assert names(hits) == ["rates.docx"] and expected in hits[0].text


def test_unreadable_table_is_dropped_with_a_warning(kb: KnowledgeBase, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from kb.ingest.formats import docx as docx_parser

    def broken(tbl: object) -> str:
        raise ValueError("no `tc` element at grid_offset=1")

    monkeypatch.setattr(docx_parser, "_xml_text", broken)  # a table neither reader understands
    (tmp_path / "docs").mkdir()
    path = merged_cells_docx(tmp_path / "docs" / "rates.docx")
    with caplog.at_level(logging.WARNING):
        report = kb.ingest([str(path.parent)])
    assert names_of(report.added) == ["rates.docx"] and not report.failed
    assert f"{path}: 1 table dropped: no `tc` element at grid_offset=1" in caplog.text
    assert names(kb.search("reviewed September", k=1, mode="keyword")) == ["rates.docx"]


def names_of(sources: list[str]) -> list[str]:
    return sorted(Path(s).name for s in sources)
