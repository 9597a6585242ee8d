"""PDF with PDFium (pypdfium2), page by page; pages without usable text (scans) rendered by PDFium and
read by OCR (kb.ingest.formats.ocr).

The layout becomes structure: the section path comes from the outline, or from numbered heading lines
("PART II", "Item 7.", "Section 4", "2.1 Design" when printed as a heading), and each page's own title
(the heading-styled lines it opens with, told by font size, weight and capitals) is its deepest level.
Running headers and footers and page numbers are left out of the text, and dot leaders dropped.

PDFium, the engine of Chromium's PDF viewer, reads a text layer 11x faster than pypdf (sec-10q: 314
pages in 1.7 s against 19.5 s) with the same text, line for line, and opens what readers open
(encrypted files with an empty password, damaged cross-reference tables)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.failpoints import failpoint
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.formats import ocr
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

Style = tuple[float, int]  # a line's print: font size (points) and weight (400 regular, 700 bold)

# Numbered heading lines: "PART II", "Chapter 3", "Item 2. Results", "Section 4: Scope", "Appendix B". What
# follows the number starts with a capital or nothing ("Item 3 of this report ..." is a sentence; "Section
# 1350." and "Section 162(m)" are citations of a law), and a line ending in a page number is a table of
# contents' entry, not the heading itself.
_DIVISION_WORDS = r"(?:PART|CHAPTER|BOOK|VOLUME)\s+"
_SECTION_WORDS = r"(?:ITEM|SECTION|ARTICLE|APPENDIX|ANNEX|SCHEDULE|ATTACHMENT)\s+"
_DIVISION = re.compile("^" + _DIVISION_WORDS + r"(?:[IVXLC]+|\d+)\b(?!.*\s\d+$)[.:\s—–-]*(?:[^a-z\s].{0,80})?$",
                       re.IGNORECASE)
_SECTION = re.compile("^" + _SECTION_WORDS + r"(?:[IVXLC]+|\d{1,3}[A-Z]?|[A-Z])\b(?!.*\s\d+$)[.:\s—–-]*(?:[^a-z\s(].{0,100})?$",
                      re.IGNORECASE)
# "2.1 Study design": a heading only when printed as one (larger or bolder than the body text); "2.1 Study
# design 14" is a contents entry.
_DECIMAL_NUMBER = r"\d{1,2}(?:\.\d{1,2}){0,3}"
_DECIMAL = re.compile(rf"^({_DECIMAL_NUMBER})\.?\s+(?!.*\s\d{{1,3}}$)[A-Z][^.]{{2,80}}$")
_DECIMAL_ENTRY = re.compile(rf"^{_DECIMAL_NUMBER}\.?\s+[A-Z].*\s\d{{1,4}}$")  # "4.2 Duration of Study 13"
_LIST_PAGE = 4  # a table of contents lists at least this many numbered lines (see _lists_sections)
_LISTED = re.compile(rf"^(?:{_DIVISION_WORDS}|{_SECTION_WORDS})(?:[IVXLC]+|\d+[A-Z]?|[A-Z])\b", re.IGNORECASE)
_PAGE_REF = re.compile(r"\s\d{1,4}$|^\d{1,4}$")  # "Results of Operations 14", or "14" on a line of its own
_RUN_ON_HEADING = re.compile(r"(?<=[.:;] )\d{1,2}(?:\.\d{1,2}){1,3}\.?\s+[A-Z][^.]{2,80}$")  # "... 2 weeks. 5.2 Raw materials"
_TITLE_LINES = 3  # a page's title: at most this many heading-styled lines at its top
_RUNNING_ZONE = 3  # running headers and footers: among the first or last lines of a page ...
_RUNNING_SHARE = 0.2  # ... on at least this share of the pages (and at least 3)
_EDGE_NUMBER = re.compile(r"^\d+\b|\b\d+$")  # a running line's page number opens or closes it ...
_PAGE_LABEL = re.compile(r"\bpage \d+(?: of \d+)?\b")  # ... or is written out anywhere in it: "Page 3 of 4 DFW08WA050"
_PAGE_OF = re.compile(r"\bpage \d+ of \d+\b", re.IGNORECASE)  # a line with this at a page's edge is its running header
_PAGE_NUMBER = re.compile(r"^(?:page )?-? ?[\d#]+ ?-?(?: of [\d#]+)?$")  # "7", "- 7 -", "Page 7 of 12", as keys
_SMALL_WORDS = frozenset("a an and as at by for from in of on or per the to with vs".split())
# Dot leaders ("Total assets ........ 1,204"): a token per dot to the embedding model, nothing to a reader.
_LEADER = re.compile(r"[ \t]*(?:[.·…][ \t]?){4,}[ \t]*")
# PDFium gives a hyphen that ends a line as U+FFFE (or U+0002), the line break itself dropped:
# "stock\ufffebased" is "stock-based". Other control characters are noise of a font's encoding.
_LINE_END_HYPHEN = re.compile(r"[\x02\ufffe]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\uffff]")


@dataclass
class PageRange:
    """Pages `first`.. of a PDF as read by one worker: their text (OCR'd where asked), which of them OCR
    read, and those it could not (number -> why). The document's own parts (page count, outline,
    metadata) come with every range: they cost a few milliseconds to read."""

    first: int
    texts: list[str]
    pages: int
    outline: dict[int, tuple[str, ...]]
    meta: dict[str, Any]
    styles: list[list[Style]]  # each page's line prints (see _page_text)
    wanted: int = 0  # pages the OCR mode asked for
    ocr_done: list[int] = field(default_factory=list)
    unread: dict[int, str] = field(default_factory=dict)


class PdfParser:
    file_type = "pdf"
    extensions = (".pdf",)

    def parse(self, path: Path) -> ParsedDocument:
        return self.assemble(path, [self.read(path)])

    @staticmethod
    def page_count(path: Path) -> int:
        """How many pages (0 for a file PDFium cannot open: its reason comes when it is read)."""
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            return 0
        try:
            return len(pdf)
        finally:
            pdf.close()

    def read(self, path: Path, first: int = 1, last: int | None = None) -> PageRange:
        """Pages `first`..`last` (1-based, inclusive; None: to the end), OCR included: one worker's share
        of a large PDF, which `assemble` joins with the others'."""
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(str(path))  # an empty user password is tried, as readers do
        except pdfium.PdfiumError as e:
            if "password" in str(e).lower():
                raise ParseError("encrypted PDF needs a password") from None
            raise ParseError(_unopened(path, e)) from None
        try:
            failpoint("pdf.read")
            npages = len(pdf)
            last = npages if last is None else min(last, npages)
            read = [_page_text(pdf, i - 1) for i in range(first, last + 1)]
            outline = _outline_by_page(pdf)
            meta: dict[str, Any] = {k.lower(): v.strip() for k, v in pdf.get_metadata_dict(skip_empty=True).items()
                                    if isinstance(v, str) and v.strip()}
        except pdfium.PdfiumError as e:
            raise ParseError(f"unreadable PDF: {_reason(e)}") from None
        finally:
            pdf.close()
        part = PageRange(first, [text for text, _ in read], npages, outline, meta, [styles for _, styles in read])
        _ocr_pages(path, part)
        return part

    def assemble(self, path: Path, ranges: list[PageRange]) -> ParsedDocument:
        """The document from its page ranges, in order."""
        first = ranges[0]
        texts = [t for r in ranges for t in r.texts]
        styles = [[] if n in r.ocr_done else page for r in ranges for n, page in enumerate(r.styles, start=r.first)]
        ocr_meta, no_text = _ocr_outcome(path, texts, ranges)
        return self._document(path, texts, first.outline, {**first.meta, **ocr_meta}, no_text, styles)

    def _document(self, path: Path, texts: list[str], outline: dict[int, tuple[str, ...]],
                  meta: dict[str, Any], no_text: str | None, styles: list[list[Style]]) -> ParsedDocument:
        layout = _Layout(texts, styles)
        sections = _Sections(outline)
        blocks: list[Block] = []
        for number, lines in enumerate(layout.pages(), start=1):
            sections.new_page(number)
            run: list[str] = []
            title: list[tuple[str, Style | None]] = []
            at_top = True  # a page's title is the heading-styled lines it opens with (page 1's names the document)
            listing = _lists_sections([line for line, _ in lines if line])

            def flush(kind: str = "text", run: list[str] = run, number: int = number) -> None:
                if run:
                    blocks.append(Block("\n".join(run), sections.path, number, kind=kind))
                    run.clear()

            def close_title(title: list[tuple[str, Style | None]] = title, run: list[str] = run) -> None:
                if title:
                    run.extend(t for t, _ in title)
                    sections.titled(" ".join(t for t, _ in title), title[-1][1])
                    flush("heading")
                    title.clear()

            for line, style in lines:
                if line is None:  # a paragraph break
                    if not title:
                        flush()
                    continue
                level = None if outline or listing else _numbered_level(line, style, layout.body)
                if level is not None and sections.repeats(level, line):
                    if at_top:  # the item's name atop each of its pages, as a running header
                        continue
                    level = None
                if level is not None:
                    close_title()
                    flush()
                    sections.numbered(level, line, style)
                    blocks.append(Block(line, sections.path, number, kind="heading"))
                    continue
                if at_top and number > 1 and len(title) < _TITLE_LINES and _title_like(line, style, layout.body):
                    title.append((line, style))
                    continue
                close_title()
                at_top = False
                run.append(line)
            close_title()
            flush()
            if listing:
                sections.end_title()  # "Contents" names its page only
        if not any(b.text.strip() for b in blocks):
            raise ParseError(no_text or f"no extractable text in {len(texts)} page(s), needs OCR (kb ingest --ocr auto)")
        return ParsedDocument(title=path.stem, blocks=blocks, pages=len(texts), metadata=meta)


