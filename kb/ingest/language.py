"""The language a document is written in, read at ingest from a sample of its chunks and kept in its
metadata (`language`, an ISO 639-1 code: `--where language=de` filters on it); and the one warning for
a knowledge base whose text is mostly in languages its embedding model was not trained for.

py3langid (langid.py's naive Bayes over byte n-grams, about 100 languages; its model ships in the wheel,
nothing is downloaded) reads 1,000 characters in 0.4 ms and gives the same answer every time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kb.embed.languages import Trained, language_name

if TYPE_CHECKING:
    from kb.types import Chunk

SAMPLE_CHUNKS = 8  # chunks read per document, spread over it: its main language shows in a few; a long one costs ~5 ms
SAMPLE_CHARS = 1000  # of each chunk, at most: a few hundred letters settle the language
MIN_LETTERS = 40  # a sampled chunk with fewer letters (a table of figures) says nothing of a language
# How sure langid must be of a sample: prose scores 0.98 and more; a table of names, places and figures
# 0.15-0.35 (read as Latin or Nigerian Pidgin), which is no language at all
SURE = 0.8
MOSTLY = 0.5  # the warning: more than this share of the text in languages the model was not trained for
NAMED = 3  # languages a warning names, most first
SUGGESTED = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"  # 50+ languages, MiniLM's size and speed

log = logging.getLogger(__name__)
_loading = threading.Lock()


@lru_cache(maxsize=1)
def _identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # lazy: its model takes 0.5-1 s to unpack
    except ImportError:  # an install from before kb needed it: the ingest goes on, without languages
        log.warning("kb: documents' languages are not read: py3langid is not installed (pip install py3langid)")
        return None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)  # probabilities: how sure it is


def identifier() -> Any:
    with _loading:  # one load, whichever thread asks first
        return _identifier()


def preload() -> None:
    """Unpack the model in the background (its xz lets go of the GIL), while the embedder loads: an
    ingest's first document then does not wait for it."""
    threading.Thread(target=identifier, name="kb-language-model", daemon=True).start()


def sample(chunks: Sequence[Chunk]) -> list[str]:
    """The texts read: up to SAMPLE_CHUNKS chunks spread evenly from first to last, each cut to SAMPLE_CHARS."""
    n = len(chunks)
    picked = range(n) if n <= SAMPLE_CHUNKS else sorted({round(i * (n - 1) / (SAMPLE_CHUNKS - 1))
                                                         for i in range(SAMPLE_CHUNKS)})
    return [chunks[i].text[:SAMPLE_CHARS] for i in picked]


def detect(chunks: Sequence[Chunk]) -> str | None:
    """The language most of `chunks`' sampled letters are in, or None (too little text to tell)."""
    letters: dict[str, int] = {}
    found = identifier()
    if found is None:
        return None
    for text in sample(chunks):
        count = sum(c.isalpha() for c in text)
        if count < MIN_LETTERS:
            continue
        language, sure = found.classify(text)
        if sure < SURE:
            continue
        letters[language] = letters.get(language, 0) + count
    if not letters:
        return None
    return max(sorted(letters), key=lambda lang: letters[lang])  # a tie: the first code, every time


def warning(shares: Mapping[str, float], model: str, trained: Trained | None) -> str | None:
    """The one line for a knowledge base whose `shares` of text (per detected language, of all its
    text) are mostly in languages `model` was not `trained` for; None otherwise, and where the model's
    languages are unknown."""
    if trained is None:
        return None
    missed = sorted(((share, lang) for lang, share in shares.items() if not trained.covers(lang)), reverse=True)
    total = sum(share for share, _ in missed)
    if total <= MOSTLY:
        return None
    named = ", ".join(f"{language_name(lang)} ({lang}, {_percent(share)})" for share, lang in missed[:NAMED])
    if len(missed) == 1:
        share, lang = missed[0]
        said = f"{language_name(lang)} ({lang}, {_percent(share)} of the text)"
    else:
        said = f"languages other than {trained.said} ({_percent(total)} of the text: {named}"
        said += f", and {len(missed) - NAMED} more)" if len(missed) > NAMED else ")"
    return (f"most of this knowledge base is in {said}; the model {model} was trained on {trained.said}: "
            f"search will miss much. Use a multilingual model: kb reindex --model {SUGGESTED}")


def _percent(share: float) -> str:
    return f"{min(99, round(share * 100))}%" if share < 1 else "100%"
