"""`KBRetriever`: langchain-tests' standard retriever suite, citations, k, filters, async, LCEL chains."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import re
import runpy
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core", reason='needs the "langchain" extra')

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel, ParrotFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from pydantic import ValidationError

from kb import KBError, KnowledgeBase
from kb.errors import ConfigError, DependencyError
from kb.filters import Filters
from kb.integrations.langchain import KBRetriever, MissingExtraError, hit_to_document
from kb.types import Hit
from tests.conftest import REPO

APPLE_QUESTION = "What were Apple's total net sales for the quarter ended July 1, 2023?"
METADATA_KEYS = {"source", "page", "page_end", "section", "score", "rank", "chunk_id", "file_type", "citation"}
EXAMPLE = REPO / "examples" / "langchain_lcel.py"


@pytest.fixture(scope="module")
def kb(ingested: Path) -> Iterator[KnowledgeBase]:
    """One open KnowledgeBase over the session's ingested corpus (one model load for the module)."""
    with KnowledgeBase.open(ingested) as opened:
        yield opened


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{i}] {d.metadata['citation']}\n{d.page_content}" for i, d in enumerate(docs, 1))


# --- langchain-tests' standard suite ---------------------------------------------------------------
try:
    from langchain_tests.integration_tests import RetrieversIntegrationTests
except ImportError:  # pragma: no cover - langchain-tests is in the "test" extra
    RetrieversIntegrationTests = None  # type: ignore[assignment,misc]

if RetrieversIntegrationTests is not None:

    @pytest.mark.slow
    @pytest.mark.needs_eval
    class TestKBRetrieverStandard(RetrieversIntegrationTests):
        """The standard retriever contract, over a real ingested knowledge base."""

        @pytest.fixture(autouse=True)
        def _shared_kb(self, kb: KnowledgeBase) -> None:
            self.kb = kb

        @property
        def retriever_constructor(self) -> type[BaseRetriever]:
            return KBRetriever

        @property
        def retriever_constructor_params(self) -> dict[str, object]:
            return {"knowledge_base": self.kb, "k": 2}

        @property
        def retriever_query_example(self) -> str:
            return APPLE_QUESTION


# --- citations and metadata ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_known_passage_cites_its_pdf_page(kb: KnowledgeBase, corpus: Path) -> None:
    from pypdf import PdfReader

    docs = KBRetriever.from_kb(kb, k=1, path="*AAPL*").invoke("iPhone net sales decreased during the third quarter")
    assert len(docs) == 1
    doc = docs[0]
    meta = doc.metadata
    assert set(meta) == METADATA_KEYS  # plus "also" when the same passage is in other files
    assert meta["source"].endswith("2023 Q3 AAPL.pdf")
    assert meta["file_type"] == "pdf"
    assert (meta["page"], meta["page_end"]) == (19, 19)
    assert "Item 2. Management" in meta["section"]
    assert "Total net sales $ 81,797" in doc.page_content
    assert "iPhone net sales decreased" in doc.page_content
    assert isinstance(meta["chunk_id"], int) and doc.id == str(meta["chunk_id"])
    assert isinstance(meta["score"], float) and meta["score"] > 0
    assert meta["rank"] == 1
    assert meta["citation"] == f"{meta['source']} p.19 § {meta['section']}"
    # The page the citation names really holds the passage (read independently of kb's parser).
    page_text = PdfReader(corpus / "2023 Q3 AAPL.pdf").pages[meta["page"] - 1].extract_text()
    assert "iPhone net sales decreased" in page_text and "81,797" in page_text


@pytest.mark.slow
@pytest.mark.needs_eval
def test_documents_match_kb_search(kb: KnowledgeBase) -> None:
    docs = KBRetriever.from_kb(kb, k=5).invoke("payment gateway error failover")
    hits = kb.search("payment gateway error failover", k=5)
    assert [d.id for d in docs] == [str(h.chunk_id) for h in hits]
    assert [d.page_content for d in docs] == [h.text for h in hits]
    assert [d.metadata["rank"] for d in docs] == [1, 2, 3, 4, 5]
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    top = docs[0]
    assert top.metadata["source"].endswith("runbook.md")
    assert top.metadata["page"] is None and top.metadata["page_end"] is None
    assert top.metadata["section"] == "Payments runbook > Incident response"
    assert "quokka-west" in top.page_content


