"""Issue 33's folder as users keep one: every kind of file the readers were fixed for, side by side in one
ingest with the real default model. Each file with text is found by what it says, cited where it says it;
each file without readable text fails with its true reason; nothing else fails."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.filters import Filters
from tests.helpers import needs_tesseract
from tests.test_formats_pictures import picture, write_deck
from tests.test_formats_what_a_person_sees import encrypted, office_files, report_odt

pytestmark = [pytest.mark.slow, needs_tesseract]


def messy_folder(root: Path) -> dict[str, str]:
    """Write the folder; return file name -> a phrase only that file holds."""
    root.mkdir(parents=True)
    phrases: dict[str, str] = {}

    xml = '<?xml version="1.0" encoding="UTF-16"?>\n<survey><site>Quokka habitat survey near the salt lake</site></survey>'
    (root / "survey.xml").write_bytes(xml.encode("utf-16"))  # with its BOM, as Windows tools save it
    phrases["survey.xml"] = "quokka habitat survey"

    mail = ("From: ops@example.org\r\nTo: team@example.org\r\nSubject: Narwhal budget\r\n"
            "Date: Mon, 2 Dec 2024 09:00:00 +0000\r\n\r\nThe narwhal budget doubles next year.\r\n")
    (root / "budget.eml").write_bytes(mail.encode("utf-16-le"))  # no BOM
    phrases["budget.eml"] = "narwhal budget doubles"

    report_odt(root / "report.odt", indent=True)
    phrases["report.odt"] = "revenue grew in the quokka region"

    (root / "harbour.html").write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></div><title>Harbour</title></head>'
        "<body><div>The wombat ferry leaves at nine.</div></body></html>", encoding="utf-8")
    phrases["harbour.html"] = "wombat ferry leaves at nine"

    (root / "tariff.py").write_text("import math\n\n\ndef kangaroo_tariff(weight):\n"
                                    "    '''The kangaroo freight tariff, per kilogram.'''\n"
                                    "    return math.ceil(weight) * 7\n")
    phrases["tariff.py"] = "kangaroo freight tariff"

    with zipfile.ZipFile(root / "bundle.zip", "w") as z:
        z.writestr("inner/axolotl.md", "# Axolotl care\n\nAxolotl tanks stay below twenty degrees.\n")
    phrases["inner/axolotl.md"] = "axolotl tanks stay below twenty degrees"

    (root / "menu.csv").write_bytes("dish,price\nCrème brûlée of the pelican café,7\n".encode("cp1252"))
    phrases["menu.csv"] = "crème brûlée pelican café"

    write_deck(root / "screenshots.pptx", [("", "", [picture("The ibis dashboard shows nine alerts.")])])
    phrases["screenshots.pptx"] = "ibis dashboard shows nine alerts"

    plain = office_files(root.parent)
    encrypted(plain["budget.xlsx"], root / "locked.xlsx")
    (root / "random.pdf").write_bytes(os.urandom(4096))
    return phrases


def test_a_messy_folder_is_read_file_by_file_with_true_reasons(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    phrases = messy_folder(docs)
    with KnowledgeBase.open(tmp_path / "kb") as kb:
        report = kb.ingest([str(docs)])
        failed = {Path(f.source).name: f.reason for f in report.failed}
        assert failed.keys() == {"locked.xlsx", "random.pdf"}, failed
        assert "encrypted (password-protected)" in failed["locked.xlsx"]
        assert "not a PDF" in failed["random.pdf"]
        for name, phrase in phrases.items():
            hits = kb.search(phrase, k=3)
            assert hits and hits[0].source.endswith(name), (name, [h.source for h in hits])
        code = kb.search("kangaroo freight tariff", k=1, filters=Filters(file_type="code"))[0]
        assert (code.unit, code.page, code.page_end) == ("line", 1, 6)
        deck = kb.search("ibis dashboard", k=1)[0]
        assert (deck.unit, deck.page) == ("slide", 1)
        inner = kb.search("axolotl tanks", k=1)[0]
        assert inner.source.endswith("bundle.zip > inner/axolotl.md")
