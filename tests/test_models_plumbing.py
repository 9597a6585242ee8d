"""Other models than MiniLM, as plumbing (issue 32, item 5): query and passage prompts from a model's
config or its family, recorded with the index's vectors; int8 ONNX exports of the BERT, XLM-RoBERTa and
MPNet families; cross-encoder reranking through ONNX Runtime; `kb eval` over one knowledge base per
model. The models are tiny random-weight ones built here (`tests/tiny_models.py`): no download, and
nothing about their quality is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.cli.main import main
from kb.embed import EMBEDDERS
from kb.embed.prompts import Prompts, family_prompts, local_folder, read_prompts
from tests.helpers import FakeEmbedder, write_markdown


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the models here are folders: nothing is downloaded


def _st_config(folder: Path, **config: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


# --- where prompts come from --------------------------------------------------------------------
def test_prompts_come_from_the_models_config_as_sentence_transformers_reads_it(tmp_path: Path) -> None:
    named = _st_config(tmp_path / "a", prompts={"query": "query: ", "document": "passage: "})
    assert read_prompts(named, str(named)) == Prompts("query: ", "passage: ")
    # sentence-transformers' other passage names, and a default prompt for what has no name of its own
    passage = _st_config(tmp_path / "b", prompts={"query": "Q: ", "passage": "P: ", "corpus": "C: "})
    assert read_prompts(passage, "b") == Prompts("Q: ", "P: ")
    default = _st_config(tmp_path / "c", prompts={"query": "Q: ", "retrieval": "R: "}, default_prompt_name="retrieval")
    assert read_prompts(default, "c") == Prompts("Q: ", "R: ")
    # MiniLM-style configs: empty prompts are none
    empty = _st_config(tmp_path / "d", prompts={"query": "", "document": ""}, default_prompt_name=None)
    assert read_prompts(empty, "d") == Prompts()


def test_well_known_families_without_prompts_in_their_config_get_them_from_the_table(tmp_path: Path) -> None:
    e5 = Prompts("query: ", "passage: ")
    assert family_prompts("intfloat/e5-base-v2") == e5
    assert family_prompts("intfloat/multilingual-e5-small") == e5
    assert family_prompts("/models/E5-large") == e5  # a folder, by its name
    bge = Prompts("Represent this sentence for searching relevant passages: ", "")
    assert family_prompts("BAAI/bge-small-en-v1.5") == bge and family_prompts("BAAI/bge-base-en") == bge
    assert family_prompts("nomic-ai/nomic-embed-text-v1.5") == Prompts("search_query: ", "search_document: ")
    for other in ("sentence-transformers/all-MiniLM-L6-v2", "intfloat/e5-mistral-7b-instruct",
                  "intfloat/multilingual-e5-large-instruct", "BAAI/bge-m3", "thenlper/gte-small"):
        assert family_prompts(other) is None, other
    # the folder's own config wins over the table; without one, the table answers for the folder's name
    own = _st_config(tmp_path / "e5-small-v2", prompts={"query": "search: "})
    assert read_prompts(own, str(own)) == Prompts("search: ", "")
    bare = tmp_path / "multilingual-e5-base"
    bare.mkdir()
    assert read_prompts(bare, str(bare)) == e5 and local_folder(str(bare)) == bare


def test_a_model_that_leaves_its_prompt_out_of_pooling_is_refused_by_onnx(tmp_path: Path) -> None:
    """INSTRUCTOR-style pooling (include_prompt: false) is sentence-transformers' alone: the ONNX backend
    says so rather than make other vectors."""
    from kb.embed.onnx import OnnxEmbedder
    from kb.errors import EmbedderError

    model = _st_config(tmp_path / "instructor", prompts={"query": "Represent the question: "})
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True,
                                                                  "include_prompt": False}))
    with pytest.raises(EmbedderError, match="include_prompt: false.*--backend torch"):
        _ = OnnxEmbedder(str(model)).prompts
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    assert OnnxEmbedder(str(model)).prompts == Prompts("Represent the question: ", "")


# --- prompts at the Embedder seam and in the index ---------------------------------------------
class PromptedFake(FakeEmbedder):
    """The fake embedder with the prompts of its model folder, remembering what it embedded."""

    backend = "fake-prompted"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        self.seen: list[str] = []

    def model_prompts(self) -> Prompts:
        return read_prompts(local_folder(self.model_id), self.model_id)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return super().embed_batch(texts)


EMBEDDERS.register("fake-prompted", PromptedFake)


def _seen(kb: KnowledgeBase) -> list[str]:
    inner = getattr(kb.embedder, "inner", kb.embedder)
    assert isinstance(inner, PromptedFake)
    return inner.seen


def test_queries_and_passages_are_embedded_with_their_prompts_and_the_index_keeps_them(tmp_path: Path) -> None:
    model = _st_config(tmp_path / "model", prompts={"query": "query: ", "document": "passage: "})
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    with KnowledgeBase.open(tmp_path / "kb", model=str(model), backend="fake-prompted", workers=1) as kb:
        kb.ingest([str(docs)])
        assert _seen(kb) and all(t.startswith("passage: ") for t in _seen(kb))
        hits = kb.search("who approves refunds", k=2, mode="dense")
        assert hits and _seen(kb)[-1] == "query: who approves refunds"
        status = kb.status()
    assert status.prompts == {"query": "query: ", "passage": "passage: "}
    out = CliRunner().invoke(main, ["status", "--kb", str(tmp_path / "kb")])
    assert out.exit_code == 0, out.output
    assert "Prompts: query 'query: ' · passage 'passage: '" in out.stdout

    # The model's config changes: the knowledge base keeps embedding with the prompts its vectors were
    # made with (queries and new passages alike), until `kb reindex` re-embeds everything with the new ones.
    # A second reader (another process, a server) follows the reindex without a restart.
    _st_config(model, prompts={"query": "search_query: ", "document": "search_document: "})
    with KnowledgeBase.open(tmp_path / "kb", model=str(model), backend="fake-prompted", workers=1) as kb, \
            KnowledgeBase.open(tmp_path / "kb", model=str(model), backend="fake-prompted", workers=1) as reader:
        reader.search("who approves refunds", k=1, mode="dense")
        assert _seen(reader)[-1] == "query: who approves refunds"
        kb.search("who approves refunds", k=1, mode="dense")
        assert _seen(kb)[-1] == "query: who approves refunds"
        kb.reindex()
        assert kb.status().prompts == {"query": "search_query: ", "passage": "search_document: "}
        kb.search("who approves refunds", k=1, mode="dense")
        assert _seen(kb)[-1] == "search_query: who approves refunds"
        assert all(t.startswith("search_document: ") for t in _seen(kb)[1:-1])
        assert reader.reload_if_changed()
        reader.search("who approves refunds", k=1, mode="dense")
        assert _seen(reader)[-1] == "search_query: who approves refunds"


def test_chunks_leave_room_in_the_models_window_for_a_passage_prompt(tmp_path: Path) -> None:
    prompt = "Represent this passage of a report for the retrieval of answers to questions: "
    model = _st_config(tmp_path / "model", prompts={"document": prompt})
    docs = tmp_path / "docs"
    docs.mkdir()
    words = [f"word{i % 97}" for i in range(3000)]
    (docs / "long.md").write_text("# Long\n\n" + "\n\n".join(" ".join(words[i:i + 60]) + "." for i in range(0, 3000, 60)))
    with KnowledgeBase.open(tmp_path / "kb", model=str(model), backend="fake-prompted", workers=1) as kb:
        kb.ingest([str(docs)])
        tok, window = kb.embedder.tokenizer(), kb.embedder.max_seq_length
        lengths = [len(tok.encode(t).ids) for t in _seen(kb)]
    assert all(t.startswith(prompt) for t in _seen(kb)) and len(lengths) > 5
    assert window // 2 < max(lengths) <= window  # long chunks, prompt included, within the window (262 before)


def test_a_model_without_prompts_embeds_texts_as_they_are(kb: KnowledgeBase, tmp_path: Path) -> None:
    """The default: no prompt, `embed_documents` and `embed_query` are `embed_batch` of the bare texts,
    and `kb status` says nothing of prompts."""
    write_markdown(tmp_path / "docs" / "runbook.md")
    kb.ingest([str(tmp_path / "docs")])
    e = kb.embedder
    assert e.prompts == Prompts() and kb.status().prompts is None
    texts = ["Refunds above 500 euros", "gateway error"]
    assert np.array_equal(e.embed_documents(texts), e.embed_batch(texts))
    assert np.array_equal(e.embed_query(texts[0]), e.embed_batch([texts[0]])[0])
    out = CliRunner().invoke(main, ["status", "--kb", str(kb.path)])
    assert "Prompts" not in out.stdout


@pytest.mark.slow
def test_default_minilm_vectors_are_unchanged_by_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MiniLM (int8 ONNX, the default) has no prompts: its vectors are those of the bare texts, bit for bit."""
    from kb.embed.onnx import OnnxEmbedder

    e = OnnxEmbedder.int8("sentence-transformers/all-MiniLM-L6-v2")
    assert e.prompts == Prompts()
    texts = ["Net sales by category rose in the third quarter.", "Who approves refunds?"]
    assert np.array_equal(e.embed_documents(texts), e.embed_batch(texts))
    assert np.array_equal(e.embed_query(texts[1]), e.embed_batch([texts[1]])[0])