# --- k and filters -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_k_default_field_and_call(kb: KnowledgeBase) -> None:
    assert len(KBRetriever.from_kb(kb).invoke("net sales")) == 4
    retriever = KBRetriever.from_kb(kb, k=6)
    assert len(retriever.invoke("net sales")) == 6
    assert len(retriever.invoke("net sales", k=2)) == 2
    assert retriever.k == 6  # a per-call k does not stick


@pytest.mark.slow
@pytest.mark.needs_eval
def test_filters(kb: KnowledgeBase) -> None:
    q = "revenue and net income"
    docx = KBRetriever.from_kb(kb, k=3, file_type="docx").invoke(q)
    assert docx and all(d.metadata["file_type"] == "docx" for d in docx)

    msft = KBRetriever.from_kb(kb, k=5, filters=Filters(path="*MSFT*")).invoke(q)
    assert len(msft) == 5 and all("MSFT" in d.metadata["source"] for d in msft)

    aapl = KBRetriever.from_kb(kb, k=5, path="*AAPL*", pages=(18, 19))
    for d in aapl.invoke(q):
        assert "AAPL" in d.metadata["source"]
        assert d.metadata["page"] <= 19 and (d.metadata["page_end"] or d.metadata["page"]) >= 18

    # Per-call filters lay over the retriever's own: path stays, pages change.
    for d in aapl.invoke(q, pages="1-5"):
        assert "AAPL" in d.metadata["source"] and d.metadata["page"] <= 5

    sections = KBRetriever.from_kb(kb, k=2, section="expense limits").invoke("hotel")
    assert [d.metadata["section"] for d in sections] == ["Employee handbook > Expense limits"]

    # A filter nothing passes gives no documents, not an error.
    assert KBRetriever.from_kb(kb, path="*no-such-file*").invoke(q) == []


def test_filter_keywords_fold_into_filters(tmp_path: Path) -> None:
    r = KBRetriever.from_kb(tmp_path, path="*AAPL*", pages="3-7")
    assert r.filters == Filters(path="*AAPL*", pages=(3, 7))
    r = KBRetriever.from_kb(tmp_path, filters=Filters(section="Risk", pages=(1, 2)), file_type="pdf", pages=4)
    assert r.filters == Filters(section="Risk", file_type="pdf", pages=(4, 4))
    assert KBRetriever.from_kb(tmp_path).filters is None
    assert KBRetriever(knowledge_base=str(tmp_path), pages=[2, 9]).filters == Filters(pages=(2, 9))


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="k must be at least 1"):
        KBRetriever.from_kb(tmp_path, k=0)
    with pytest.raises(ValidationError, match="top_k"):
        KBRetriever.from_kb(tmp_path, top_k=3)  # a typo is not silently ignored
    with pytest.raises(ConfigError, match="page range"):
        KBRetriever.from_kb(tmp_path, pages="seven")
    with pytest.raises(KBError, match="empty"):
        KBRetriever.from_kb(tmp_path / "nothing-here").invoke("anything")


# --- search mode: passed through only when set ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_mode_is_passed_only_when_set(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    real = kb.search  # what the retriever searches through, from any thread
    accepted = inspect.signature(kb.search).parameters
    calls: list[dict[str, object]] = []

    def spy(query: str, k: int = 5, **options: object):  # type: ignore[no-untyped-def]
        calls.append(dict(options))
        return real(query, k, **{name: value for name, value in options.items() if name in accepted})

    monkeypatch.setattr(kb, "search", spy)
    KBRetriever.from_kb(kb, k=1).invoke("net sales")
    assert "mode" not in calls[-1]
    KBRetriever.from_kb(kb, k=1, mode="dense").invoke("net sales")
    assert calls[-1]["mode"] == "dense"
    KBRetriever.from_kb(kb, k=1, mode="dense").invoke("net sales", mode="keyword")
    assert calls[-1]["mode"] == "keyword"
    KBRetriever.from_kb(kb, k=1, search_kwargs={"tuning": None}).invoke("net sales")
    assert calls[-1] == {"tuning": None, "filters": None}


