"""transformers backend: a Hugging Face causal LM (Llama, Gemma, Phi-3, Mistral, Qwen) or an
encoder-decoder (FLAN-T5), on the GPU when there is one, streamed with TextIteratorStreamer."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from kb.errors import ConfigError, DependencyError
from kb.llm.base import LLM, GenerationOptions, LLMError, Prompt, RenderedPrompt, cap_context, messages_to_text

CONTEXT_CAP = 8192
STREAM_TIMEOUT_S = 600.0  # a generation thread that stops producing is an error, not a hang


class TransformersLLM(LLM):
    backend = "transformers"

    def __init__(self, model: str | None = None, *, context_window: int = 0, device: str = "auto",
                 trust_remote_code: bool = False, **_: Any):
        if not model:
            raise ConfigError("the transformers backend needs --model (a Hugging Face id or a local folder)")
        try:
            # lazy: torch and transformers are optional and heavy
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            raise DependencyError("transformers and torch are needed for the transformers backend: pip install transformers torch") from e
        local = Path(model).expanduser()
        location = str(local.resolve()) if local.is_dir() else model
        self.model_name = model
        self.model, self.tokenizer, self.device = _load(location, device, trust_remote_code)
        self.seq2seq = bool(getattr(self.model.config, "is_encoder_decoder", False))
        self.output_in_context = not self.seq2seq
        self._configured_context = context_window
        self._lock = threading.Lock()

    @property
    def context_window(self) -> int:
        if self._configured_context > 0:
            return self._configured_context
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return cap_context(value, CONTEXT_CAP)
        limit = getattr(self.tokenizer, "model_max_length", 0)
        # T5 has relative positions and no hard limit; its tokenizer says 512, what it was trained on.
        return cap_context(int(limit) if 0 < limit < 1_000_000 else 2048, CONTEXT_CAP)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_prompt_tokens(self, prompt: Prompt) -> int:
        return int(self._encode(prompt)["input_ids"].shape[-1])

    def render_prompt(self, prompt: Prompt) -> RenderedPrompt:
        if isinstance(prompt, str) or not self.has_chat_template:
            return RenderedPrompt(None if isinstance(prompt, str) else list(prompt), messages_to_text(prompt),
                                  None if isinstance(prompt, str) else "plain text: the model has no chat template")
        text = self.tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
        return RenderedPrompt(list(prompt), str(text), "the model's own template")

    def _encode(self, prompt: Prompt) -> Any:
        if not isinstance(prompt, str) and self.has_chat_template:
            return self.tokenizer.apply_chat_template(
                list(prompt), add_generation_prompt=True, return_tensors="pt", return_dict=True,
            )
        return self.tokenizer(messages_to_text(prompt), return_tensors="pt")

    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        # lazy: torch and transformers are optional and heavy
        from transformers import TextIteratorStreamer

        # Only what every model's generate takes (a BERT-style tokenizer adds token_type_ids).
        inputs = {k: v.to(self.device) for k, v in self._encode(prompt).items() if k in ("input_ids", "attention_mask")}
        sample = bool(options.temperature)
        kwargs: dict[str, Any] = {"max_new_tokens": options.max_tokens, "do_sample": sample}
        if sample:
            kwargs["temperature"] = options.temperature
            if options.top_p is not None:
                kwargs["top_p"] = options.top_p
            if options.top_k is not None:
                kwargs["top_k"] = options.top_k
        if options.stop:
            kwargs["stop_strings"], kwargs["tokenizer"] = list(options.stop), self.tokenizer
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.eos_token_id
        with self._lock:
            if options.num_beams and options.num_beams > 1:
                # Beam search keeps several candidates until the end: nothing to stream before that.
                kwargs["num_beams"] = options.num_beams
                out = self._run(inputs, kwargs)
                new = out[0] if self.seq2seq else out[0][inputs["input_ids"].shape[-1]:]
                yield self.tokenizer.decode(new, skip_special_tokens=True)
                return
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                            timeout=STREAM_TIMEOUT_S)
            failure: list[BaseException] = []

            def work() -> None:
                try:
                    self._run(inputs, {**kwargs, "streamer": streamer})
                except BaseException as e:  # surfaced in the caller's thread below
                    failure.append(e)
                    streamer.end()

            thread = threading.Thread(target=work, name="kb-llm-generate", daemon=True)
            thread.start()
            try:
                for piece in streamer:
                    if piece:
                        yield piece
            finally:
                thread.join(timeout=STREAM_TIMEOUT_S)
            if failure:
                raise LLMError(f"generation failed: {failure[0]}") from failure[0]

    def _run(self, inputs: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        # lazy: torch and transformers are optional and heavy
        import torch

        with torch.inference_mode():
            return self.model.generate(**inputs, **kwargs)


@lru_cache(maxsize=2)
def _load(location: str, device: str, trust_remote_code: bool) -> tuple[Any, Any, str]:
    # lazy: torch and transformers are optional and heavy
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if Path(location).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model must never touch the network
    hf_logging.disable_progress_bar()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
        cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        dtype = torch.float32
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = cls.from_pretrained(location, dtype=dtype, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError) as e:
        raise LLMError(f"cannot load the model {location!r}: {' '.join(str(e).split())[:300]}") from e
    model.to(device).eval()  # type: ignore[arg-type]  # transformers' stub of the wrapped `to` wants the model twice
    return model, tokenizer, device
