"""The words of a question that the documents write as names, read as names wherever the question
puts them: "Quillon pension rules" (a name first, where grammar capitalises any word), "unpaid leave
quillon" (a question without capitals past its first letter). The question alone cannot tell
"Quillon" from "Summarise"; the folder can: prose writes a name with its capital after a lower-case
word ("at Quillon Pumps", "of Brackwater"), and a common word without it.

Only the words the question's case leaves open are looked up: a capitalised first word that names
nothing by its form, and, in a question with no capital past a sentence's first letter, its content
words. A question that capitalises a name mid-sentence is read as it is written. Each lookup counts
the word's passages per document (as search does for the question's words) and reads a few passages
of up to 30 documents that hold it: its cost grows with those documents, not with the folder.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kb.question import FRAMING, read

if TYPE_CHECKING:
    from kb.index.catalog import Catalog

# How a word is written is read in the documents that mention it most, a few passages each: enough
# documents that one writing a common word as a defined term ("Eligible Member") is outvoted.
DOCUMENTS = 30
PER_DOCUMENT = 5
# A name keeps its capital in nearly every document that mentions it in prose; a common word loses it
# in most (a heading's or a title's capitals are not prose, see `_prose`).
NAME_SHARE = 0.9
NAME_MIN = 2  # capitalised mentions in prose before a word's case says anything
# A word in more than a tenth of a large folder's passages tells no documents apart, name or not (a folder
# of one company's reports): it is read as the question writes it.
COMMON_SHARE = 0.1
COMMON_MIN = 1000
OPEN_MAX = 8  # words of one question looked up: a long question without capitals costs no more
KEPT = 4096  # words whose reading a connection keeps: many questions' worth
ABBREVIATION_MAX = 5  # letters of a word in capitals taken for an abbreviation, as `kb.question` takes them
_LETTERS = re.compile(r"[^\W\d_]+")


def written(catalog: Catalog, text: str) -> frozenset[str]:
    """The words of `text` (lower-cased) that the question's case leaves open and the documents write
    as names (`NAME_SHARE` of their mentions in prose, at least `NAME_MIN`). Each word's reading is kept
    until the catalog changes (`KEPT` words at most)."""
    known: dict[str, bool] = catalog.remember("names", dict)
    out = set()
    for word in _open(text):
        if word not in known:
            if len(known) >= KEPT:
                known.clear()
            known[word] = _written_as_name(catalog, word)
        if known[word]:
            out.add(word)
    return frozenset(out)


def _open(text: str) -> list[str]:
    """The words whose case does not say whether they name something: a capitalised first word of a
    sentence that `read` did not take for a name ("Quillon pension rules"), or, when the question uses
    no capital past a sentence's first word, every content word ("unpaid leave rules quillon")."""
    asked = read(text)
    taken = {w.lower() for t in asked.about for w in re.findall(r"\w+", t.text)}
    if asked.uncased:
        words = list(asked.content)
    else:  # in the question's order
        words = [w for w in dict.fromkeys(m.group().lower() for m in _LETTERS.finditer(text)) if w in asked.named]
    return [w for w in words if w not in taken and w not in FRAMING and len(w) >= 3 and w.isalpha()][:OPEN_MAX]


def _written_as_name(catalog: Catalog, word: str) -> bool:
    """Whether the documents write `word` as a name: capitalised after a lower-case word of prose, where
    grammar never asks for a capital, in nearly all its mentions and in nearly every document (each by
    most of its mentions), and in lower case hardly anywhere (a heading capitalises a common word; no
    text lower-cases a name but in an address). So neither a document that names a product ("Compass")
    among many that use the word, nor a defined term ("Eligible Member") among its plain uses, makes it
    a name; nor does an abbreviation the documents write in capitals ("COGS"), which `read` keeps
    among the words a document may spell out."""
    held = catalog.document_term_chunks([word]).get(word, {})
    passages = sum(held.values())
    if passages > COMMON_MIN and passages > COMMON_SHARE * catalog.totals()[1]:
        return False
    sample = sorted(held, key=lambda d: (-held[d], d))[:DOCUMENTS]  # those that mention it most
    pattern = re.compile(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", re.IGNORECASE)
    votes: dict[int, list[int]] = {}  # document -> [capitalised, lower-case] mentions
    capitals = 0  # of the capitalised mentions, those in capitals throughout
    texts = catalog.texts_holding(sample, word, PER_DOCUMENT)
    for doc, text in ((d, t) for d, kept in texts.items() for t in kept):
        for m in pattern.finditer(text):  # each mention, read within its line
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            line = text[start:] if end < 0 else text[start:end]
            at = m.start() - start
            if _address(line, at, at + len(m.group())):  # "ann@quillon.example", "example.com/quillon"
                continue
            vote = votes.setdefault(doc, [0, 0])
            if m.group().islower():
                vote[1] += 1
                continue
            before = line[:at].rstrip()
            words = _LETTERS.findall(before[-40:])
            if words and words[-1].islower() and before[-1] not in ".?!:;" and _prose(line):
                vote[0] += 1
                capitals += m.group().isupper()
    capitalised = sum(c for c, _ in votes.values())
    mentions = sum(c + n for c, n in votes.values())
    voting = [(c, n) for c, n in votes.values() if c + n]
    named = sum(c > n for c, n in voting)
    if len(word) <= ABBREVIATION_MAX and capitals * 2 > capitalised:
        return False
    return capitalised >= NAME_MIN and capitalised >= NAME_SHARE * mentions and named >= NAME_SHARE * len(voting)


def _address(line: str, begin: int, stop: int) -> bool:
    """Whether `line[begin:stop]` sits in an e-mail address, a web address or a file name: a run of
    text without spaces that holds "@", "/" or a dot between letters."""
    start = line.rfind(" ", 0, begin) + 1
    end = line.find(" ", stop)
    token = line[start:] if end < 0 else line[start:end]
    return "@" in token or "/" in token or re.search(r"[^\W_]\.[^\W\d_]", token) is not None


def _prose(line: str) -> bool:
    """A line of running text: most of its words in lower case (not a heading, a title or a table row
    of capitalised labels)."""
    words = _LETTERS.findall(line)
    return len(words) >= 4 and sum(w[0].islower() for w in words) * 2 > len(words)
