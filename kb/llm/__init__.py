"""Language models for `kb ask`, chosen by name: llama-cpp (GGUF in-process), openai (any
OpenAI-compatible server: Ollama, vLLM, llama.cpp server, LM Studio), transformers (Hugging Face).

Nothing heavy is imported here: each backend imports its library when it is constructed. Other
packages add backends through the `kb.llms` entry-point group (a class taking `(model, *,
context_window, **options)`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from kb.errors import ConfigError
from kb.llm.base import LLM, ContextOverflowError, GenerationOptions, LLMError, Message, Prompt
from kb.registry import Registry

if TYPE_CHECKING:
    from kb.config import Settings

__all__ = [
    "LLM", "LLMS", "Backend", "ContextOverflowError", "GenerationOptions", "LLMError", "Message", "Prompt",
    "create_llm", "default_llm", "ollama_models",
]



class Backend(Protocol):
    """What `LLMS` holds: an `LLM` class, or any callable that builds one from a model name and options
    (`base_url`, `api_key`, `timeout`... as the backend takes them)."""

    def __call__(self, model: str | None, *, context_window: int = 0, **options: object) -> LLM: ...


LLMS: Registry[Backend] = Registry("kb.llms", "LLM backend", {
    "llama-cpp": "kb.llm.llama_cpp:LlamaCppLLM",
    "openai": "kb.llm.openai:OpenAILLM",
    "transformers": "kb.llm.transformers:TransformersLLM",
})
ALIASES = {
    "llama.cpp": "llama-cpp", "llamacpp": "llama-cpp", "llama_cpp": "llama-cpp", "gguf": "llama-cpp",
    "ollama": "openai", "vllm": "openai", "lmstudio": "openai", "openai-compatible": "openai",
    "hf": "transformers", "huggingface": "transformers",
}
NO_LLM = {"none", "off", "extractive", "false", "0"}
AUTO = {"", "auto"}
OLLAMA_DEFAULT = "http://127.0.0.1:11434"


def create_llm(name: str, *, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
               context_window: int = 0, **kwargs: Any) -> LLM:
    """The backend called `name` (or an alias such as `ollama`, `gguf`, `hf`), constructed."""
    key = name.strip().lower()
    backend = known_backend(name)
    cls = LLMS.get(backend)
    if backend == "openai":
        if not base_url and key == "ollama":
            base_url = _ollama_root() + "/v1"
        return cls(model, base_url=base_url, api_key=api_key, context_window=context_window, **kwargs)
    return cls(model, context_window=context_window, **kwargs)


def known_backend(name: str) -> str:
    """The registry's name of the backend `name` (an alias such as `ollama` included), or `ConfigError`
    naming every name accepted. "auto" and "none" are choices, not backends: check them first."""
    key = name.strip().lower()
    backend = ALIASES.get(key, key)
    if backend not in LLMS:
        raise ConfigError(f"unknown LLM backend {name!r}: choose one of {llm_names()}")
    return backend


def check_choice(name: str | None) -> None:
    """`ConfigError` unless `name` is an `llm` setting kb accepts: a backend, an alias, auto or none."""
    if name is not None and name.strip().lower() not in AUTO | NO_LLM:
        known_backend(name)


def llm_names() -> str:
    """Every name `--llm` (the `llm` setting) accepts, from the registry (plugins included) and its
    aliases: "auto, llama-cpp (or gguf, ...), openai (or ollama, ...), ..., none (or off, ...)"."""
    def named(name: str, aliases: list[str]) -> str:
        return f"{name} (or {', '.join(sorted(aliases))})" if aliases else name

    backends = [named(b, [a for a, to in ALIASES.items() if to == b]) for b in LLMS.names()]
    return ", ".join(["auto", *backends, named("none", sorted(NO_LLM - {"none"}))])


def infer_backend(model: str | None, base_url: str | None) -> str:
    """The backend a model name points to when `llm` is left on auto."""
    if base_url:
        return "openai"
    if model:
        path = Path(model).expanduser()
        if model.lower().endswith(".gguf") or path.is_file():
            return "llama-cpp"
        if path.is_dir() or model.count("/") == 1 and not model.endswith(("/", ":")) and ":" not in model:
            # a local folder, or a Hugging Face id like google/flan-t5-base
            return "transformers"
    return "openai"  # a bare name such as llama3.2: what Ollama serves


def default_llm(settings: Settings, *, probe: bool = True, **kwargs: Any) -> LLM | None:
    """The LLM `kb ask` uses: the configured one; else an Ollama server answering on this
    machine; else None, for an extractive answer. Only an explicit choice may raise."""
    name = (settings.llm or "auto").strip().lower()
    if name in NO_LLM:
        return None
    common: dict[str, Any] = dict(
        model=settings.llm_model, base_url=settings.llm_base_url, api_key=settings.llm_api_key,
        context_window=settings.llm_context, timeout=settings.llm_timeout, **kwargs,
    )
    if settings.llm_server:
        common["server"] = settings.llm_server
    if name not in AUTO:
        return create_llm(name, **common)
    if settings.llm_model or settings.llm_base_url:
        return create_llm(infer_backend(settings.llm_model, settings.llm_base_url), **common)
    if not probe:
        return None
    models = ollama_models()
    if not models:
        return None
    try:
        return create_llm("ollama", **{**common, "model": models[0]})
    except LLMError:
        return None


def _ollama_root() -> str:
    """Where Ollama listens: OLLAMA_HOST as Ollama itself reads it, else 127.0.0.1:11434."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return OLLAMA_DEFAULT
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    hostname = parts.hostname or "127.0.0.1"
    if hostname in ("0.0.0.0", "::"):
        hostname = "127.0.0.1"
    return f"{parts.scheme}://{hostname}:{parts.port or 11434}"


def ollama_models(timeout: float = 0.3) -> list[str]:
    """Chat models of an Ollama server on this machine, most recently used first; [] if none answers."""
    root = _ollama_root()
    parts = urlsplit(root)
    try:  # a refused connection is the common case: find out without importing an HTTP client
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 11434), timeout=timeout):
            pass
    except OSError:
        return []
    try:
        # lazy: httpx costs 0.2 s at start-up and most machines run no Ollama
        import httpx

        r = httpx.get(root + "/api/tags", timeout=max(timeout, 1.0))
        r.raise_for_status()
        listed = r.json().get("models") or []
    except Exception:  # not Ollama, or not well: no default LLM then
        return []
    names = [m.get("name") or m.get("model") for m in listed if isinstance(m, dict)]
    return [n for n in names if n and "embed" not in n.lower()]
