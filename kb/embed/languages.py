"""Which languages an embedding model was trained for, told without loading it: a small table of the
models people use, else the `language` field of the model card in its local folder. Unknown: None,
and then nothing warns (`kb.ingest.language`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ANY = frozenset({"*"})  # a multilingual model: trained on dozens of languages, none singled out here


@dataclass(frozen=True)
class Trained:
    languages: frozenset[str]  # ISO 639-1 codes, or ANY
    said: str  # how a message says them: "English"

    def covers(self, language: str) -> bool:
        return self.languages is ANY or language in self.languages


ENGLISH = Trained(frozenset({"en"}), "English")
MULTILINGUAL = Trained(ANY, "many languages")

# Matched against the model's name (its last path piece), lower case. One line each: why.
KNOWN: list[tuple[re.Pattern[str], Trained]] = [
    # Multilingual first ("paraphrase-multilingual-MiniLM-L12-v2" is no English MiniLM):
    # sentence-transformers' multilingual distillations (50+ languages): paraphrase-multilingual-*,
    # distiluse-base-multilingual-*, stsb-xlm-r-multilingual; intfloat's multilingual-e5-* (100 languages);
    # Alibaba's gte-multilingual-*
    (re.compile(r"multilingual"), MULTILINGUAL),
    (re.compile(r"^labse$"), MULTILINGUAL),  # Google's LaBSE: 109 languages
    (re.compile(r"^bge-m3"), MULTILINGUAL),  # BAAI's bge-m3: 100+ languages (XLM-RoBERTa)
    (re.compile(r"^paraphrase-xlm-r"), MULTILINGUAL),  # XLM-RoBERTa distilled from English paraphrases, 50+ languages
    (re.compile(r"^jina-embeddings-v3"), MULTILINGUAL),  # Jina v3: 89 languages
    # sentence-transformers' all-*, multi-qa-*, msmarco-* and paraphrase-* (not multilingual): English pairs
    (re.compile(r"^(all|multi-qa|msmarco|paraphrase|nli|stsb)-"), ENGLISH),
    (re.compile(r"^bge-.*-en"), ENGLISH),  # BAAI's bge-*-en*: English (bge-*-zh: Chinese, not listed)
    (re.compile(r"^e5-(small|base|large)"), ENGLISH),  # intfloat's e5 (not multilingual-e5): English
    (re.compile(r"^gte-(small|base|large)$"), ENGLISH),  # thenlper's gte: English
    (re.compile(r"^nomic-embed-text-v1"), ENGLISH),  # Nomic v1/v1.5: English
]


def trained_for(model: str) -> Trained | None:
    """The languages `model` (a hub id or a folder) was trained for; None: unknown (no row of the table,
    no model card that says)."""
    name = Path(model.rstrip("/")).name.lower()
    for pattern, trained in KNOWN:
        if pattern.search(name):
            return trained
    card = _card(model)
    return _from_card(card) if card else None


def _card(model: str) -> str | None:
    """The text of the model card (README.md) in the model's folder, or in the Hugging Face cache for a
    hub id (nothing is downloaded)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        try:
            return (folder / "README.md").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    if "/" not in model:
        return None
    try:  # lazy: the hub's client comes with tokenizers, but is only needed here
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "README.md")
    except Exception:  # not installed, not a hub id: unknown
        return None
    if not isinstance(cached, str):
        return None
    try:
        return Path(cached).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)


def _from_card(card: str) -> Trained | None:
    """A model card's `language` field (a code or a list of codes, "multilingual"), if it has one."""
    front = _FRONT.match(card)
    if not front:
        return None
    import yaml  # lazy: only a model outside the table reads its card

    try:
        data = yaml.safe_load(front.group(1))
    except yaml.YAMLError:
        return None
    given = data.get("language") if isinstance(data, dict) else None
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list):
        return None
    codes = [re.split(r"[-_]", str(g).strip().lower())[0] for g in given if str(g).strip()]
    if not codes:
        return None
    # Many languages: a multilingual model, whatever the folder holds is likely among them.
    if "multilingual" in codes or len(codes) >= MANY_LANGUAGES:
        return MULTILINGUAL
    return Trained(frozenset(codes), ", ".join(language_name(c) for c in codes))


MANY_LANGUAGES = 10  # a card naming this many languages is a multilingual model's


# Names for the languages a message is most likely to name; any other is shown by its code.
NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nb": "Norwegian",
    "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}


def language_name(code: str) -> str:
    return NAMES.get(code, code)
