"""Where a knowledge base lives and how it is configured (flag > KB_* env > kb.toml > defaults)."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs
import tomllib

from kb.errors import ConfigError

log = logging.getLogger(__name__)

KB_DIRNAME = ".kb"
CONFIG_FILE = "kb.toml"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Search modes: the one definition that the CLI's choices, the API's models and the web page use.
MODES = ("hybrid", "dense", "keyword")
# OCR of scans and photos: auto (pages without usable text) | always (every page) | never.
OCR_MODES = ("auto", "always", "never")


def check_mode(mode: str | None) -> str:
    """`mode` lower-cased, or "hybrid" for none; an unknown one is a `ConfigError` naming the known ones."""
    mode = (mode or "hybrid").lower()
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r} (known: {', '.join(MODES)})")
    return mode


@dataclass
class Settings:
    """Every setting a knowledge base reads. Each has a kb.toml key and a KB_<KEY> variable."""

    model: str = DEFAULT_MODEL
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 0  # 0: chosen by device
    # Embedding runtime: auto (the index's vector format; new: torch fp16 on CUDA, else ONNX Runtime int8)
    # | torch | onnx | onnx-int8
    backend: str = "auto"
    chunk_tokens: int = 256  # cap on embedded tokens, title/heading prefix included
    chunk_overlap: int = 32
    store: str = "faiss"
    store_uri: str | None = None  # milvus: a Lite path ending in .db (one process at a time) or http://host:19530
    store_token: str | None = None  # milvus server: "user:password" or an API key
    store_db: str | None = None  # milvus server: database name [default: default]
    collection: str = "kb"  # milvus: collections <collection>_chunks, _documents, _meta
    workers: int = 0  # parser processes; 0: chosen by core count
    max_file_mb: float = 256.0
    ocr: str = OCR_MODES[0]  # ingest: one of OCR_MODES
    ocr_lang: str = "eng"  # ingest: tesseract's language(s) for OCR, "eng+deu"
    code_extensions: str = ""  # ingest: more extensions read as code, by line: ".vue .svelte" (or a TOML list)
    mode: str = MODES[0]  # search: one of MODES
    rerank: str | None = None  # search: a cross-encoder model that reorders the best hits; off when unset
    # search: what runs `rerank`: auto (ONNX Runtime where `backend` names an ONNX one or torch is not
    # installed, else sentence-transformers on torch) | torch | onnx
    rerank_backend: str = "auto"
    # `kb ask`: auto (configured model, else a local Ollama, else extractive) | llama-cpp | openai
    # | transformers | ollama | none
    llm: str = "auto"
    llm_model: str | None = None  # GGUF path, Hugging Face id/folder, or the server's model name
    llm_base_url: str | None = None  # OpenAI-compatible server; default Ollama's http://127.0.0.1:11434/v1
    llm_api_key: str | None = None
    llm_context: int = 0  # context window in tokens; 0: from the model or server (capped at 8192)
    llm_timeout: float = 300.0  # seconds to load a model, and of the LLM's silence while answering
    # llama-cpp: the command that serves the GGUF on a loopback port (default: python -m kb.llm.llama_server)
    llm_server: str | None = None
    # GGUF files `kb models` lists and `--model NAME.gguf` finds by name; where `--model hf:...` downloads
    # (default: `models` in the platform's data folder, `models_folder`)
    models_dir: str | None = None
    # Names of the settings that a flag, a variable or kb.toml set (not defaults).
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def load(cls, kb_dir: Path | None, overrides: dict[str, Any] | None = None) -> Settings:
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls) if f.name != "explicit"}
        if kb_dir is not None and (kb_dir / CONFIG_FILE).is_file():
            path = kb_dir / CONFIG_FILE
            try:
                values.update(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"{path}: {e}") from e
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
        for name in known:
            env = os.environ.get(f"KB_{name.upper()}")
            if env is not None and env != "":
                values[name] = env
        for name, value in (overrides or {}).items():
            if value is not None:
                if name not in known:
                    raise ConfigError(f"unknown setting {name!r}")
                values[name] = value
        coerced = {k: _coerce(known[k], v) for k, v in values.items()}
        if "ocr" in coerced:
            coerced["ocr"] = str(coerced["ocr"]).lower()
            if coerced["ocr"] not in OCR_MODES:
                raise ConfigError(f"unknown OCR mode {values['ocr']!r} (known: {', '.join(OCR_MODES)})")
        return cls(**coerced, explicit=frozenset(coerced))

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(field: dataclasses.Field[Any], value: Any) -> Any:
    kind = str(field.type)
    if isinstance(value, (list, tuple)):  # a TOML list, for a setting that is a list of words
        value = " ".join(str(v) for v in value)
    try:
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {field.name!r} must be a number, got {value!r}") from e
    return None if value is None else str(value)


def resolve_kb_dir(explicit: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> Path:
    """`--kb DIR`, else `KB_DIR`, else the nearest `.kb/` here or above, else the user data dir."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("KB_DIR")
    if env:
        return Path(env).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / KB_DIRNAME
        if candidate.is_dir():
            return candidate
    return _moved_from_old_place(default_kb_dir())


def default_kb_dir() -> Path:
    """The user's knowledge base when no other is named: the platform's data folder
    (`~/.local/share/kb` on Linux, honouring XDG_DATA_HOME)."""
    return Path(platformdirs.user_data_dir("kb", appauthor=False)).resolve()


def models_folder(settings: Settings | None = None) -> Path:
    """Where kb keeps GGUF models: the `models_dir` setting, else `models` in the platform's data folder
    (`~/.local/share/kb/models` on Linux), shared by every knowledge base of the user."""
    if settings is not None and settings.models_dir:
        return Path(settings.models_dir).expanduser().resolve()
    return default_kb_dir() / "models"


def _moved_from_old_place(new: Path) -> Path:
    """kb 0.x kept the default knowledge base in the config folder (`~/.config/kb`): move it, once."""
    old = Path(platformdirs.user_config_dir("kb", appauthor=False))
    if new.exists() or not old.is_dir() or not any(old.iterdir()):
        return new
    try:
        new.parent.mkdir(parents=True, exist_ok=True)
        os.rename(old, new)
    except OSError as e:
        if new.exists() and not old.exists():  # another kb process moved it a moment ago
            return new
        log.warning("kb: the knowledge base in %s could not be moved to %s (%s); it is used where it is",
                    old, new, e.strerror or e)
        return old.resolve()
    log.warning("kb: moved the knowledge base from %s to %s, where kb keeps its data", old, new)
    return new
