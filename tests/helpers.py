"""Test documents made on the fly (Markdown, Word and PDF files with known content), and the fast
unit layer's stand-ins: `FakeEmbedder` and `ScriptedLLM`, real subclasses of the seams."""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kb.embed import EMBEDDERS
from kb.embed.base import Embedder
from kb.ingest.formats.ocr import INSTALL
from kb.llm.base import LLM, GenerationOptions, Prompt

FAKE_MODEL = "fake-hash"  # KnowledgeBase.open(..., model=FAKE_MODEL, backend="fake"): no model is loaded
FAKE = {"model": FAKE_MODEL, "backend": "fake"}

# Tesseract on PATH (where kb looks for it): every test that needs real OCR takes `needs_tesseract`,
# so without it they skip with the reason instead of failing.
TESSERACT = shutil.which("tesseract") is not None and subprocess.run(
    ["tesseract", "--version"], capture_output=True).returncode == 0
needs_tesseract = pytest.mark.skipif(not TESSERACT, reason="Debian's tesseract-ocr is not installed")
# Why a PDF of two blank pages is refused: tesseract read them and found nothing, or it is not there to read them.
BLANK_SCAN_REASON = ("no extractable text in 2 page(s), and OCR found none" if TESSERACT else
                     "no text layer in 2 page(s), and OCR failed: OCR needs tesseract, which is not installed: "
                     + INSTALL)


class FakeEmbedder(Embedder):
    """Deterministic vectors without a model: words and word pairs hashed into 256 dimensions, so
    texts that share words are close (cosine) and texts that share none are orthogonal. Chunking
    counts whitespace-separated words with a real `tokenizers` word-level tokenizer."""

    backend = "fake"
    thread_safe = True
    DIMENSIONS = 256

    def __init__(self, model: str = FAKE_MODEL, *, device: str = "cpu", batch_size: int = 0):
        self.model_id = model
        self.batch_size = batch_size or 32
        self.calls = 0  # embed_batch calls, for tests that check what was (not) re-embedded

    @property
    def dimensions(self) -> int:
        return self.DIMENSIONS

    @property
    def max_seq_length(self) -> int:
        return 256

    def tokenizer(self) -> Any:
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import Whitespace

        tok = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        tok.pre_tokenizer = Whitespace()
        return tok

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feature, weight in [*((w, 1.0) for w in words), *((f"{a} {b}", 0.5) for a, b in zip(words, words[1:]))]:
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
                out[row, h % self.DIMENSIONS] += weight if h >> 63 else -weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


EMBEDDERS.register("fake", FakeEmbedder)


class ScriptedLLM(LLM):
    """An LLM that says what a test needs said (a small real model cannot be made to invent a source
    number or refuse on cue): a real subclass of the seam with a fixed answer, streamed word by word."""

    backend = "scripted"

    def __init__(self, answer: str, window: int = 4096, *, overflow_at: int | None = None):
        self.answer, self.window, self.model_name = answer, window, "fixed"
        self.prompts: list[Prompt] = []
        self.overflow_at = overflow_at  # refuse prompts longer than this, as a server with a smaller window does

    @property
    def context_window(self) -> int:
        return self.window

    def learn_context_window(self, n: int) -> bool:
        self.window = n
        return True

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        from kb.llm.base import ContextOverflowError

        self.prompts.append(prompt)
        if self.overflow_at is not None and self.count_prompt_tokens(prompt) > self.overflow_at:
            raise ContextOverflowError("prompt too long", context_window=self.overflow_at)
        yield from re.findall(r"\S+\s*", self.answer)


# Why kb quoted the passages instead of a model's answer (kb/answer/generate.py): the reasons a small
# model's answer is set aside.
SET_ASIDE = ("returned an empty answer", "gave an answer that cites none of the sources",
             "answer is not supported by the sources it cites")