class _Sections:
    """The section path in force while the pages are walked: the outline's entries for the page (or,
    without an outline, the numbered heading lines met so far), then the title of the page."""

    def __init__(self, outline: dict[int, tuple[str, ...]]):
        self.outline = outline
        self._path = HeadingPath()
        self._outlined: tuple[str, ...] = ()
        self._numbered: tuple[int, str, Style | None] | None = None  # the numbered heading in force
        self._title_level: int | None = None  # the level of the page title in force

    @property
    def path(self) -> tuple[str, ...]:
        return self._path.path

    def new_page(self, number: int) -> None:
        if number in self.outline:
            self._outlined = self.outline[number]
            self._path = HeadingPath()
            for level, heading in enumerate(self._outlined):
                self._path.enter(level, heading)

    def numbered(self, level: int, line: str, style: Style | None) -> None:
        """A numbered heading line: it closes the page title in force, which is a page's label, not a
        parent of the document's numbered parts."""
        self.end_title()
        self._path.enter(level, line)
        self._numbered = (level, line, style)

    def end_title(self) -> None:
        if self._title_level is not None:
            self._path.enter(self._title_level, "")
            self._title_level = None

    def repeats(self, level: int, line: str) -> bool:
        """Whether a numbered line names the numbered heading in force ("Item 1A" atop each page of
        "ITEM 1A. RISK FACTORS"): a running header, not a new section."""
        return self._numbered is not None and self._numbered[0] == level and _label(line) == _label(self._numbered[1])

    def titled(self, title: str, style: Style | None) -> None:
        """A page's own title becomes the deepest level, in force until the next title or numbered heading.
        Printed in a larger type than the numbered heading in force, it is that heading's sibling, else its
        child: statements printed after a report's last item are not part of that item. Weight and
        capitals do not count here: a bold subheading is still inside its item, and many files misreport
        weights."""
        self.end_title()
        if self.outline:
            if self._outlined and _same(title, self._outlined[-1]):
                return
            level = len(self._outlined)
        elif self._numbered is not None:
            level = self._numbered[0] + (0 if _larger(style, self._numbered[2]) else 1)
        else:
            level = 0
        self._path.enter(level, title)
        self._title_level = level