def test_a_reranking_model_that_is_nowhere_is_named_in_one_error(tmp_path: Path) -> None:
    from kb.errors import EmbedderError
    from kb.query.rerank import open_reranker

    for name in (str(tmp_path / "no-such-folder"), "nobody/no-such-cross-encoder"):
        reranker = open_reranker(name, backend="onnx")
        assert reranker is not None
        with pytest.raises(EmbedderError, match=f"cannot find reranking model '{name}'"):
            reranker.score("q", ["a passage"])


@pytest.mark.slow
def test_a_minilm_knowledge_base_records_no_prompts_and_nothing_stale(kb_with_note: KnowledgeBase) -> None:
    status = kb_with_note.status()
    assert status.prompts is None and status.stale.vectors is None
    meta = kb_with_note.catalog.meta()
    assert (meta["query_prompt"], meta["passage_prompt"]) == ("", "")
    with kb_with_note.catalog.transaction() as db:  # a knowledge base from before kb recorded prompts
        db.execute("DELETE FROM meta WHERE key IN ('query_prompt', 'passage_prompt')")
    assert "query_prompt" not in kb_with_note.catalog.meta()
    assert kb_with_note.status().stale.vectors is None and kb_with_note.embedder.prompts == Prompts()


# --- kb eval, one knowledge base per model ------------------------------------------------------
def test_eval_compares_knowledge_bases_one_column_each_with_its_model(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    (docs / "other.md").write_text("# Lunch\n\nThe canteen serves soup on Fridays.\n")
    for name, model in (("small", "fake-small"), ("large", "fake-large")):
        with KnowledgeBase.open(tmp_path / name, model=model, backend="fake", workers=1) as kb:
            kb.ingest([str(docs)])
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"question": "What does the canteen serve on Fridays?", "sources": ["other.md"]}) + "\n")
    run = CliRunner(env={"KB_BACKEND": "fake"}).invoke
    out = run(main, ["eval", str(gold), "--kb", str(tmp_path / "small"), "--kb", str(tmp_path / "large"), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert list(result["runs"]) == ["small", "large"]
    assert result["kbs"] == {"small": {"kb": str(tmp_path / "small"), "model": "fake-small"},
                             "large": {"kb": str(tmp_path / "large"), "model": "fake-large"}}
    assert result["runs"]["small"]["doc_recall"]["1"] == 1.0
    table = run(main, ["eval", str(gold), "--kb", str(tmp_path / "small"), "--compare-kb", str(tmp_path / "large"),
                       "--compare", "dense", "keyword"])
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[1].split()
    assert header == ["small:dense", "small:keyword", "large:dense", "large:keyword"]
    assert f"small: {tmp_path / 'small'}, model fake-small" in table.stdout
    assert "large" in table.stdout and "model fake-large" in table.stdout


# --- the real backends on tiny random-weight models (torch builds them) ---------------------------
@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "mpnet"])
def test_int8_onnx_export_of_each_family_matches_the_torch_model(family: str, tmp_path: Path, cache: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    from kb.embed.onnx import OnnxEmbedder
    from tests.tiny_models import TEXTS, tiny_encoder

    folder = tiny_encoder(tmp_path / family, family)
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    int8 = OnnxEmbedder.int8(str(folder))
    vectors = int8.embed_documents(TEXTS)
    assert vectors.shape == reference.shape
    assert _cos(vectors, reference).min() >= 0.99
    # the same text, the same vector: alone (as a query is embedded) and in a batch
    for i, text in enumerate(TEXTS):
        assert np.array_equal(int8.embed_query(text), vectors[i])
    fp32 = OnnxEmbedder.fp32(str(folder))
    batch = fp32.embed_documents(TEXTS)
    assert _cos(batch, reference).min() >= 0.9999
    assert np.allclose(fp32.embed_query(TEXTS[3]), batch[3], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_prompts_from_the_config_apply_on_every_backend(backend: str, tmp_path: Path, cache: Path) -> None:
    """The ONNX and torch backends embed a query and a passage as sentence-transformers'
    `encode_query` / `encode_document` do with the model's prompts."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    from kb.embed import make_embedder
    from tests.tiny_models import TEXTS, tiny_encoder

    folder = tiny_encoder(tmp_path / "bert", "bert", prompts={"query": "query: ", "document": "passage: "})
    st = SentenceTransformer(str(folder), device="cpu")
    e = make_embedder(str(folder), backend=backend, device="cpu")
    assert e.prompts == Prompts("query: ", "passage: ")
    assert _cos(e.embed_query("net sales"), st.encode_query(["net sales"]))[0] >= 0.9999
    assert _cos(e.embed_documents(TEXTS), st.encode_document(TEXTS)).min() >= 0.9999
    assert _cos(e.embed_query("net sales"), e.embed_batch(["net sales"]))[0] < 0.9999  # the prompt changed it


@pytest.mark.slow
def test_an_index_made_without_the_models_prompts_says_so_and_reindex_moves_it(tmp_path: Path, cache: Path) -> None:
    """An index of e5-style vectors made without prompts (as kb made them before it read prompts)
    goes on embedding without them, says in `kb status` that the model has its own, and `kb reindex`
    re-embeds it with them."""
    pytest.importorskip("sentence_transformers")
    from tests.tiny_models import tiny_encoder

    folder = tiny_encoder(tmp_path / "e5", "bert")
    model = folder.rename(tmp_path / "e5-small-v2")  # a family of the table: "query: " / "passage: "
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    with KnowledgeBase.open(tmp_path / "kb", model=str(model), backend="onnx", workers=1) as kb:
        kb.ingest([str(docs)])
        assert kb.status().prompts == {"query": "query: ", "passage": "passage: "}
        kb.catalog.set_meta(query_prompt="", passage_prompt="")  # as an older kb left it
    with KnowledgeBase.open(tmp_path / "kb", model=str(model), backend="onnx", workers=1) as kb:
        assert kb.embedder.prompts == Prompts()
        stale = kb.status().stale.vectors
        assert stale and "no prompts" in stale and "'query: '" in stale
        out = CliRunner().invoke(main, ["status", "--kb", str(kb.path)])
        assert "Stale: the vectors were made with no prompts" in out.stdout, out.output
        kb.reindex()
        assert kb.embedder.prompts == Prompts("query: ", "passage: ")
        assert kb.status().stale.vectors is None


@pytest.mark.slow
@pytest.mark.parametrize("own_file", [False, True], ids=["exported", "model-onnx-file"])
def test_onnx_cross_encoder_scores_as_the_torch_cross_encoder(own_file: bool, tmp_path: Path, cache: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import CrossEncoder

    from kb.query.rerank import open_reranker
    from kb.query.rerank_onnx import OnnxCrossEncoderReranker
    from tests.tiny_models import TEXTS, tiny_cross_encoder

    folder = tiny_cross_encoder(tmp_path / "ce", onnx_file=own_file)
    reranker = open_reranker(str(folder), backend="onnx")
    assert isinstance(open_reranker(str(folder), embedding_backend="onnx-int8"), OnnxCrossEncoderReranker)
    assert not isinstance(open_reranker(str(folder), backend="torch", embedding_backend="onnx"), OnnxCrossEncoderReranker)
    assert isinstance(reranker, OnnxCrossEncoderReranker)
    passages = [*TEXTS, "word " * 400]  # the last one is truncated to the model's length
    expected = CrossEncoder(str(folder), device="cpu").predict([("net sales by category", t) for t in passages])
    got = reranker.score("net sales by category", passages)
    assert np.abs(np.array(got) - expected).max() < 1e-4
    assert float(np.ptp(expected)) > 0.1  # the scores differ, so the order is tested too
    assert reranker.graph == (folder / "onnx" / "model.onnx" if own_file else cache / "onnx-rerank" / reranker.graph.parent.name / "model.onnx")

    # Through a search, as `kb search --rerank MODEL` runs it with the `rerank_backend` setting.
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    with KnowledgeBase.open(tmp_path / "kb", backend="onnx", workers=1) as kb:
        kb.ingest([str(docs)])
    out = CliRunner().invoke(main, ["search", "refunds", "--kb", str(tmp_path / "kb"), "--k", "3", "--json",
                                    "--rerank", str(folder)], env={"KB_RERANK_BACKEND": "onnx"})
    assert out.exit_code == 0, out.output
    hits = json.loads(out.stdout)["hits"]
    scores = CrossEncoder(str(folder), device="cpu").predict([("refunds", h["text"]) for h in hits])
    assert [h["score"] for h in hits] == pytest.approx([float(s) for s in scores], abs=1e-4)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.slow
def test_reranking_runs_without_torch_from_the_models_onnx_file(tmp_path: Path, cache: Path) -> None:
    """Where torch is not installed, `--rerank MODEL` runs the model's own onnx/model.onnx with ONNX
    Runtime (the default install), scoring as sentence-transformers does."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import CrossEncoder

    from tests.test_light_install import _env, _kb
    from tests.tiny_models import tiny_cross_encoder

    folder = tiny_cross_encoder(tmp_path / "ce", onnx_file=True)
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    env = {**_env(tmp_path), "HF_HUB_OFFLINE": "1"}
    assert _kb(env, "ingest", str(docs)).returncode == 0
    search = _kb(env, "search", "failover", "--k", "3", "--json", "--rerank", str(folder))
    assert search.returncode == 0, search.stderr
    hits = json.loads(search.stdout)["hits"]
    scores = CrossEncoder(str(folder), device="cpu").predict([("failover", h["text"]) for h in hits])
    assert [h["score"] for h in hits] == pytest.approx([float(s) for s in scores], abs=1e-4)
    assert not (tmp_path / "cache" / "onnx-rerank").exists()  # nothing exported: the model's file is used
