"""E-mail: .eml, .msg and .mbox are read with their headers as metadata, bodies as text, and their
attachments as documents of their own, cited 'mail.eml > report.pdf p.2'; a changed mail replaces its
attachments, a removed one takes them along; a broken mail is a one-line reason."""

from __future__ import annotations

import json
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from kb.api import KnowledgeBase
from tests.helpers import FAKE, write_docx, write_pdf

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
COVER = "\n".join(f"Line {i} of the cover page, which says what the report covers and for whom." for i in range(12))


def mail(subject: str, body: str, *, sender: str = "Ada Byron <ada@example.org>", html: str | None = None,
         attachments: list[tuple[str, bytes, str]] = (), forwarded: EmailMessage | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "Team <team@example.org>"
    m["Date"] = "Tue, 02 May 2023 09:15:00 +0200"
    m["Subject"] = subject
    m.set_content(body)
    if html:
        m.add_alternative(html, subtype="html")
    for name, data, mime in attachments:
        main, sub = mime.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    if forwarded is not None:
        m.add_attachment(forwarded)
    return m


def by_source(kb: KnowledgeBase) -> dict[str, object]:
    return {Path(d.source).name if " > " not in d.source else d.source.split("/")[-1]: d for d in kb.documents()}


def test_a_mail_its_attachments_and_a_forwarded_mail_are_each_found_and_cited(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    pdf = write_pdf(tmp_path / "src" / "report.pdf", [COVER, "The quarterly narwhal census counted 41."])
    handbook = write_docx(tmp_path / "src" / "handbook.docx")
    inner = mail("Original figures", "The okapi forecast was revised twice.", sender="Bob <bob@example.org>")
    m = mail("Budget review", "Please read the attached report before Friday.",
             attachments=[("report.pdf", pdf.read_bytes(), "application/pdf"),
                          ("handbook.docx", handbook.read_bytes(),
                           "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                          ("notes.txt", b"Axolotl tanks need cleaning.\n", "text/plain"),
                          ("blob.bin", b"\x00\x01" * 50, "application/octet-stream")],
             forwarded=inner)
    docs.mkdir()
    (docs / "budget.eml").write_bytes(bytes(m))
    report = kb.ingest([str(docs)])
    assert [Path(s).name for s in report.added] == ["budget.eml"] and not report.failed
    assert report.types == {"email": 2, "pdf": 1, "docx": 1, "text": 1}

    hit = kb.search("narwhal census", k=1, mode="keyword")[0]
    assert hit.source.endswith("budget.eml > report.pdf") and hit.page == 2 and hit.file_type == "pdf"
    assert hit.citation.endswith("budget.eml > report.pdf p.2")
    assert "narwhal census counted 41" in hit.text
    hit = kb.search("axolotl", k=1, mode="keyword")[0]
    assert hit.source.endswith("budget.eml > notes.txt")
    hit = kb.search("okapi forecast", k=1, mode="keyword")[0]
    assert hit.source.endswith("budget.eml > Original figures") and hit.section == "Original figures"
    hit = kb.search("economy class flights", k=1, mode="keyword")[0]
    assert hit.source.endswith("budget.eml > handbook.docx")
    # The sender is searchable, the headers are the mail's metadata, and the mail is cited by subject.
    hit = kb.search("Ada Byron", k=1, mode="keyword")[0]
    assert hit.source.endswith("budget.eml") and hit.section == "Budget review"
    assert hit.citation.endswith("budget.eml § Budget review")
    row = kb.catalog.db.execute("SELECT metadata FROM documents WHERE path LIKE '%budget.eml'").fetchone()
    meta = json.loads(row[0])
    assert meta["from"] == "Ada Byron <ada@example.org>" and meta["subject"] == "Budget review"
    assert meta["date"] == "2023-05-02T09:15:00+02:00"
    assert meta["parts_skipped"] == {"blob.bin": "unsupported file type '.bin'"}
    # `kb documents` lists each attachment; a type filter finds the attachment's type.
    assert [d.source.split("/")[-1] for d in kb.documents()] == [
        "budget.eml", "budget.eml > Original figures", "budget.eml > handbook.docx", "budget.eml > notes.txt",
        "budget.eml > report.pdf"]
    from kb.filters import Filters

    assert [h.source.split("/")[-1] for h in kb.search("narwhal", k=3, mode="keyword", filters=Filters(file_type="pdf"))] == [
        "budget.eml > report.pdf"]


def test_a_changed_mail_replaces_its_attachments_and_removing_it_takes_them_along(kb: KnowledgeBase,
                                                                                  tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    eml = docs / "thread.eml"
    eml.write_bytes(bytes(mail("Thread", "First version.", attachments=[
        ("a.txt", b"Pangolin scales are keratin.\n", "text/plain"),
        ("b.txt", b"Quokka smiles are famous.\n", "text/plain")])))
    kb.ingest([str(docs)])
    assert len(kb.documents()) == 3
    again = kb.ingest([str(docs)])  # unchanged: the attachments stay, nothing re-indexed
    assert [Path(s).name for s in again.unchanged] == ["thread.eml"] and not again.removed
    assert len(kb.documents()) == 3

    eml.write_bytes(bytes(mail("Thread", "Second version.", attachments=[
        ("a.txt", b"Pangolin scales are keratin, said the vet.\n", "text/plain")])))
    report = kb.ingest([str(docs)])
    assert [Path(s).name for s in report.updated] == ["thread.eml"]
    assert sorted(d.source.split("/")[-1] for d in kb.documents()) == ["thread.eml", "thread.eml > a.txt"]
    assert kb.search("quokka", k=3, mode="keyword") == []
    assert "said the vet" in kb.search("pangolin", k=1, mode="keyword")[0].text

    removed = kb.remove([str(eml)])
    assert sorted(s.split("/")[-1] for s in removed) == ["thread.eml", "thread.eml > a.txt"]
    assert kb.documents() == []

    # A mail deleted from the folder takes its attachments along at the next ingest.
    kb.ingest([str(docs)])
    assert len(kb.documents()) == 2
    eml.unlink()
    (docs / "other.txt").write_text("Something else entirely.\n")
    report = kb.ingest([str(docs)])
    assert sorted(s.split("/")[-1] for s in report.removed) == ["thread.eml", "thread.eml > a.txt"]
    assert [Path(d.source).name for d in kb.documents()] == ["other.txt"]


def test_a_mailbox_lists_its_messages_and_each_message_is_a_document(kb: KnowledgeBase, tmp_path: Path) -> None:
    import mailbox

    docs = tmp_path / "docs"
    docs.mkdir()
    box = mailbox.mbox(str(docs / "archive.mbox"))
    box.add(mail("Kickoff", "We start on Monday.", sender="Carol <carol@example.org>"))
    box.add(mail("Tapir sighting", "", html="<html><body><p>A <b>tapir</b> crossed the road at dawn.</p>"
                                            "<script>ignored()</script></body></html>"))
    box.add(mail("Minutes", "See attached.", attachments=[("minutes.txt", b"Wombat budget approved.\n",
                                                           "text/plain")]))
    box.flush()
    box.close()
    report = kb.ingest([str(docs)])
    assert not report.failed
    hit = kb.search("tapir crossed", k=1, mode="keyword")[0]
    assert hit.source.endswith("archive.mbox > message 2") and hit.section == "Tapir sighting"
    assert "ignored()" not in hit.text
    hit = kb.search("wombat budget", k=1, mode="keyword")[0]
    assert hit.source.endswith("archive.mbox > message 3 > minutes.txt")
    # The mailbox itself lists its messages, cited by message number.
    hit = next(h for h in kb.search("Carol Kickoff", k=5, mode="keyword") if h.source.endswith("archive.mbox"))
    assert hit.unit == "message" and hit.page == 1 and "Carol" in hit.text
    assert hit.citation.endswith("archive.mbox messages 1-3")  # short lines: one chunk lists them all


def test_an_outlook_msg_and_its_embedded_message_are_read(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(FIXTURES / "mail_outer.msg", docs / "outer.msg")
    report = kb.ingest([str(docs)])
    assert not report.failed
    hit = kb.search("outer body", k=1, mode="keyword")[0]
    assert hit.source.endswith("outer.msg") and hit.section == "outer subject" and hit.file_type == "email"
    assert [d.source.split("/")[-1] for d in kb.documents()] == ["outer.msg", "outer.msg > test"]


def test_broken_mail_files_are_one_line_reasons_and_the_rest_is_indexed(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.eml").write_bytes(bytes(mail("Fine", "Ibis feathers are red.")))
    (docs / "random.eml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (docs / "cut.msg").write_bytes((FIXTURES / "mail_outer.msg").read_bytes()[:3000])
    (docs / "text.msg").write_text("just some text, not an Outlook file\n")
    (docs / "empty.mbox").write_text("no messages here\n")
    report = kb.ingest([str(docs)])
    assert [Path(s).name for s in report.added] == ["ok.eml"]
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    assert reasons["random.eml"] == "not an e-mail message (no From, To, Subject or Date header)"
    assert reasons["cut.msg"].startswith("not an Outlook message (.msg)")
    assert reasons["text.msg"].startswith("not an Outlook message (.msg)")
    assert reasons["empty.mbox"] == "no messages in the mailbox (not an mbox file?)"
    assert all("\n" not in r and "Traceback" not in r for r in reasons.values())


def test_mail_headers_filter_search_and_the_document_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from kb.cli import main
    from kb.errors import ConfigError
    from kb.filters import Filters, parse_where

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.eml").write_bytes(bytes(mail("Budget", "The heron budget is final.")))
    (docs / "b.eml").write_bytes(bytes(mail("Budget again", "The heron budget moved.", sender="Bob <bob@example.org>")))
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(docs)])
        bob = Filters(where=parse_where(["from=BOB"]))
        assert [Path(h.source).name for h in kb.search("heron budget", k=5, mode="keyword", filters=bob)] == ["b.eml"]
        both = Filters(where=parse_where({"from": "example.org", "subject": "again"}))
        assert [Path(d.source).name for d in kb.documents(both)] == ["b.eml"]
        assert kb.search("heron", k=5, mode="keyword", filters=Filters(where=(("from", "nobody"),))) == []
    with pytest.raises(ConfigError, match="FIELD=TEXT"):
        parse_where(["from"])
    with pytest.raises(ConfigError, match="metadata field"):
        parse_where(["x') OR 1=1 --=y"])
    monkeypatch.setenv("KB_DIR", str(tmp_path / "kb"))
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    result = CliRunner().invoke(main, ["search", "heron budget", "--mode", "keyword", "--where", "from=ada", "--json"])
    assert result.exit_code == 0, result.output
    assert [Path(h["source"]).name for h in json.loads(result.output)["hits"]] == ["a.eml"]
    result = CliRunner().invoke(main, ["documents", "--where", "subject=again"])
    assert result.exit_code == 0 and "b.eml" in result.output and "a.eml" not in result.output
    # Mails have no pages: the summary counts chunks only (not "0 pages, 0.0 pages/s").
    more = tmp_path / "more"
    more.mkdir()
    (more / "c.eml").write_bytes(bytes(mail("Later", "The egret returned.")))
    result = CliRunner().invoke(main, ["ingest", str(more)])
    assert result.exit_code == 0 and "Indexed 1 file in" in result.output and "pages" not in result.output
