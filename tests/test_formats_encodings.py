"""Text in any encoding, for every text-based format (issue 33): a BOM, a declared encoding (XML
declaration, HTML <meta charset>, MIME charset), UTF-16/32 with and without a BOM, then charset
detection, all through kb.ingest.decode (fast layer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for
from kb.ingest.decode import decode

WIDE = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]  # "utf-16"/"utf-32": with a BOM


def texts(path: Path) -> list[str]:
    return [b.text for b in parser_for(path).parse(path).blocks]


XML = '<?xml version="1.0" encoding="{decl}"?>\n<stock><item name="Grüße">Zürich harbour crane</item></stock>\n'


@pytest.mark.parametrize("decl,encoding", [
    ("UTF-16", "utf-16"), ("UTF-16", "utf-16-le"), ("UTF-16", "utf-16-be"), ("UTF-32", "utf-32"),
    ("UTF-16", "utf-8"),  # a UTF-16 declaration kept in a file re-saved as UTF-8 (.NET writers do this)
    ("UTF-8", "utf-16"),  # and the reverse: Notepad's "Unicode" on a UTF-8 file
    ("ISO-8859-1", "latin-1"), ("windows-1252", "cp1252"),
    ("x-no-such-charset", "utf-8"),  # an encoding nobody knows: read as UTF-8, not a traceback
])
def test_xml_in_any_encoding_with_its_declaration(tmp_path: Path, decl: str, encoding: str) -> None:
    path = tmp_path / "stock.xml"
    path.write_bytes(XML.format(decl=decl).encode(encoding))
    assert texts(path) == ["name: Grüße\nZürich harbour crane"]


MAIL = ("From: Ann Lee <ann@example.com>\r\nTo: bob@example.com\r\nSubject: Crane in Zürich\r\n"
        "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nThe crane arrives on Tuesday, déjà vu.\r\n")


@pytest.mark.parametrize("encoding", WIDE)
def test_an_email_saved_as_utf16_or_utf32_is_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "crane.eml"
    path.write_bytes(MAIL.encode(encoding))
    doc = parser_for(path).parse(path)
    assert doc.title == "Crane in Zürich"
    assert doc.blocks[0].text.startswith("From: Ann Lee <ann@example.com>\nTo: bob@example.com")
    assert doc.blocks[1].text == "The crane arrives on Tuesday, déjà vu."


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_a_mailbox_saved_as_utf16_lists_its_messages(tmp_path: Path, encoding: str) -> None:
    box = ("From ann@example.com Mon Jan  1 10:00:00 2024\n" + MAIL.replace("\r\n", "\n") + "\n"
           "From bob@example.com Mon Jan  1 11:00:00 2024\nFrom: bob@example.com\nSubject: Zweite\n\nZwei\n")
    path = tmp_path / "inbox.mbox"
    path.write_bytes(box.encode(encoding))
    doc = parser_for(path).parse(path)
    assert [b.text for b in doc.blocks] == ["2024-01-01T10:00:00+00:00 — Ann Lee <ann@example.com> — Crane in Zürich",
                                            "bob@example.com — Zweite"]


def test_a_mail_body_without_a_charset_is_decoded_by_detection_and_a_declared_one_honoured(tmp_path: Path) -> None:
    body = "Café crème, “quoted” words and déjà vu in a longer sentence about the harbour."
    undeclared = tmp_path / "a.eml"
    undeclared.write_bytes(b"From: a@example.com\nSubject: one\nContent-Type: text/plain\n\n" + body.encode("cp1252"))
    assert texts(undeclared)[1] == body
    declared = tmp_path / "b.eml"  # these bytes read as koi8-r are Cyrillic: the declaration wins over a guess
    declared.write_bytes(b"From: a@example.com\nSubject: two\nContent-Type: text/plain; charset=koi8-r\n\n"
                         + "Привет, мир".encode("koi8-r"))
    assert texts(declared)[1] == "Привет, мир"


def test_html_meta_charset_is_honoured_and_bom_wins_over_it(tmp_path: Path) -> None:
    page = '<html><head><meta charset="{cs}"><title>T</title></head><body><p>Привет, мир</p></body></html>'
    meta = tmp_path / "koi8.html"
    meta.write_bytes(page.format(cs="koi8-r").encode("koi8-r"))
    assert texts(meta) == ["Привет, мир"]
    http_equiv = tmp_path / "cp1251.html"
    http_equiv.write_bytes(page.replace('<meta charset="{cs}">', '<meta http-equiv="Content-Type" '
                                        'content="text/html; charset=windows-1251">').encode("cp1251"))
    assert texts(http_equiv) == ["Привет, мир"]
    bom = tmp_path / "bom.html"  # a BOM is stronger evidence than the (stale) declaration
    bom.write_bytes(page.format(cs="iso-8859-1").encode("utf-16"))
    assert texts(bom) == ["Привет, мир"]


@pytest.mark.parametrize("name,content", [
    ("prices.csv", "Product,Price\nCrème brûlée,€4.50\nGâteau “maison”,€3.20\n"),
    ("notes.md", "# Café menu\n\nCrème brûlée costs €4.50; the “gâteau” is sold out.\n"),
])
def test_cp1252_csv_and_markdown(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("cp1252"))
    joined = "\n".join(texts(path))
    assert "Crème brûlée" in joined and "€4.50" in joined and "“" in joined


@pytest.mark.parametrize("encoding", WIDE)
@pytest.mark.parametrize("name", ["notes.txt", "config.json", "config.yaml", "notes.md", "table.csv"])
def test_utf16_and_utf32_text_formats_with_and_without_bom(tmp_path: Path, name: str, encoding: str) -> None:
    content = {".txt": "Grüße aus Zürich, the crane ledger.\n", ".json": '{"city": "Zürich", "item": "crane"}',
               ".yaml": "city: Zürich\nitem: crane\n", ".md": "# Zürich\n\nThe crane ledger.\n",
               ".csv": "city,item\nZürich,crane\n"}[Path(name).suffix]
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    joined = "\n".join(texts(path))
    assert "Zürich" in joined and "crane" in joined


def test_decode_refuses_binary_and_keeps_plain_utf8() -> None:
    assert decode("naïve".encode()) == "naïve"
    assert decode("naïve".encode("utf-32")) == "naïve"
    with pytest.raises(ParseError, match="binary content"):
        decode(b"\x00\x01\x02binary\x00" * 50)


def test_a_folder_of_wide_and_legacy_files_is_searchable(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "stock.xml").write_bytes(XML.format(decl="UTF-16").encode("utf-16-le"))
    (docs / "crane.eml").write_bytes(MAIL.encode("utf-16-be"))
    (docs / "menu.csv").write_bytes("Dish,Note\nCrème brûlée,kookaburra special\n".encode("cp1252"))
    report = kb.ingest([str(docs)])
    assert not report.failed and len(report.added) == 3
    assert Path(kb.search("harbour crane", k=1, mode="keyword")[0].source).name == "stock.xml"
    assert Path(kb.search("Tuesday", k=1, mode="keyword")[0].source).name == "crane.eml"
    assert "Crème brûlée" in kb.search("kookaburra", k=1, mode="keyword")[0].text
