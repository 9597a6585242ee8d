"""Images of text (scans, photos of pages, screenshots) read by OCR: one page per image, one per frame of
a multi-page TIFF; `.heic` photos when pillow-heif is installed (the `heic` extra)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from kb.errors import ParseError, install_command, one_line
from kb.ingest.base import paragraphs
from kb.ingest.formats import ocr
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

_HEIC = (".heic", ".heif") if importlib.util.find_spec("pillow_heif") is not None else ()


class ImageParser:
    file_type = "image"
    extensions = (".png", ".jpg", ".jpeg", ".tiff", ".tif", ".bmp", ".webp", *_HEIC)

    def parse(self, path: Path) -> ParsedDocument:
        if ocr.current.mode == "never":
            raise ParseError("image not read: OCR is off (kb ingest --ocr auto reads it)")
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from PIL import Image

        if path.suffix.lower() in (".heic", ".heif"):
            _register_heif()
        try:
            with Image.open(path) as image:
                return self._parse(path, image)
        except (ParseError, PermissionError):
            raise
        except Image.DecompressionBombError as e:
            raise ParseError(f"image too large to read: {one_line(e)}") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:  # PIL's errors for broken and truncated files
            raise ParseError(f"unreadable image: {one_line(e)}") from e

    def _parse(self, path: Path, image: Any) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from PIL import ImageOps, ImageSequence

        blocks: list[Block] = []
        read: list[int] = []
        timed_out: list[int] = []
        frames = 0
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            frames = number
            frame.load()  # a truncated file fails here, with PIL's reason
            upright = ImageOps.exif_transpose(frame)  # photos taken sideways carry their turn in EXIF
            try:
                found = ocr.recognize(upright)
            except ocr.OcrTimeout:
                timed_out.append(number)
                continue
            page = [b for para in found for b in paragraphs(para, (), number)]
            if page:
                read.append(number)
                blocks.extend(page)
        metadata: dict[str, Any] = {"ocr_pages": read}
        if timed_out:
            warning = f"page(s) {ocr.page_list(timed_out)} dropped: OCR took over {ocr.PAGE_TIMEOUT_S:g} s"
            log.warning("kb: %s: %s", path, warning)
            metadata["warnings"] = [warning]
        if not blocks:
            why = f"OCR timed out (over {ocr.PAGE_TIMEOUT_S:g} s a page)" if timed_out else "OCR found no text"
            raise ParseError(f"no text in the image: {why}")
        return ParsedDocument(title=path.stem, blocks=blocks, pages=frames, metadata=metadata)


def _register_heif() -> None:
    try:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import pillow_heif
    except ImportError as e:
        raise ParseError(f"HEIC photos need pillow-heif: {install_command('heic')}") from e
    pillow_heif.register_heif_opener()

