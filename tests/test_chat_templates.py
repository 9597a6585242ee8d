"""A GGUF without a chat template is prompted in its family's turn format, chosen from its metadata;
`kb ask --show-prompt` shows what the model receives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.cli.main import main
from kb.llm.base import LLM
from kb.llm.chat_templates import choose, family
from tests.helpers import ScriptedLLM

QUESTION = "What happens on gateway error 5031?"
MESSAGES = [{"role": "system", "content": "Cite sources."}, {"role": "user", "content": "Who is paged?"}]
# The packaged Gemma 3 270M's metadata, as llama-cpp-python reads it (no tokenizer.chat_template)
GEMMA_3 = {"general.architecture": "gemma3", "general.name": "Gemma 3 270m", "general.basename": "gemma-3",
           "tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default"}


@pytest.mark.parametrize(("metadata", "expected"), [
    (GEMMA_3, "gemma"),
    ({"general.architecture": "gemma2", "general.name": "gemma-2-2b-it"}, "gemma"),
    ({"general.architecture": "qwen2", "general.name": "Qwen2.5 7B Instruct"}, "qwen"),
    ({"general.architecture": "qwen3", "general.name": "Qwen3 4B"}, "qwen"),
    ({"general.architecture": "llama", "general.name": "Meta Llama 3.1 8B Instruct", "tokenizer.ggml.pre": "llama-bpe"},
     "llama-3"),
    ({"general.architecture": "llama", "general.name": "models", "tokenizer.ggml.pre": "llama-bpe"}, "llama-3"),
    ({"general.architecture": "phi3", "general.name": "Phi 3 Mini 4k Instruct"}, "phi-3"),
    ({"general.architecture": "llama", "general.name": "Mistral 7B Instruct v0.3", "tokenizer.ggml.pre": "default"},
     "mistral"),
    # Llama 2 (SentencePiece) and families kb has no template for: llama-cpp-python's own choice stays
    ({"general.architecture": "llama", "general.name": "LLaMA v2", "tokenizer.ggml.pre": "default"}, None),
    ({"general.architecture": "gpt2", "general.name": "gpt2"}, None),
    ({}, None),
])
def test_family_from_the_metadata(metadata: dict[str, str], expected: str | None) -> None:
    assert family(metadata) == expected


def test_a_gguf_with_its_own_template_keeps_it() -> None:
    assert choose({**GEMMA_3, "tokenizer.chat_template": "{{ messages }}"}) is None
    chosen = choose(GEMMA_3)
    assert chosen is not None and chosen.family == "gemma"


class FakeLlama:
    """What the model server's chat formatting reads of a loaded `llama_cpp.Llama`."""

    def __init__(self, metadata: dict[str, str], bos: str = "<bos>", eos: str = "<eos>"):
        self.metadata, self.tokens = metadata, {2: bos, 1: eos}

    def token_bos(self) -> int:
        return 2

    def token_eos(self) -> int:
        return 1

    def detokenize(self, ids: list[int], special: bool = False) -> bytes:
        return "".join(self.tokens[i] for i in ids).encode()


def _formatted(metadata: dict[str, str], **tokens: str) -> tuple[Any, str]:
    pytest.importorskip("llama_cpp")
    from kb.llm.llama_server import _formatter

    formatter, template = _formatter(FakeLlama(metadata, **tokens))
    return formatter(messages=MESSAGES), template


def test_gemma_gets_gemmas_turns_with_the_system_message_in_its_first_turn() -> None:
    """Gemma has no system role: llama-cpp-python's "gemma" format dropped kb's instructions."""
    response, template = _formatted(GEMMA_3)
    assert response.prompt == ("<bos><start_of_turn>user\nCite sources.\n\nWho is paged?<end_of_turn>\n"
                               "<start_of_turn>model\n")
    assert "<end_of_turn>" in response.stop and template == "kb's gemma template: the GGUF has none"


