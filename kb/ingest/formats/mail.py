"""E-mail: `.eml` (the standard library's `email`), `.msg` (Outlook, through extract-msg) and `.mbox`
(the standard library's `mailbox`).

A message is a document: its headers (from, to, cc, date, subject) are metadata and a block of their
own (a search for a sender finds the mail), its body (plain text, else HTML) the rest, all under the
subject as section. Its attachments are documents of their own (`Part`s: the pipeline parses each with
the parser of its type and cites it as 'mail.eml > report.pdf p.2'); a forwarded message is one too.
A mailbox is a list of its messages (date, sender, subject), each message a part of it.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import email.utils
import logging
import mailbox
import tempfile
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.ingest.base import paragraphs
from kb.ingest.decode import ascii_compatible, decode, html_declared
from kb.ingest.formats.html import html_blocks
from kb.types import Block, ParsedDocument, Part

log = logging.getLogger(__name__)

HEADERS = ("from", "to", "cc", "date", "subject")
MAX_MESSAGES = 100_000  # a mailbox's messages read at most (the rest dropped with a warning)


@dataclass
class Mail:
    """What kb reads of one message, whatever its container."""

    headers: dict[str, str]
    body: str  # plain text
    attachments: list[Part]


class EmlParser:
    version = 2  # messages saved as UTF-16/32 (BOM or not); bodies without a charset decoded by detection
    file_type = "email"
    extensions = (".eml",)

    def parse(self, path: Path) -> ParsedDocument:
        data = ascii_compatible(path.read_bytes())
        msg = email.message_from_bytes(data, policy=email.policy.default)
        if not any(msg.get(h) for h in ("from", "to", "subject", "date", "message-id")):
            raise ParseError("not an e-mail message (no From, To, Subject or Date header)")
        return document(read_message(msg), path.stem)


class MsgParser:
    file_type = "email"
    extensions = (".msg",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import extract_msg

        try:
            msg = extract_msg.openMsg(str(path), delayAttachments=False)
        except Exception as e:  # extract-msg raises its own errors, and olefile's, for a file that is no .msg
            raise ParseError(f"not an Outlook message (.msg): {one_line(e, 120)}") from None
        try:
            return document(_read_msg(msg), path.stem)
        finally:
            msg.close()


class MboxParser:
    version = 2  # mailboxes saved as UTF-16/32 (BOM or not)
    file_type = "mbox"
    extensions = (".mbox",)

    def parse(self, path: Path) -> ParsedDocument:
        with path.open("rb") as f:
            head = f.read(4096)
        if ascii_compatible(head) is head:
            return self._read(path, path)
        # A mailbox saved as UTF-16/32: `mailbox` reads bytes from a file, so it reads a UTF-8 copy.
        with tempfile.TemporaryDirectory(prefix="kb-mbox-") as tmp:
            copy = Path(tmp) / "mbox"
            copy.write_bytes(ascii_compatible(path.read_bytes()))
            return self._read(path, copy)

    def _read(self, path: Path, source: Path) -> ParsedDocument:
        box = mailbox.mbox(str(source), create=False)
        try:
            lines: list[str] = []
            parts: list[Part] = []
            for n, raw in enumerate(box, start=1):
                if n > MAX_MESSAGES:
                    log.warning("kb: %s: only the first %d messages are read", path, MAX_MESSAGES)
                    break
                msg = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
                headers = _headers(msg)
                lines.append(" — ".join(x for x in (headers.get("date", ""), headers.get("from", ""),
                                                      headers.get("subject", "(no subject)")) if x))
                parts.append(Part(f"message {n}", f"message-{n}.eml", msg.as_bytes()))
        finally:
            box.close()
        if not parts:
            raise ParseError("no messages in the mailbox (not an mbox file?)")
        listing = [Block(line, (), n) for n, line in enumerate(lines, start=1)]
        return ParsedDocument(path.stem, listing, len(parts), {"messages": len(parts)}, unit="message", parts=parts)


def document(mail: Mail, fallback_title: str) -> ParsedDocument:
    """One message as a document: the header block, then the body, under the subject."""
    h = mail.headers
    subject = h.get("subject") or "(no subject)"
    section = (subject,)
    head = "\n".join(f"{name.capitalize()}: {h[name]}" for name in HEADERS if h.get(name))
    blocks = [Block(head, section)] + paragraphs(mail.body, section)
    meta: dict[str, Any] = {k: v for k, v in h.items() if v}
    if mail.attachments:
        meta["attachments"] = [p.name for p in mail.attachments]
    return ParsedDocument(h.get("subject") or fallback_title, blocks, None, meta, parts=mail.attachments)


def read_message(msg: Message) -> Mail:
    body = ""
    part = msg.get_body(preferencelist=("plain", "html")) if isinstance(msg, EmailMessage) else None
    if part is not None:
        body = _content(part)
        if part.get_content_type() == "text/html":
            body = html_text(body)
    attachments: list[Part] = []
    if isinstance(msg, EmailMessage):
        for n, att in enumerate(msg.iter_attachments(), start=1):
            if att.get_content_type() == "message/rfc822":
                inner = att.get_payload(0) if att.is_multipart() else None
                if isinstance(inner, Message):
                    data = inner.as_bytes()
                else:
                    payload = att.get_payload(decode=True)  # bytes, or None when there is none
                    data = payload if isinstance(payload, bytes) else b""
                subject = inner.get("subject", "") if isinstance(inner, Message) else ""
                attachments.append(Part(_name(subject or f"message {n}"), f"attached-{n}.eml", data))
                continue
            payload = att.get_payload(decode=True)
            name = att.get_filename()
            if isinstance(payload, bytes) and payload and name:
                attachments.append(Part(_name(name), _name(name), payload))
    return Mail(_headers(msg), body, _unique(attachments))


def _read_msg(msg: Any) -> Mail:
    """An extract-msg message: headers, body (plain, else HTML), attachments (embedded messages as .eml
    would need their raw bytes, which .msg does not hold: they are read as .msg files of their own)."""
    date = msg.date
    headers = {"from": msg.sender or "", "to": msg.to or "", "cc": msg.cc or "", "subject": msg.subject or "",
               "date": date.isoformat() if isinstance(date, datetime) else str(date or "")}
    body = msg.body or ""
    if not body.strip() and msg.htmlBody:
        html = msg.htmlBody
        body = html_text(html)
    attachments: list[Part] = []
    for n, att in enumerate(msg.attachments, start=1):
        data = att.data
        if hasattr(data, "exportBytes"):  # an embedded Outlook message
            attachments.append(Part(_name(getattr(data, "subject", "") or f"message {n}"), f"attached-{n}.msg",
                                    data.exportBytes()))
        elif isinstance(data, bytes) and data:
            name = att.longFilename or att.shortFilename or f"attachment-{n}"
            attachments.append(Part(_name(name), _name(name), data))
    return Mail({k: " ".join(str(v).split()) for k, v in headers.items()}, body, _unique(attachments))


def _headers(msg: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in HEADERS:
        try:
            value = msg.get(name)
        except Exception:  # a malformed header the policy cannot parse: skipped, not the mail
            value = None
        if value is None:
            continue
        text = " ".join(str(value).split())
        if name == "date":
            try:
                text = email.utils.parsedate_to_datetime(text).isoformat()
            except (TypeError, ValueError):
                pass
        out[name] = text
    return out


def _content(part: Message) -> str:
    """A text part's content: in the charset it declares; without one (or with one Python does not
    know) its bytes are decoded as any text file is (kb.ingest.decode: BOM, UTF-8, detection)."""
    if part.get_param("charset") is None or not _known(part.get_content_charset() or ""):
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            try:
                return decode(raw, html_declared if part.get_content_subtype() == "html" else None)
            except ParseError:
                return raw.decode("utf-8", "replace")
    try:
        return str(part.get_content())  # type: ignore[attr-defined]
    except (LookupError, ValueError):  # a charset the codec refuses: bytes read as UTF-8, replacing the rest
        raw = part.get_payload(decode=True)
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def _known(charset: str) -> bool:
    try:
        codecs.lookup(charset)
        return True
    except LookupError:
        return False


def html_text(html: str | bytes) -> str:
    """A mail's HTML body as plain text: the HTML parser's blocks, one paragraph each."""
    return "\n\n".join(b.text for b in html_blocks(html)[1])


def _name(name: str) -> str:
    """An attachment's name as a path part: no folders, no separators."""
    name = " ".join(name.replace("/", "_").replace("\\", "_").split()).strip(". ") or "attachment"
    return name[:120]


def _unique(parts: list[Part]) -> list[Part]:
    """Two attachments of one name become 'a.pdf' and 'a (2).pdf', so each has a path of its own."""
    seen: dict[str, int] = {}
    out = []
    for p in parts:
        key = p.filename.lower()
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            stem, dot, ext = p.filename.rpartition(".")
            renamed = f"{stem} ({seen[key]}).{ext}" if dot else f"{p.filename} ({seen[key]})"
            p = Part(f"{p.name} ({seen[key]})", renamed, p.data)
        out.append(p)
    return out
