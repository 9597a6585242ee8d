"""The aliases a question names ("NnW", "QLDY", "ibc"), looked up among those the documents define
(kb.ingest.aliases, kept by the catalog), and the question with each alias's name spelled out beside
it ("NnW (Nash & Wells) sales"): what search then looks for, as if the reader had written the name.

An alias matches in any case ("ibc revenue"), unless the documents also write it as a lower-case
word ("COST", "cost"): then only as they write it. A word that only frames a question ("all", "it")
is never taken for one unless written in capitals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.question import STOPWORDS

if TYPE_CHECKING:
    from kb.index.catalog import Catalog

MAX_NAMES = 2  # names spelled out for one alias: more is an alias too many things share
_WORD = re.compile(r"[^\W_]+(?:[&.’'*-][^\W_]+)*\.?")
_POSSESSIVE = re.compile(r"['’]s$")
_AND = re.compile(r"(?<=[A-Z])n(?=[A-Z])")  # "NnW", "AnB": a lower-case n between capitals stands for "&"


@dataclass(frozen=True)
class Alias:
    """An alias a question names: as it writes it, the names it stands for, the documents that define it."""

    text: str
    names: tuple[str, ...]
    docs: frozenset[int]


def named(catalog: Catalog, text: str) -> list[Alias]:
    """The aliases `text` names that the documents define, in its order."""
    known = catalog.aliases()
    if not known:
        return []
    out: dict[str, Alias] = {}
    lowered = text.lower()
    words = [_POSSESSIVE.sub("", m.group()).rstrip(".") if not _is_dotted(m.group()) else m.group()
             for m in _WORD.finditer(text)]
    spaced = _spaced(catalog)  # aliases of several words ("Tax Act"), by their first word
    words += [k for w in dict.fromkeys(w.lower() for w in words) for k in spaced.get(w, ())
              if re.search(rf"(?<!\w){re.escape(k)}(?!\w)", lowered)]
    for word in words:
        if word in out or (word.lower() in STOPWORDS and not word.isupper()):
            continue
        entries = [e for key in _keys(word) for e in known.get(key, ())]
        held = [e for e in entries if not e[2] or e[0] == word]  # cased: as the documents write it
        if not held:
            continue
        names: dict[str, str] = {}
        for _, name, _, _ in held:
            names.setdefault(_plain(name), name)
        out[word] = Alias(word, tuple(names.values())[:MAX_NAMES], frozenset(e[3] for e in held))
    return list(out.values())


def spelled(catalog: Catalog, text: str) -> str:
    """`text` with the names of the aliases it names spelled out (`expand`), or `text` itself."""
    found = named(catalog, text)
    return expand(text, found) if found else text


def expand(text: str, found: list[Alias]) -> str:
    """`text` with each alias's names after its first mention, unless the text names them already."""
    for alias in found:
        have = set(_plain(text).split())
        names = [n for n in alias.names if not _named(n, have)]
        if not names:
            continue
        # after its possessive: "ADS's (Arden Data Systems) revenue" still names ADS
        at = re.search(rf"(?<!\w){re.escape(alias.text)}(?:['’]s)?(?!\w)", text, re.IGNORECASE)
        if at is None:
            continue
        spelled = "; ".join(n.title() if n.isupper() else n for n in names)  # a cover's "ACME CORP"
        text = f"{text[:at.end()]} ({spelled}){text[at.end():]}"
    return text


def _spaced(catalog: Catalog) -> dict[str, list[str]]:
    """The aliases of several words by their first word, kept with the catalog's other counts (per
    connection, until the catalog changes)."""

    def index() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key in catalog.aliases():
            if " " in key:
                out.setdefault(key.split()[0], []).append(key)
        return out

    return catalog.remember("aliases_spaced", index)


def _named(name: str, have: set[str]) -> bool:
    """Whether a text of the words `have` names `name`: all its words but one (its "Inc." or "Ltd.")."""
    words = _plain(name).split()
    return sum(w in have for w in words) >= max(1, len(words) - 1)


def _keys(word: str) -> list[str]:
    keys = [word.lower()]
    if _AND.search(word):
        keys.append(_AND.sub("&", word).lower())
    return keys


def _is_dotted(word: str) -> bool:
    return bool(re.fullmatch(r"(?:[^\W\d_]\.){2,}", word))  # "U.S.": its dots are its own


def _plain(text: str) -> str:
    """Lower case, words only: how two spellings of a name are told the same ("AMAZON.COM, INC.")."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))