def assert_checkable(answer: dict[str, Any], llm_name: str) -> None:
    """What a reader gets from a small real model is something they can check, whatever it wrote.
    Gemma 3 270M's greedy output moves with the CPU and the llama.cpp build (docs/llms.md: answers
    repeat per build, not across builds; on one machine it echoed kb's rules, on another it stopped
    at once), so a test asserts what kb makes of any outcome: the model's answer with citations of the
    sources it was given, its "not found", or the passages quoted with the reason its answer was set
    aside. `answer` is an answer's JSON (`Answer.to_json()`, the server's answer object)."""
    numbers = {s["n"] for s in answer["sources"]}
    if answer["mode"] == "llm":
        assert answer["llm"] == llm_name and answer["citations"] and answer["llm_error"] is None
        assert {c["n"] for c in answer["citations"]} <= numbers
    elif answer["mode"] == "extractive":
        error = answer["llm_error"] or ""
        assert answer["llm"] is None and error.startswith(llm_name) and error.endswith(SET_ASIDE), error
        assert answer["found"] and answer["citations"] and {c["n"] for c in answer["citations"]} <= numbers
    else:
        assert answer["mode"] == "not_found" and not answer["found"] and not answer["citations"], answer["mode"]


RUNBOOK = """---
title: Payments runbook
owner: sre-team
---

# Payments runbook

Intro paragraph about the payments service.

## Incident response

When the payment gateway returns error 5031, page the on-call engineer and fail over to the
secondary region named quokka-west.

```bash
kubectl rollout restart deployment/payments
kubectl get pods -l app=payments
```

## Capacity

| Region | Peak TPS | Headroom |
|--------|----------|----------|
| east   | 1200     | 30%      |
| west   | 800      | 45%      |
"""


def write_markdown(path: Path, text: str = RUNBOOK) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_docx(path: Path) -> Path:
    """A handbook with a title, two heading levels, a list and a table."""
    import docx

    path.parent.mkdir(parents=True, exist_ok=True)
    d = docx.Document()
    d.core_properties.title = "Employee handbook"
    d.add_heading("Employee handbook", level=1)
    d.add_paragraph("Welcome to the company.")
    d.add_heading("Travel policy", level=2)
    d.add_paragraph("Economy class is required for flights shorter than six hours.")
    d.add_paragraph("Book through the portal", style="List Bullet")
    d.add_paragraph("Keep every receipt", style="List Bullet")
    d.add_heading("Expense limits", level=2)
    table = d.add_table(rows=3, cols=2)
    for row, (a, b) in zip(table.rows, [("Item", "Limit"), ("Hotel night", "$240"), ("Dinner", "$75")]):
        row.cells[0].text, row.cells[1].text = a, b
    d.add_paragraph("Limits are reviewed every April.")
    d.save(str(path))
    return path


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A real PDF (reportlab) with one given text per page."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    path.parent.mkdir(parents=True, exist_ok=True)
    c = canvas.Canvas(str(path), pagesize=letter)
    for text in pages:
        y = 720
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers the tests start, or to point a probe at)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any], grace: float = 15) -> None:
    """End a server process a test started: SIGTERM, then SIGKILL if it lingers (bounded waits)."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def lite_server(data_dir: Path, log: Path | None = None) -> Iterator[str]:
    """`milvus-lite server` over `data_dir` on 127.0.0.1 and a free port, one request at a time (Lite's
    engine takes one writer at a time: README, team section); yields its URI, stops it after."""
    import os
    import shutil
    import sys
    import time

    exe = shutil.which("milvus-lite", path=os.path.dirname(sys.executable))
    assert exe, f"milvus-lite is not installed beside {sys.executable}"
    port = free_port()
    out = log.open("w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([exe, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
                             "--max-workers", "1"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "milvus-lite server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def sigint_as_in_a_terminal() -> None:
    """A `preexec_fn` for a child the test sends Ctrl-C: SIGINT as a terminal delivers it. A runner may
    start the tests with SIGINT ignored (a background job's), and a child inherits that, so kb would
    rightly ignore the Ctrl-C the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