@pytest.mark.parametrize(("metadata", "start", "end"), [
    ({"general.architecture": "qwen2"}, "<|im_start|>system\nCite sources.<|im_end|>\n<|im_start|>user\n",
     "<|im_start|>assistant\n"),
    ({"general.architecture": "llama", "tokenizer.ggml.pre": "llama-bpe"},
     "<bos><|start_header_id|>system<|end_header_id|>\n\nCite sources.<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    ({"general.architecture": "phi3"}, "<|system|>\nCite sources.<|end|>\n<|user|>\n", "<|assistant|>\n"),
    ({"general.architecture": "llama", "general.name": "Mistral 7B Instruct"}, "<bos>[INST] Cite sources.\n\nWho is paged?",
     "[/INST]"),
])
def test_each_family_gets_its_turns(metadata: dict[str, str], start: str, end: str) -> None:
    response, _ = _formatted(metadata)
    assert response.prompt.startswith(start) and response.prompt.endswith(end), response.prompt
    assert response.prompt.count("Cite sources.") == 1 and response.prompt.count("Who is paged?") == 1


def test_the_ggufs_own_template_wins_and_an_unknown_family_gets_plain_text() -> None:
    own = "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}{% endfor %}"
    response, template = _formatted({**GEMMA_3, "tokenizer.chat_template": own})
    assert response.prompt == "<<system>>Cite sources.<<user>>Who is paged?" and template == "the GGUF's own template"
    response, template = _formatted({"general.architecture": "gpt2"})
    assert response.prompt.startswith("Cite sources.\n\nWho is paged?") and template.startswith("plain text")


def _scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedLLM:
    import kb.answer

    llm = ScriptedLLM("Fail over to quokka-west [1].")
    monkeypatch.setattr(kb.answer, "load_llm", lambda settings, name, cache: (name if isinstance(name, LLM) else llm, None))
    return llm


def test_show_prompt_prints_what_a_server_is_sent_then_the_answer(kb_with_note: KnowledgeBase,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A server applies its own chat template: kb shows the messages it sends, as JSON."""
    llm = _scripted(monkeypatch)
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2", "--show-prompt"])
    assert result.exit_code == 0, result.output
    head, rule, answer = result.stdout.partition("── answer ──\n")
    assert rule and "── prompt to scripted:fixed (the messages kb sends; the server applies its chat template) ──" in head
    sent = json.loads(head.split("──\n", 1)[1])
    assert sent == llm.prompts[0] and sent[0]["role"] == "system" and QUESTION in sent[1]["content"]
    assert answer.startswith("Fail over to quokka-west [1].") and "Sources:" in answer


def test_show_prompt_with_json_adds_the_prompt(kb_with_note: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = _scripted(monkeypatch)
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2", "--show-prompt",
                                       "--json"])
    out = json.loads(result.stdout)
    assert out["prompt"] == {"messages": llm.prompts[0], "text": None, "template": None}
    assert out["answer"].startswith("Fail over") and out["llm"] == "scripted:fixed"
    without = json.loads(CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2",
                                                   "--json"]).stdout)
    assert "prompt" not in without


def test_show_prompt_without_a_model_says_nothing_was_sent(kb_with_note: KnowledgeBase) -> None:
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2", "--show-prompt",
                                       "--llm", "none"])
    assert result.exit_code == 0 and "no prompt was sent (no model answers here)" in result.stderr
    assert "── prompt" not in result.stdout and "quokka-west" in result.stdout


@pytest.mark.slow
def test_the_packaged_gemma_is_sent_gemmas_turns(kb_with_note: KnowledgeBase, gguf: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The real model server: the prompt shown is Gemma's turn format with kb's instructions in it, and it
    is the text the model was given (the chat call read as many tokens as that text holds)."""
    import httpx

    from kb.answer.prompt import SYSTEM

    monkeypatch.setenv("KB_LLM_TIMEOUT", "120")  # bounds the model's start and each silence
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "1", "--show-prompt",
                                       "--json", "--llm", "llama-cpp", "--max-tokens", "4"])
    assert result.exit_code == 0, result.output
    prompt = json.loads(result.stdout)["prompt"]
    assert prompt["text"].startswith(f"<bos><start_of_turn>user\n{SYSTEM.strip()}\n\nSources:")
    assert prompt["text"].endswith("<end_of_turn>\n<start_of_turn>model\n") and "gemma" in prompt["template"]

    from kb.llm.llama_cpp import LlamaCppLLM

    server = LlamaCppLLM()._server  # the one the question started: same model, same settings
    root = f"http://127.0.0.1:{server.port}"
    chat = httpx.post(root + "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 1}, timeout=60,
                      trust_env=False).json()
    text = server.render(MESSAGES).text
    assert text == "<bos><start_of_turn>user\nCite sources.\n\nWho is paged?<end_of_turn>\n<start_of_turn>model\n"
    counted = httpx.post(root + "/extras/tokenize/count", json={"input": text}, trust_env=False).json()["count"]
    assert chat["usage"]["prompt_tokens"] == counted - 1  # the count adds a BOS; the text has its own
