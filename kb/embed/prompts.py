"""Query and passage prompts of an embedding model: the text put before a query or a passage before
it is embedded, as the model was trained (e5's "query: "/"passage: ", bge's query instruction).

They come from the model's `config_sentence_transformers.json` (its `prompts` and
`default_prompt_name`, read the way sentence-transformers' `encode_query` / `encode_document` do),
else from a small table of well-known families whose configs lack them. They are part of the vector
format an index records: passages embedded with one prompt and queries with another do not match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

ST_CONFIG = "config_sentence_transformers.json"
# sentence-transformers' names for the passage side, in the order its `encode_document` tries them
_PASSAGE_NAMES = ("document", "passage", "corpus")


class Prompts(NamedTuple):
    """Text put before each query and each passage ("" for none)."""

    query: str = ""
    passage: str = ""

    @property
    def any(self) -> bool:
        return bool(self.query or self.passage)

    def to_meta(self) -> dict[str, str]:
        """As an index records them (both keys always, so that a reindex to a model without prompts clears them)."""
        return {"query_prompt": self.query, "passage_prompt": self.passage}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> Prompts:
        """The prompts an index's vectors were made with (an index from before kb recorded them: none, as
        kb used none then)."""
        return cls(meta.get("query_prompt", ""), meta.get("passage_prompt", ""))


# Well-known families whose configs name no prompts, matched on the model's name (its last path part):
# (pattern, prompts, why). A config's own prompts always win.
FAMILIES: list[tuple[re.Pattern[str], Prompts, str]] = [
    (re.compile(r"(multilingual-)?e5-(small|base|large)(-v2)?"), Prompts("query: ", "passage: "),
     "e5 models were trained with these prefixes on every text (intfloat's model cards)"),
    (re.compile(r"bge-(small|base|large)-en(-v1\.5)?"),
     Prompts("Represent this sentence for searching relevant passages: ", ""),
     "bge's instruction for retrieval queries; passages go without one (BAAI's model cards)"),
    (re.compile(r"nomic-embed-text-v1(\.5)?"), Prompts("search_query: ", "search_document: "),
     "nomic-embed-text's task prefixes for retrieval (Nomic's model card)"),
]


def family_prompts(model: str) -> Prompts | None:
    """The table's prompts for a model named `model` (a hub id or a folder), or None."""
    name = model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
    for pattern, prompts, _why in FAMILIES:
        if pattern.fullmatch(name):
            return prompts
    return None


def read_prompts(folder: Path | None, model: str) -> Prompts:
    """The prompts of the model `model` whose files are in `folder` (None: not at hand): its config's,
    else its family's, else none."""
    config = _st_config(folder) if folder is not None else {}
    named = config.get("prompts")
    prompts = {str(k): v for k, v in named.items() if isinstance(v, str) and v} if isinstance(named, dict) else {}
    default = prompts.get(str(config.get("default_prompt_name") or ""), "")
    if prompts or default:
        passage = next((prompts[n] for n in _PASSAGE_NAMES if n in prompts), default)
        return Prompts(prompts.get("query", default), passage)
    for name in (model, str(folder or "")):
        known = family_prompts(name) if name else None
        if known is not None:
            return known
    return Prompts()


def _st_config(folder: Path) -> dict[str, object]:
    path = folder / ST_CONFIG
    try:
        value = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def local_folder(model: str) -> Path | None:
    """The folder holding `model`'s files without going to the network: `model` itself, or the Hugging
    Face cache's snapshot of a hub id; None where neither is here."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    try:
        # lazy: huggingface_hub comes with the model backends, not with kb's import
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not installed, not cached, not a hub id: the files are not at hand
        return None
