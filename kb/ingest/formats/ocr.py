"""The OCR seam: an image in, its paragraphs out (tesseract through pytesseract), and the rule for
when a page's own text is not worth keeping. Parsers of scans and photos call `recognize`.

The OCR mode and language are settings (`ocr`, `ocr_lang`); parsers run in worker processes and keep
the `parse(path)` signature, so the worker sets them here (`configure`) before it parses a file.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kb.config import OCR_MODES as MODES
from kb.errors import ConfigError, ParseError, one_line
from kb.ingest.formats.ocr_layout import paragraphs

PAGE_TIMEOUT_S = 120.0  # a page tesseract has not read by then is dropped (with a warning), not waited on
DPI = 300  # PDF pages are rendered at this resolution: tesseract reads body text best at 300 dpi
MAX_PIXELS = 60_000_000  # a poster-sized page is rendered at a lower resolution rather than at 300 dpi
INSTALL = "install Debian's tesseract-ocr and tesseract-ocr-eng (apt-get install tesseract-ocr tesseract-ocr-eng)"

# "Usable text": enough words, and not mostly characters no reader can use. Both bounds are loose on
# purpose: a page that fails them holds almost nothing a search could find, whatever the corpus.
MIN_WORDS = 3
MAX_BAD_SHARE = 0.10
_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters, in any script
_LANG = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class OcrSettings:
    mode: str = "auto"  # auto: pages without usable text | always: every page | never
    lang: str = "eng"  # tesseract's language(s), "eng+deu"


current = OcrSettings()


def configure(mode: str = "auto", lang: str = "eng") -> None:
    """Set the OCR mode and language for the parsers of this process (the worker does, per file)."""
    global current
    current = OcrSettings(check_mode(mode), lang or "eng")


def check_mode(mode: str | None) -> str:
    mode = (mode or "auto").lower()
    if mode not in MODES:
        raise ConfigError(f"unknown OCR mode {mode!r} (known: {', '.join(MODES)})")
    return mode


class OcrUnavailable(ParseError):
    """OCR cannot run at all here (no tesseract, or not the language asked for): no page will be read."""


class OcrTimeout(ParseError):
    """One page took longer than `PAGE_TIMEOUT_S`: that page is dropped, the others are read."""


def usable(text: str) -> bool:
    """Whether a page's text layer is worth keeping instead of OCR: at least `MIN_WORDS` words, and
    at most `MAX_BAD_SHARE` of its characters unreadable (replacement characters, private-use glyph
    codes, control codes: what a PDF whose fonts have no character map gives)."""
    if len(_WORD.findall(text)) < MIN_WORDS:
        return False
    chars = [c for c in text if not c.isspace()]
    bad = sum(1 for c in chars if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cc", "Cn", "Cs"))
    return bad <= MAX_BAD_SHARE * len(chars)


@lru_cache(maxsize=8)
def _languages(binary: str) -> frozenset[str]:
    # lazy: the pipeline imports this module on every start; PIL and tesseract load with the first OCR
    import pytesseract

    return frozenset(pytesseract.get_languages(config=""))


def check_lang(lang: str) -> None:
    """Raise `OcrUnavailable` unless tesseract is installed with every language in `lang` ("eng+deu")."""
    binary = shutil.which("tesseract")
    if binary is None:
        raise OcrUnavailable(f"OCR needs tesseract, which is not installed: {INSTALL}")
    if not _LANG.match(lang):
        raise OcrUnavailable(f"OCR language {lang!r} is not a tesseract language list (e.g. 'eng' or 'eng+deu')")
    try:
        have = _languages(binary)
    except Exception as e:
        raise OcrUnavailable(f"tesseract does not run: {one_line(e, 150)} ({INSTALL})") from e
    missing = [code for code in lang.split("+") if code not in have]
    if missing:
        debian = " ".join(f"tesseract-ocr-{m.lower().replace('_', '-')}" for m in missing)
        raise OcrUnavailable(f"OCR language {'+'.join(missing)!r} is not installed for tesseract (it has: "
                             f"{', '.join(sorted(have)) or 'none'}); on Debian: apt-get install {debian}")


def recognize(image: Any, timeout: float = PAGE_TIMEOUT_S) -> list[str]:
    """The paragraphs tesseract reads in a PIL image, in its reading order (its blocks and paragraphs,
    lines kept; a table's rows read across: `kb.ingest.formats.ocr_layout`). Raises `OcrUnavailable` (no tesseract, or not its language) or `OcrTimeout`."""
    # lazy: the pipeline imports this module on every start; PIL and tesseract load with the first OCR
    import pytesseract

    lang = current.lang
    check_lang(lang)
    try:
        with _one_thread(pytesseract.pytesseract):
            data = pytesseract.image_to_data(_prepared(image), lang=lang, output_type=pytesseract.Output.DICT,
                                             timeout=timeout)
    except pytesseract.TesseractNotFoundError as e:
        raise OcrUnavailable(f"OCR needs tesseract, which is not installed: {INSTALL}") from e
    except pytesseract.TesseractError as e:  # a RuntimeError too: caught first
        raise ParseError(f"tesseract failed: {' '.join(str(e.message).split())[:200]}") from e
    except RuntimeError as e:  # pytesseract's timeout ("Tesseract process timeout")
        if "timeout" in str(e).lower():
            raise OcrTimeout(f"OCR gave up after {timeout:g} s") from e
        raise
    return paragraphs(data)


@contextmanager
def _one_thread(module: Any) -> Iterator[None]:
    """Run tesseract with one OpenMP thread unless OMP_THREAD_LIMIT says otherwise. Debian's build uses
    OpenMP, whose threads spin against each other and against kb's other workers: measured on 2 cores,
    a 300 dpi page took 9.9 s with the default and 2.0 s with one thread (tesseract's docs advise the
    same for running several at once). pytesseract 0.3 hands its module's `environ` to every tesseract
    it starts, so that is where the limit goes, for the call only."""
    saved = getattr(module, "environ", None)
    if saved is None:
        yield
        return
    module.environ = {"OMP_THREAD_LIMIT": "1", **os.environ}
    try:
        yield
    finally:
        module.environ = saved


def _prepared(image: Any) -> Any:
    """An image in a mode tesseract takes (8-bit grey or colour): 16-bit scans, CMYK, palettes converted."""
    if image.mode in ("1", "L", "RGB"):
        return image
    if image.mode in ("RGBA", "LA", "P", "PA"):  # transparent parts become white, not black
        # lazy: the pipeline imports this module on every start; PIL and tesseract load with the first OCR
        from PIL import Image

        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # lazy: the pipeline imports this module on every start; PIL and tesseract load with the first OCR
        from PIL import ImageOps

        return ImageOps.autocontrast(image.convert("I").point(lambda v: v / 256).convert("L"))
    return image.convert("RGB")


def page_list(pages: list[int]) -> str:
    """[2, 3, 4, 9] -> '2-4, 9': the pages a warning names."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(pages):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)