def _lists_sections(lines: list[str]) -> bool:
    """Whether a page's lines are a table of contents, whose lines open no section: at least `_LIST_PAGE`
    numbered lines ("Item 2. Results 14"), half of them with a page number (at their end or on the next
    line), or nearly all of them one after another. A page of short sections ("Item 3. Defaults", "None.",
    "Item 4. Mine Safety", ...) has text between its headings and no page numbers."""
    listed = [i for i, line in enumerate(lines) if _LISTED.match(line) or _DECIMAL_ENTRY.match(line)]
    if len(listed) < _LIST_PAGE:
        return False
    numbered = sum(1 for i in listed if _PAGE_REF.search(lines[i]) or (i + 1 < len(lines) and _PAGE_REF.match(lines[i + 1])))
    adjacent = sum(1 for a, b in zip(listed, listed[1:]) if b == a + 1)
    return 2 * numbered >= len(listed) or 4 * adjacent >= 3 * (len(listed) - 1)


def _label(line: str) -> str:
    """A numbered heading's kind and number: "item 1a" for "ITEM 1A. RISK FACTORS"."""
    return " ".join(re.sub(r"[^\w\s]", " ", line.lower()).split()[:2])


def _larger(style: Style | None, than: Style | None) -> bool:
    """Printed in a type at least a point larger."""
    return style is not None and than is not None and style[0] >= than[0] + 1