@pytest.mark.slow
@pytest.mark.needs_eval
@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_each_search_mode(kb: KnowledgeBase, mode: str) -> None:
    if "mode" not in inspect.signature(kb.search).parameters:
        pytest.skip("KnowledgeBase.search has no mode= yet")
    docs = KBRetriever.from_kb(kb, k=3, mode=mode, path="*AAPL*").invoke("total net sales")
    assert len(docs) == 3 and all("AAPL" in d.metadata["source"] for d in docs)


# --- async and concurrency ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
async def test_ainvoke_matches_invoke_under_concurrency(kb: KnowledgeBase) -> None:
    retriever = KBRetriever.from_kb(kb, k=3)
    other = KBRetriever.from_kb(kb, k=2, file_type="markdown")  # a second retriever over the same KB
    queries = [APPLE_QUESTION, "Microsoft cloud revenue", "hotel night limit", "payment gateway error 5031"]
    expected = [[d.id for d in retriever.invoke(q)] for q in queries]
    expected_other = [[d.id for d in other.invoke(q)] for q in queries]

    results = await asyncio.gather(*[retriever.ainvoke(q) for q in queries * 2], *[other.ainvoke(q) for q in queries])
    got, got_other = results[: len(queries) * 2], results[len(queries) * 2 :]
    assert [[d.id for d in docs] for docs in got] == expected * 2
    assert [[d.id for d in docs] for docs in got_other] == expected_other

    # Per-call options reach the async path too.
    one = await retriever.ainvoke(APPLE_QUESTION, k=1, path="*AAPL*")
    assert len(one) == 1 and "AAPL" in one[0].metadata["source"]


@pytest.mark.slow
@pytest.mark.needs_eval
def test_batch_in_threads(kb: KnowledgeBase) -> None:
    retriever = KBRetriever.from_kb(kb, k=2)
    queries = ["net sales", "operating income", "travel policy", "kubectl rollout restart"] * 2
    expected = [[d.id for d in retriever.invoke(q)] for q in queries]
    got = retriever.batch(queries, config={"max_concurrency": 4})
    assert [[d.id for d in docs] for docs in got] == expected


# --- chains -----------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
async def test_lcel_chain_puts_retrieved_text_in_the_prompt(kb: KnowledgeBase) -> None:
    retriever = KBRetriever.from_kb(kb, k=3, path="*AAPL*")
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer from the numbered sources only, and cite them like [1]."),
            ("human", "Sources:\n{context}\n\nQuestion: {question}"),
        ]
    )
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | ParrotFakeChatModel()
    docs = retriever.invoke(APPLE_QUESTION)
    for answer in (chain.invoke(APPLE_QUESTION), await chain.ainvoke(APPLE_QUESTION)):
        text = answer.content  # the parrot model answers with the prompt it was given
        assert f"Question: {APPLE_QUESTION}" in text
        for i, d in enumerate(docs, 1):
            assert f"[{i}] {d.metadata['citation']}\n{d.page_content}" in text
        assert "Total net sales $ 81,797" in text


@pytest.mark.slow
@pytest.mark.needs_eval
def test_chain_with_a_canned_chat_model_returns_answer_and_sources(kb: KnowledgeBase) -> None:
    seen: list[str] = []

    def tap(value):  # type: ignore[no-untyped-def]
        seen.append(value.to_string())
        return value

    retriever = KBRetriever.from_kb(kb, k=2)
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="Total net sales were $81,797 million [1].")]))
    prompt = ChatPromptTemplate.from_template("Sources:\n{context}\n\nQuestion: {question}")
    answer_chain = (
        RunnablePassthrough.assign(context=lambda x: format_docs(x["docs"]))
        | prompt
        | RunnableLambda(tap)
        | llm
        | StrOutputParser()
    )
    chain = RunnablePassthrough.assign(docs=lambda x: retriever.invoke(x["question"])).assign(answer=answer_chain)
    out = chain.invoke({"question": APPLE_QUESTION})
    assert out["answer"] == "Total net sales were $81,797 million [1]."
    assert len(out["docs"]) == 2 and all(d.page_content in seen[0] for d in out["docs"])


