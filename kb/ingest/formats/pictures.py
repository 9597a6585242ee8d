"""Pictures inside documents (a deck's slides, a Word file's sections) read by OCR like scans, each
cited by the slide or section it sits in.

The OCR mode decides which are read, as it does for a PDF's pages: `auto` reads the pictures of a
slide or section with no usable text of its own (a slide that is a screenshot, a scan pasted into Word),
`always` every picture, `never` none. Icons, bullets and rules are skipped by size, each distinct
picture is read once per file (a logo on every slide costs one OCR), and a file's pictures are read up
to a cap, the rest named in a warning.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.ingest.base import paragraphs
from kb.ingest.formats import ocr
from kb.types import Block, plural

log = logging.getLogger(__name__)

# Under 100 x 100 pixels' worth a picture is an icon, a bullet or a rule: a few words at most, and
# decks repeat them on every slide.
MIN_PIXELS = 10_000
# OCR'd per file at most: a 1280 x 720 slide picture takes about 0.5 s, a dense one a few seconds
# (benchmarks/OCR.md), so a file costs a minute or a few at worst; the rest are counted in a warning.
MAX_PICTURES = 100


@dataclass
class Pictures:
    """The OCR of one file's pictures, and the account of what it did: what is read, what is skipped
    and why, for the file's warnings and for its reason when it has no text at all."""

    path: Path
    unit: str  # what a picture's `page` numbers in warnings: "slide"; "" where pictures are not numbered
    seen: int = 0  # pictures met, read or not
    read: int = 0  # distinct pictures OCR'd
    outcomes: Counter[str] = field(default_factory=Counter)  # per picture met: small, unreadable, over_cap, empty...
    found_in: list[int] = field(default_factory=list)  # the slides whose pictures gave text
    timed_out: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unavailable: str = ""  # why OCR cannot run here at all (no tesseract, no language)
    _done: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # sha1 -> outcome, paragraphs

    def wanted(self, own_text: str, pictures: int) -> bool:
        """Whether the mode asks for the `pictures` (how many; counted for the reasons) of a slide or
        section whose own text is `own_text`."""
        self.seen += pictures
        mode = ocr.current.mode
        return mode == "always" or (mode == "auto" and not ocr.usable(own_text))

    def blocks(self, blob: bytes, headings: tuple[str, ...], page: int | None = None) -> list[Block]:
        """The paragraphs OCR reads in one picture (its file's bytes), as blocks under `headings` on
        `page`; none for a picture skipped or unread (counted for the warnings)."""
        key = hashlib.sha1(blob).hexdigest()
        if key not in self._done:
            self._done[key] = self._recognize(blob, str(page or "?"))
        outcome, found = self._done[key]
        self.outcomes[outcome] += 1
        out = [b for para in found for b in paragraphs(para, headings, page)]
        if out and page is not None and page not in self.found_in:
            self.found_in.append(page)
        return out

    def _recognize(self, blob: bytes, where: str) -> tuple[str, list[str]]:
        # lazy: `kb --help` imports every parser (for its type list); PIL loads when a picture is read
        from PIL import Image, ImageOps

        if self.unavailable:
            return "unavailable", []
        try:
            with Image.open(io.BytesIO(blob)) as image:
                if image.width * image.height < MIN_PIXELS:
                    return "small", []
                if self.read >= MAX_PICTURES:
                    return "over_cap", []
                image.load()  # vector pictures (EMF, WMF) and broken ones fail here
                upright = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            return "unreadable", []
        self.read += 1
        try:
            found = ocr.recognize(upright)
        except ocr.OcrUnavailable as e:
            self.unavailable = str(e)
            return "unavailable", []
        except ocr.OcrTimeout:
            self.timed_out.append(where)
            return "timed_out", []
        except ParseError as e:
            self.failed.append(one_line(e, 160))
            return "failed", []
        return ("text" if found else "empty"), found

    def metadata(self) -> dict[str, Any]:
        """What to record with the document (`ocr_pictures`, `ocr_pages`) and its warnings."""
        meta: dict[str, Any] = {"ocr_pictures": self.read} if self.read else {}
        if self.found_in:
            meta["ocr_pages"] = sorted(self.found_in)
        if warnings := self.warnings():
            meta["warnings"] = warnings
            for warning in warnings:
                log.warning("kb: %s: %s", self.path, warning)
        return meta

    def warnings(self) -> list[str]:
        out = []
        if self.unavailable:
            out.append(f"pictures left unread: {self.unavailable}")
        if self.timed_out:
            where = f" on {self.unit} {', '.join(self.timed_out)}" if self.unit else ""
            out.append(f"{plural(len(self.timed_out), 'picture')}{where} left unread: OCR took over "
                       f"{ocr.PAGE_TIMEOUT_S:g} s")
        if self.failed:
            out.append(f"{plural(len(self.failed), 'picture')} left unread: {self.failed[0]}")
        if self.outcomes["over_cap"]:
            out.append(f"{plural(self.outcomes['over_cap'], 'picture')} past the first {MAX_PICTURES} left "
                       "unread (the OCR cap per file)")
        return out

    def no_text(self, what: str) -> str:
        """The reason a file whose only content is pictures has no text: `what` ("no text in
        presentation") and, where there were pictures, why they gave none."""
        if not self.seen:
            return what
        n = plural(self.seen, "picture")
        if ocr.current.mode == "never":
            return f"{what} ({n}; OCR is off: kb ingest --ocr auto reads them)"
        if self.unavailable:
            return f"{what} ({n}, not read: {self.unavailable})"
        def share(k: int) -> str:  # how many of the pictures: "" of one, "all " or "2 " of more
            return "" if self.seen == 1 else "all " if k == self.seen else f"{k} "

        why = []
        if small := self.outcomes["small"]:
            why.append(f"{share(small)}under {MIN_PIXELS:,} pixels (icons, bullets)")
        if unreadable := self.outcomes["unreadable"]:
            why.append(f"{share(unreadable)}unreadable by OCR (vector drawings, or damaged)")
        if empty := self.outcomes["empty"]:
            why.append(f"OCR found no text in {'it' if self.seen == 1 else 'them' if empty == self.seen else empty}")
        return f"{what} ({n}: {'; '.join(why + self.warnings()) or 'not read'})"
