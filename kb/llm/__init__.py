"""Language models for `kb ask`, chosen by name: llama-cpp (GGUF in-process), openai (any
OpenAI-compatible server: Ollama, vLLM, llama.cpp server, LM Studio), transformers (Hugging Face).

Nothing heavy is imported here: each backend imports its library when it is constructed. Other
packages add backends through the `kb.llms` entry-point group (a class taking `(model, *,
context_window, **options)`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from kb.config import models_folder
from kb.errors import ConfigError
from kb.llm.base import LLM, ContextOverflowError, GenerationOptions, LLMError, Message, Prompt
from kb.llm.hub import is_hub_spec, local_model
from kb.registry import Registry

if TYPE_CHECKING:
    from kb.config import Settings

__all__ = [
    "LLM", "LLMS", "Backend", "ContextOverflowError", "GenerationOptions", "LLMError", "Message", "Prompt",
    "Choice", "choose_llm", "create_llm", "default_llm", "ollama_models",
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
               context_window: int = 0, models_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> LLM:
    """The backend called `name` (or an alias such as `ollama`, `gguf`, `hf`), constructed. For llama-cpp,
    `model` may be `hf:ORG/REPO/FILE.gguf` (downloaded into `models_dir` once) or the name of a file in
    `models_dir` [default: the models folder of the default settings]."""
    key = name.strip().lower()
    backend = known_backend(name)
    cls = LLMS.get(backend)
    if model and (backend == "llama-cpp" or is_hub_spec(model)):
        if backend != "llama-cpp":
            raise ConfigError(f"{model} is a GGUF file, run by llama-cpp: use --llm llama-cpp (or auto)")
        model = local_model(model, Path(models_dir) if models_dir else models_folder(None))
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


@dataclass(frozen=True)
class Choice:
    """What `kb ask` runs, found before anything is loaded (`choose_llm`): `name` as `create_llm` takes
    it (a backend or an alias: "ollama"), the registry's `backend`, the model and server as configured
    (None: the backend's default), and why it is the one."""

    name: str
    backend: str
    model: str | None
    base_url: str | None
    reason: str
    probed: bool = False  # found by asking the Ollama server: a failure to load it means no LLM, not an error

    def to_json(self) -> dict[str, str | None]:
        return {"llm": self.name, "backend": self.backend, "model": self.model, "base_url": self.base_url,
                "reason": self.reason}


def choose_llm(settings: Settings, *, probe: bool = True, ollama: list[str] | None = None) -> Choice | None:
    """The one place where `kb ask`'s model is chosen (`default_llm` loads it, `kb models` shows it). In
    order: `llm` names a backend: that one, with the configured model and server; `llm` is auto: the
    configured model or server (`llm_model`, `llm_base_url`, the backend inferred from them); else the
    first chat model of an Ollama server answering on this machine (`ollama`: its models when the
    caller has listed them already; `probe` False: not asked); else None, an extractive answer."""
    name = (settings.llm or "auto").strip().lower()
    if name in NO_LLM:
        return None
    if name not in AUTO:
        return Choice(name, known_backend(name), settings.llm_model, settings.llm_base_url, f"the llm setting is {name}")
    if settings.llm_model or settings.llm_base_url:
        backend = infer_backend(settings.llm_model, settings.llm_base_url)
        what = " and ".join(w for w, v in (("model", settings.llm_model), ("server", settings.llm_base_url)) if v)
        return Choice(backend, backend, settings.llm_model, settings.llm_base_url, f"the configured {what}")
    if ollama is None:
        ollama = ollama_models() if probe else []
    if not ollama:
        return None
    root = _ollama_root()
    return Choice("ollama", "openai", ollama[0], root + "/v1", f"the first chat model of the Ollama server at {root}",
                  probed=True)


def default_llm(settings: Settings, *, probe: bool = True, **kwargs: Any) -> LLM | None:
    """The LLM `kb ask` uses (`choose_llm`), loaded. Only an explicit choice may raise: an Ollama model
    found by probing that fails to load means an extractive answer."""
    choice = choose_llm(settings, probe=probe)
    if choice is None:
        return None
    common: dict[str, Any] = dict(
        model=choice.model, base_url=choice.base_url, api_key=settings.llm_api_key,
        context_window=settings.llm_context, timeout=settings.llm_timeout, models_dir=models_folder(settings),
        **kwargs,
    )
    if settings.llm_server:
        common["server"] = settings.llm_server
    if not choice.probed:
        return create_llm(choice.name, **common)
    try:
        return create_llm(choice.name, **common)
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
    return [m.name for m in ollama_listing(timeout).models if "embed" not in m.name.lower()]


@dataclass(frozen=True)
class ServedModel:
    name: str
    bytes: int | None = None


@dataclass(frozen=True)
class Listing:
    """What a model server said when asked for its models: the models, or why there are none to list."""

    base_url: str
    models: list[ServedModel]
    error: str | None = None


def ollama_listing(timeout: float = 0.3) -> Listing:
    """The models of the Ollama server on this machine (`/api/tags`: every model, embedding ones too),
    or why none could be listed."""
    root = _ollama_root()
    parts = urlsplit(root)
    try:  # a refused connection is the common case: find out without importing an HTTP client
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 11434), timeout=timeout):
            pass
    except OSError as e:
        return Listing(root, [], f"not reachable: {_reason(e)}")
    try:
        # lazy: httpx costs 0.2 s at start-up and most machines run no Ollama
        import httpx

        r = httpx.get(root + "/api/tags", timeout=max(timeout, 1.0))
        r.raise_for_status()
        listed = r.json().get("models") or []
    except Exception as e:  # not Ollama, or not well: no default LLM then
        said = "not answering" if "Timeout" in type(e).__name__ else "not an Ollama server"
        return Listing(root, [], f"{said}: {_reason(e)}")
    found = [ServedModel(str(m.get("name") or m.get("model")), m.get("size") if isinstance(m.get("size"), int) else None)
             for m in listed if isinstance(m, dict) and (m.get("name") or m.get("model"))]
    return Listing(root, found)


def _reason(e: BaseException) -> str:
    """Why a server did not answer, in a few words: "Connection refused", "timed out", "HTTP 404"."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    response = getattr(e, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"HTTP {response.status_code}"
    text = " ".join(str(e).split())
    if "Errno" in text and "]" in text:  # "[Errno 111] Connection refused", as httpx passes it on
        text = text.split("]", 1)[1].strip()
    return text[:120] or type(e).__name__
