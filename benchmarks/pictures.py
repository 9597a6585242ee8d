"""OCR per picture in a document: a deck of picture-only slides, parsed with OCR and without.

    python -m benchmarks.pictures [--slides N] [--size 1280x720 1920x1080] [--json] [--out FILE]

For each size, a `.pptx` of N slides is written (python-pptx), each slide one distinct picture of a
slide's worth of text (a title and eight bullet lines of words drawn from a seeded generic vocabulary,
Pillow's own font at a size that fills the picture as a slide does), and parsed by kb's `.pptx` parser
twice in this process: with `--ocr never` (reading the deck alone) and `--ocr auto` (each picture read
by tesseract, one thread, as a kb worker does). Seconds per picture = (auto - never) / N. `words` is
the share of the drawn words found in the text OCR gave. Results go to benchmarks/results/pictures.json;
benchmarks/OCR.md has them.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine, save

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "pictures.json"
VOCABULARY = ("revenue margin customer region quarter growth target plan budget team product launch market "
              "partner service support review risk cost delivery schedule network design report update "
              "training policy security account invoice supplier contract project milestone forecast").split()


def slide_text(rng: random.Random) -> list[str]:
    title = " ".join(rng.choice(VOCABULARY).capitalize() for _ in range(4))
    return [title] + ["- " + " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(5, 8))) for _ in range(8)]


def picture(lines: list[str], size: tuple[int, int]) -> bytes:
    """The lines drawn as a slide shows them: the title larger, the bullets below, black on white."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    scale = height / 720
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((int(60 * scale), int(40 * scale)), lines[0], fill="black",
              font=ImageFont.load_default(size=int(44 * scale)))
    body = ImageFont.load_default(size=int(28 * scale))
    for i, line in enumerate(lines[1:]):
        draw.text((int(80 * scale), int((140 + 64 * i) * scale)), line, fill=(20, 20, 20), font=body)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def write_deck(path: Path, texts: list[list[str]], size: tuple[int, int]) -> None:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    for lines in texts:
        slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: the picture is the slide
        slide.shapes.add_picture(io.BytesIO(picture(lines, size)), 0, 0, width=Inches(10))
    deck.save(str(path))


def run(slides: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    from kb.ingest.formats import ocr
    from kb.ingest.formats.slides import PptxParser

    rng = random.Random(seed)
    texts = [slide_text(rng) for _ in range(slides)]
    with tempfile.TemporaryDirectory(prefix="kb-bench-pictures-") as tmp:
        path = Path(tmp) / "deck.pptx"
        write_deck(path, texts, size)
        timings = {}
        for mode in ("never", "auto"):
            ocr.configure(mode)
            started = time.perf_counter()
            try:
                doc = PptxParser().parse(path)
            except Exception as e:  # `never`: a deck of pictures has no text, which is the point
                doc = None
                if mode == "auto":
                    raise SystemExit(f"OCR failed: {e}") from e
            timings[mode] = time.perf_counter() - started
        ocr.configure()
    assert doc is not None
    found = " ".join(b.text for b in doc.blocks).lower().split()
    drawn = [w.lower() for lines in texts for line in lines for w in line.split() if w != "-"]
    have = set(found)
    per = (timings["auto"] - timings["never"]) / slides
    read = doc.metadata.get("ocr_pages")
    return {"size": f"{size[0]}x{size[1]}", "slides": slides, "never_s": round(timings["never"], 3),
            "auto_s": round(timings["auto"], 2), "s_per_picture": round(per, 2),
            "words": round(sum(w in have for w in drawn) / len(drawn), 4),
            "slides_with_text": len(read) if isinstance(read, list) else 0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slides", type=int, default=10, help="picture-only slides per deck")
    parser.add_argument("--size", nargs="+", default=["1280x720", "1920x1080"], help="picture sizes, WxH")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--out", type=Path, default=OUT, help="where the results are written")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.size]
    runs = [run(args.slides, (w, h), args.seed) for w, h in sizes]
    results: dict[str, Any] = {"runs": runs, "seed": args.seed, "machine": _machine()}
    results["command"] = "python -m benchmarks.pictures " + " ".join(argv if argv is not None else sys.argv[1:])
    if save(results, args.out, args.json):
        return
    print(f"{'size':>10} {'slides':>7} {'never s':>8} {'auto s':>8} {'s/picture':>10} {'words':>7}")
    for r in runs:
        print(f"{r['size']:>10} {r['slides']:>7} {r['never_s']:>8.2f} {r['auto_s']:>8.1f} {r['s_per_picture']:>10.2f} "
              f"{r['words']:>7.1%}")
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m['load_1m']} at the end; written to {args.out}")


if __name__ == "__main__":
    main()
