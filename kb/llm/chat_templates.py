"""Chat templates for GGUF files that carry none (`tokenizer.chat_template` absent, as in the
packaged Gemma): the model family's own turn format, chosen from the file's metadata.

Without one, llama-cpp-python formats every chat as Llama-2's `[INST]`, which other families read
as text to continue (and echo); its named formats for Gemma and Mistral drop the system message,
which holds kb's instructions. These templates are the families' published ones (Hugging Face
`tokenizer_config.json`), reduced to text messages: the system message goes where the family puts
it (the first user turn for Gemma and Mistral, which have no system role).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    family: str  # "gemma", "qwen", "llama-3", "phi-3", "mistral"
    jinja: str  # a Hugging Face chat template: messages, bos_token, eos_token, add_generation_prompt
    stop: tuple[str, ...]  # the family's end of turn


_GEMMA = (
    "{{ bos_token }}"
    "{% set first = messages[0]['content'] + '\\n\\n' if messages[0]['role'] == 'system' else '' %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n' }}"
    "{{ (first if loop.first else '') + m['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_CHATML = (  # Qwen 2, 2.5 and 3
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_LLAMA_3 = (
    "{{ bos_token }}"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_PHI_3 = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_MISTRAL = (  # v1-v3 instruct: no system role, so the system message opens the first user turn
    "{{ bos_token }}"
    "{% set first = messages[0]['content'] + '\\n\\n' if messages[0]['role'] == 'system' else '' %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "{% if m['role'] == 'assistant' %}{{ ' ' + m['content'] | trim + eos_token }}"
    "{% else %}[INST] {{ (first if loop.first else '') + m['content'] | trim }} [/INST]{% endif %}"
    "{% endfor %}"
)

TEMPLATES = {
    "gemma": ChatTemplate("gemma", _GEMMA, ("<end_of_turn>",)),
    "qwen": ChatTemplate("qwen", _CHATML, ("<|im_end|>",)),
    "llama-3": ChatTemplate("llama-3", _LLAMA_3, ("<|eot_id|>",)),
    "phi-3": ChatTemplate("phi-3", _PHI_3, ("<|end|>",)),
    "mistral": ChatTemplate("mistral", _MISTRAL, ("</s>",)),
}


def family(metadata: Mapping[str, object]) -> str | None:
    """The model family of a GGUF file, from its metadata (`general.architecture`, `general.name`,
    `tokenizer.ggml.pre`), when it is one of `TEMPLATES`' families; else None."""
    architecture = str(metadata.get("general.architecture", "")).lower()
    name = " ".join(str(metadata.get(k, "")) for k in ("general.name", "general.basename")).lower()
    pre = str(metadata.get("tokenizer.ggml.pre", "")).lower()
    if architecture.startswith("gemma"):  # gemma, gemma2, gemma3
        return "gemma"
    if architecture.startswith("qwen"):  # qwen2, qwen2moe, qwen3, qwen3moe
        return "qwen"
    if architecture in ("phi3", "phimoe"):
        return "phi-3"
    if architecture.startswith("mistral") or "mistral" in name or "mixtral" in name:
        return "mistral"  # converters write Mistral's older models as architecture "llama"
    if architecture == "llama" and (pre == "llama-bpe" or any(w in name.replace(" ", "-") for w in ("llama-3", "llama3"))):
        return "llama-3"  # Llama 3's tokenizer (pre-tokenizer "llama-bpe"); Llama 2 has SentencePiece's
    return None


def choose(metadata: Mapping[str, object]) -> ChatTemplate | None:
    """The template kb gives a GGUF file: None when the file has its own (`tokenizer.chat_template`,
    used as it is) or its family is not one kb knows (then kb's plain-text rendering is sent)."""
    if metadata.get("tokenizer.chat_template"):
        return None
    found = family(metadata)
    return TEMPLATES[found] if found else None