def _caps(line: str) -> bool:
    letters = [c for c in line if c.isalpha()]
    return len(letters) >= 4 and all(c.isupper() for c in letters)


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def _numbered_level(line: str, style: Style | None, body: Style | None) -> int | None:
    """The level a numbered heading line opens (PART 0; Item, Section 1; "2.1" 2), None for other lines."""
    if _DIVISION.match(line):
        return 0
    if _SECTION.match(line):
        return 1
    m = _DECIMAL.match(line)
    if m and _prominent(line, style, body):
        return m.group(1).count(".") + 1
    return None


def _prominent(line: str, style: Style | None, body: Style | None) -> bool:
    """Printed as a heading: larger or bolder than the body text, or in capitals."""
    if style is None or body is None:
        return False
    return style[0] >= body[0] + 0.5 or style[1] >= body[1] + 150 or (_caps(line) and style[1] >= body[1])


def _title_like(line: str, style: Style | None, body: Style | None) -> bool:
    """A short, capitalised line with no closing punctuation, printed as a heading where the print says
    anything: how a page's title looks ("Consolidated Statements of Cash Flows", "3 STUDY DESIGN")."""
    words = line.split()
    letters = sum(c.isalpha() for c in line)
    if not words or len(words) > 12 or len(line) > 100 or letters < 3 or line[-1] in ".,;:":
        return False
    if len(words) >= 3 and words[-1].isdigit():  # "Results of Operations 14": a contents entry
        return False
    if letters < 0.6 * len(line.replace(" ", "")):
        return False
    content = [w for w in words if any(c.isalpha() for c in w) and w.lower() not in _SMALL_WORDS]
    if not content or sum(w.lstrip("(\"'“‘")[:1].isupper() for w in content) < 0.7 * len(content):
        return False
    if body is None or style is None or _prominent(line, style, body):
        return True
    return body[1] <= 0 and style[0] >= body[0] - 0.5  # no weights in the file: bold cannot be seen


class _Layout:
    """A PDF's pages as lines with their print, running headers and footers left out: the lines repeated
    at the top or bottom of many pages ("Table of Contents", "Acme Inc. | 2023 Report | 7")."""

    def __init__(self, texts: list[str], styles: list[list[Style]]):
        self.lines = [text.split("\n") for text in texts]
        filled = [[line for line in lines if line] for lines in self.lines]
        # A page's styles are its non-empty lines' in order; one print everywhere says nothing.
        self.styles = [page if len(page) == len(f) else [] for page, f in zip(styles, filled)]
        if len({s for page in self.styles for s in page}) <= 1:
            self.styles = [[] for _ in texts]
        self.body = _body_style(filled, self.styles)
        self.running = _running_lines(filled)

    def pages(self) -> Iterator[list[tuple[str | None, Style | None]]]:
        """Each page's lines, None for a paragraph break, with their print where it is known."""
        for lines, styles in zip(self.lines, self.styles):
            filled = [i for i, line in enumerate(lines) if line]
            style_of = dict(zip(filled, styles))
            zone = set(filled[:_RUNNING_ZONE] + filled[-_RUNNING_ZONE:])
            out: list[tuple[str | None, Style | None]] = []
            for i, line in enumerate(lines):
                if not line:
                    out.append((None, None))
                elif not (i in zone and ((key := _running_key(line)) in self.running or _PAGE_NUMBER.match(key)
                                         or _PAGE_OF.search(line))):
                    out.append((line, style_of.get(i)))
            yield out