@pytest.mark.slow
@pytest.mark.needs_eval
def test_example_script_runs(
    ingested: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KB_DIR", str(ingested))
    namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    namespace["retriever"].close()
    out = capsys.readouterr().out
    assert out.startswith("Sources:\n[1] ") and "2023 Q3 AAPL.pdf p." in out
    assert "Total net sales $ 81,797" in out and APPLE_QUESTION in out


def docs_langchain_example(readme: str) -> str | None:
    """The first Python block after the LangChain page's heading."""
    heading = re.search(r"^#+ .*LangChain.*$", readme, re.MULTILINE)
    block = (
        re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL).search(readme, heading.end())
        if heading
        else None
    )
    return block.group(1) if block else None


@pytest.mark.slow
@pytest.mark.needs_eval
def test_docs_example_is_the_example_script(
    ingested: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = docs_langchain_example((REPO / "docs" / "langchain.md").read_text(encoding="utf-8"))
    if code is None:
        pytest.skip("docs/langchain.md has no LangChain section yet")
    script = EXAMPLE.read_text(encoding="utf-8")
    assert code.strip() in script, "the LangChain example of docs/langchain.md and examples/langchain_lcel.py differ"
    monkeypatch.setenv("KB_DIR", str(ingested))
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(code, "docs/langchain.md", "exec"), namespace)
    namespace["retriever"].close()  # type: ignore[attr-defined]
    assert "Total net sales $ 81,797" in capsys.readouterr().out


# --- ownership ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_opened_from_a_path_and_closed(ingested: Path, kb: KnowledgeBase) -> None:
    assert kb.catalog is not None  # opened, so "stays open" below means something
    with KBRetriever.from_kb(ingested, k=1) as retriever:
        assert retriever.kb is not kb and retriever.kb.path == kb.path
        assert retriever.invoke("hotel night limit")[0].metadata["source"].endswith("handbook.docx")
        opened = retriever.kb
    assert not opened.is_open  # closed by the retriever that opened it
    KBRetriever.from_kb(kb).close()
    assert kb.is_open  # one passed in stays open


# --- the core without langchain ---------------------------------------------------------------------------------
BLOCK_LANGCHAIN = textwrap.dedent(
    """
    import sys

    class BlockLangChain:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("langchain", "langchain_core", "langchain_tests", "langsmith"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockLangChain())
    """
)


def test_core_imports_and_works_without_langchain(tmp_path: Path) -> None:
    code = BLOCK_LANGCHAIN + textwrap.dedent(
        f"""
        import kb
        from kb.filters import Filters
        with kb.KnowledgeBase.open({str(tmp_path / "kb")!r}) as base:
            assert base.status().documents == 0
        import kb.integrations
        assert not [m for m in sys.modules if m.split(".")[0] in ("langchain_core", "langchain")], sorted(sys.modules)

        from kb.errors import DependencyError
        try:
            import kb.integrations.langchain
        except ImportError as e:
            assert isinstance(e, DependencyError), type(e)
            assert "pip install -e '.[langchain]' (in the kb checkout)" in str(e), str(e)
            print("hint:", e)
        else:
            raise AssertionError("kb.integrations.langchain imported without langchain-core")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "hint: langchain-core is not available" in proc.stdout


def test_hit_to_document() -> None:
    hit = Hit(
        rank=2, score=0.5, chunk_id=42, source="a.pdf", page=3, page_end=4, section="Risk", text="T", file_type="pdf"
    )
    doc = hit_to_document(hit)
    assert doc.id == "42" and doc.page_content == "T"
    assert doc.metadata == {
        "source": "a.pdf",
        "page": 3,
        "page_end": 4,
        "section": "Risk",
        "score": 0.5,
        "rank": 2,
        "chunk_id": 42,
        "file_type": "pdf",
        "citation": "a.pdf p.3-4 § Risk",
    }
    if "also" in {f.name for f in dataclasses.fields(Hit)}:
        hit.also = ["copy/a.pdf"]  # type: ignore[attr-defined]
        assert hit_to_document(hit).metadata["also"] == ["copy/a.pdf"]


def test_missing_extra_error_is_both_kinds() -> None:
    assert issubclass(MissingExtraError, ImportError) and issubclass(MissingExtraError, DependencyError)