def _body_style(pages: list[list[str]], styles: list[list[Style]]) -> Style | None:
    """The print of most of the text (`pages`: each page's non-empty lines)."""
    weight: dict[Style, int] = {}
    for lines, page in zip(pages, styles):
        for line, style in zip(lines, page):
            weight[style] = weight.get(style, 0) + len(line)
    return max(weight, key=weight.__getitem__) if weight else None


def _running_key(line: str) -> str:
    """A line as it repeats from page to page: its page number (a number that opens or closes it, or
    "page 3 of 4" anywhere) left out."""
    return _EDGE_NUMBER.sub("#", _PAGE_LABEL.sub("page #", " ".join(line.lower().split())))


def _running_lines(pages: list[list[str]]) -> set[str]:
    """The running headers and footers of a document (`pages`: each page's non-empty lines), as keys."""
    if len(pages) < 3:
        return set()
    counts: dict[str, int] = {}
    for lines in pages:
        for key in {_running_key(line) for line in lines[:_RUNNING_ZONE] + lines[-_RUNNING_ZONE:]}:
            counts[key] = counts.get(key, 0) + 1
    least = max(3, _RUNNING_SHARE * len(pages))
    return {key for key, n in counts.items() if n >= least}


def _page_text(pdf: Any, index: int) -> tuple[str, list[Style]]:
    """One page's text layer in PDFium's reading order, one line per line of print, dot leaders dropped,
    and the print (font size, weight) of each non-empty line, read at its first character."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    import pypdfium2.raw as pdfium_c

    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            raw = textpage.get_text_range()
            lines: list[str] = []
            styles: list[Style] = []
            at = 0

            def style(i: int) -> Style:
                return (round(pdfium_c.FPDFText_GetFontSize(textpage, i), 1), int(pdfium_c.FPDFText_GetFontWeight(textpage, i)))

            for line in raw.split("\n"):
                for part, start in _print_runs(line, at, style):
                    clean = _clean_line(part)
                    if clean:
                        styles.append(style(start + len(part) - len(part.lstrip())))
                    lines.append(clean)
                at += len(line) + 1
        finally:
            textpage.close()
    finally:
        page.close()
    return clean_text("\n".join(lines)), styles


def _print_runs(line: str, at: int, style: Callable[[int], Style]) -> list[tuple[str, int]]:
    """A line of the text layer as the lines of print it holds, with where each starts. Some files run a
    numbered heading on after the last sentence of a section ("... for 2 weeks. 5.2 Raw materials"):
    printed larger or bolder than the text before it, it starts a line of its own."""
    m = _RUN_ON_HEADING.search(line)
    if m:
        (size, weight), (size_before, weight_before) = style(at + m.start()), style(at + m.start() - 2)
        if size >= size_before + 0.5 or weight >= weight_before + 150:
            return [(line[: m.start()], at), (line[m.start() :], at + m.start())]
    return [(line, at)]


def _clean_line(line: str) -> str:
    return clean_text(_LEADER.sub(" ", _CONTROLS.sub("", _LINE_END_HYPHEN.sub("-", line.replace("\r", "")))))


def _ocr_pages(path: Path, part: PageRange) -> None:
    """OCR the pages of `part` the mode asks for (auto: those without usable text; always: all),
    replacing their text where OCR finds some; the pages it could not read keep what they had and are
    noted in `part.unread`."""
    mode = ocr.current.mode
    if mode == "never":
        return
    wanted = [part.first + i for i, text in enumerate(part.texts) if mode == "always" or not ocr.usable(text)]
    part.wanted = len(wanted)
    if not wanted:
        return
    try:
        for number, image in _rendered(path, wanted):
            try:
                found = "\n\n".join(ocr.recognize(image))
            except ocr.OcrTimeout as e:
                part.unread[number] = str(e)
                continue
            text = clean_text(found)
            if text:
                part.texts[number - part.first] = text
                part.ocr_done.append(number)
    except (ocr.OcrUnavailable, _RenderError) as e:
        part.unread.update((n, str(e)) for n in wanted if n not in part.ocr_done and n not in part.unread)


def _ocr_outcome(path: Path, texts: list[str], ranges: list[PageRange]) -> tuple[dict[str, Any], str | None]:
    """What OCR did to the whole document: the metadata to record (`ocr_pages`, `warnings`, with a
    warning naming the pages left unread) and the reason the document fails with if no page has text
    after all (None: the caller's own)."""
    if not any(r.wanted for r in ranges):
        return {}, None
    done = [n for r in ranges for n in r.ocr_done]
    unread = {n: why for r in ranges for n, why in r.unread.items()}
    meta: dict[str, Any] = {"ocr_pages": done} if done else {}
    left = [n for n in unread if not ocr.usable(texts[n - 1])]  # `always` keeps a readable text layer
    if not left:
        return meta, f"no extractable text in {len(texts)} page(s), and OCR found none"
    reasons = "; ".join(sorted(set(unread[n] for n in left)))
    warning = f"page(s) {ocr.page_list(left)} left unread: {reasons}"
    if any(text.strip() for text in texts):
        log.warning("kb: %s: %s", path, warning)  # else the document fails, and that line says it
    meta["warnings"] = [warning]
    return meta, f"no text layer in {len(left)} page(s), and OCR failed: {reasons}"


class _RenderError(ParseError):
    pass


def _rendered(path: Path, pages: list[int]) -> Iterator[tuple[int, Any]]:
    """Each of `pages` (1-based) as a grey PIL image at `ocr.DPI` (less for a page too large), one at a time."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise _RenderError(f"pages could not be rendered for OCR ({one_line(e)})") from e
    try:
        for number in pages:
            try:
                page = pdf[number - 1]
                width, height = page.get_size()  # points: 1/72 inch
                scale = min(ocr.DPI / 72, (ocr.MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
                image = page.render(scale=scale, grayscale=True).to_pil()
                page.close()
            except pdfium.PdfiumError as e:
                raise _RenderError(f"page {number} could not be rendered for OCR ({one_line(e)})") from e
            yield number, image
    finally:
        pdf.close()


def _outline_by_page(pdf: Any) -> dict[int, tuple[str, ...]]:
    """Map page number -> heading path of the last outline (bookmark) entry starting on that page."""
    result: dict[int, tuple[str, ...]] = {}
    trail: list[str] = []
    try:
        for item in pdf.get_toc(max_depth=8):
            title = " ".join(str(item.title or "").split())
            del trail[item.level:]
            trail.append(title)
            if title and item.page_index is not None and item.page_index >= 0:
                result[item.page_index + 1] = tuple(t for t in trail if t)
    except Exception:  # a broken outline is common and never worth failing a file for
        return {}
    return result


SNIFF_BYTES = 1024  # readers take a PDF whose %PDF header or %%EOF marker lies this close to its start or end


def _unopened(path: Path, e: BaseException) -> str:
    """Why PDFium could not open `path`, told from its first and last bytes where they say more than
    PDFium's 'Data format error': another kind of file, or a PDF cut short."""
    reason = _reason(e)
    if "format" not in reason.lower():  # 'File access error' and the like say it themselves
        return f"unreadable PDF: {reason}"
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
            f.seek(max(0, os.fstat(f.fileno()).st_size - SNIFF_BYTES))
            tail = f.read()
    except OSError:
        return f"unreadable PDF: {reason}"
    if b"%PDF" not in head:
        return "not a PDF (it does not start with %PDF)"
    if b"%%EOF" not in tail:
        return "unreadable PDF: truncated (it does not end with %%EOF)"
    return f"unreadable PDF: corrupt ({reason})"


def _reason(e: BaseException) -> str:
    """PDFium's message without its boilerplate: 'Data format error', 'File access error'."""
    text = one_line(e)
    inner = re.search(r"\(PDFium: ([^)]*)\)", text)
    return inner.group(1).rstrip(".") if inner else text

