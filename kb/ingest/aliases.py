"""Aliases a document gives the names it holds, learned from its own text at ingest and stored in its
metadata (`aliases`: {alias: the name it stands for}), so that a question naming "N&W", a ticker or
"IBC" finds the documents of Nash & Wells, Quillon or International Bottling Company.

Three rules, none of them tied to one kind of document:

- a defined term: a name, then in brackets a quoted short form of it (`Nash & Wells ("N&W")`,
  `Acme Holdings, Inc. (the "Acme" or "AHI")`); a role word (`(the "Company")`, `("we", "us")`) is no
  short form of the name and is left out;
- a code of two to five capitals that the first page pairs with a name: in brackets after it
  (`Acme Corp (NASDAQ: ACME)`), after an exchange's label (`NASDAQ: ACME`) or a "symbol"/"ticker"
  label (a filing's cover), where the code must be a short form of a name on that page;
- an acronym of a name of several words on the first page ("International Bottling Company" ->
  "IBC") that the document itself writes.

"A short form" of a name: its letters stand in the name in order, starting with the name's first
letter ("NWX" of "Northwind Exchange", "QLN" of "Quillon Inc."), so an exchange's code beside a
company's ticker ("NYSE") is not taken for the company's.
"""

from __future__ import annotations

import re

from kb.ingest.facets import opening_text
from kb.types import JSON, ParsedDocument

FIRST_CHARS = 6000  # of the first page: a filing's cover runs to about 4,000 characters
CODE_REACH = 300  # characters after a "symbol"/"ticker" label where the codes it labels stand
HEADING_LINES = 3  # lines a table's heading may take below its "symbol" label before its rows
HEADING_CAPITALS = 3  # words in capitals, and most of its words, make a line a heading, not a row of codes
NAME_REACH = 120  # characters before a bracket where the name it defines stands
MAX_ALIASES = 20  # a document defining more is a glossary; the first ones name what it is about
MAX_NAME_WORDS = 8  # a longer "name" is a title or a sentence ("Management's Discussion and Analysis of ...")
ACRONYM_MIN = 3  # letters: a two-letter acronym ("US", "IT") is as often a word

_QUOTED = re.compile(r"[\"“”]([^\"“”\n]{1,30})[\"“”]")
_BRACKET = re.compile(r"\(([^()\n]{1,120})\)")
_CODE = r"[A-Z]{2,5}"
_LABELLED = re.compile(rf"^\s*[A-Z][A-Za-z]+(?:\s+[A-Z][A-Za-z]+)?\s*:\s*({_CODE})\s*$")  # "(NYSE: JNJ)"
_BARE = re.compile(rf"^\s*({_CODE})\s*$")  # "(ACME)"
_EXCHANGE = re.compile(rf"(?m)(?:^|\()\s*[A-Z][A-Za-z]+\s*:\s*({_CODE})(?=\s*(?:\)|,|;|$))")  # "NASDAQ: ACME"
_SYMBOL_LABEL = re.compile(r"(?i)\b(?:symbols?|ticker)\b")
_SYMBOL = re.compile(rf"(?<![\w/.&-])({_CODE})(?![\w/&-])")
_CAPITALS = re.compile(r"(?<![\w&.-])([A-Z]{%d,5})(?![\w&-])" % ACRONYM_MIN)
_LOWER = re.compile(r"(?<![\w./@&-])([a-z]{2,5})(?![\w/@&-]|\.\w)")  # a word, not a web address's part
_TOKEN = re.compile(r"\S+")
_CAPITAL_WORD = re.compile(r"[A-Z]{2,}")
_JOINERS = frozenset({"&", "of", "and", "the", "de", "du", "der", "la"})
_LETTERS = re.compile(r"[^\W\d_]+")


def document_aliases(doc: ParsedDocument) -> JSON:
    """Metadata to merge into `doc.metadata`: `aliases` ({alias: name}) and `aliases_cased` (the aliases
    the document also writes as a lower-case word, "NOW" beside "now": matched only as written)."""
    text = "\n".join(b.text for b in doc.blocks)
    first = opening_text(doc, units=1, limit=FIRST_CHARS)
    found: dict[str, str] = {}
    for alias, name in (*_codes(first, text), *_acronyms(first, text), *_defined(text)):
        if alias not in found and len(found) < MAX_ALIASES and len(name.split()) <= MAX_NAME_WORDS:
            found[alias] = name
    if not found:
        return {}
    lower = set(_LOWER.findall(text))
    cased = [a for a in found if a.isalpha() and a.lower() in lower]
    return {"aliases": found, **({"aliases_cased": cased} if cased else {})}


# --- rules ------------------------------------------------------------------------------------------
def _defined(text: str) -> list[tuple[str, str]]:
    """`Name ("Term")`: each quoted term in a bracket that is a short form of the name just before it."""
    out: list[tuple[str, str]] = []
    for m in _BRACKET.finditer(text):
        terms = _QUOTED.findall(m.group(1))
        if not terms:
            continue
        run = _name_before(text, m.start())
        for term in terms:
            name = _shortened(term.strip(), run)
            if name:
                out.append((term.strip(), name))
    return out


def _codes(first: str, text: str) -> list[tuple[str, str]]:
    """Codes of two to five capitals that the first page pairs with a name (see the module's docstring)."""
    out: list[tuple[str, str]] = []
    names = _names(first)
    for m in _BRACKET.finditer(first):
        labelled = _LABELLED.match(m.group(1))
        bare = _BARE.match(m.group(1))
        run = _name_before(first, m.start())
        if labelled and run:  # "Acme Corp (NASDAQ: ACME)": said to be its code
            whole = " ".join(_strip_joiners(run)).rstrip(",")
            if whole and labelled.group(1) not in whole.split():
                out.append((labelled.group(1), whole))
        elif bare and (short := _shortened(bare.group(1), run)):
            out.append((bare.group(1), short))
    coded = [m.group(1) for m in _EXCHANGE.finditer(first)]
    for m in _SYMBOL_LABEL.finditer(first):
        # The label's column may stand above its codes or below them (a cover's table read row by row):
        # the row before, the label's line, then, past the rest of the heading, its rows up to the
        # first without a code.
        start = first.rfind("\n", 0, max(0, first.rfind("\n", 0, m.start()))) + 1
        label = first.count("\n", start, m.start())
        rows = False
        for n, line in enumerate(first[start:m.end() + CODE_REACH].splitlines()):
            codes = _codes_in(line)
            if n > label and not codes and (rows or n > label + HEADING_LINES):
                break
            rows = rows or (n > label and bool(codes))
            coded += codes
    for code in dict.fromkeys(coded):
        # a holder's name: of several words ("Quillon Inc.", not "April" nor "Non-accelerated" for "NONE")
        held = [n for n in names if " " in n and code not in n.split() and _short_form(code, n)]
        if held:  # the one the document names most
            out.append((code, max(held, key=lambda n: _mentions(n, text))))
    return out


def _mentions(name: str, text: str) -> int:
    """How often `text` writes the first word of `name`, in any case."""
    word = _LETTERS.search(name)
    return len(re.findall(rf"(?i)\b{re.escape(word.group())}\b", text)) if word else 0


def _codes_in(line: str) -> list[str]:
    """The codes of a line of words (a table's row), none of a line in capitals (a heading's words)."""
    words = _TOKEN.findall(line)
    capitals = [w for w in words if len(_CAPITAL_WORD.findall(w)) == 1 and w == w.upper()]
    heading = len(capitals) >= HEADING_CAPITALS and len(capitals) * 2 > len(words)
    return [] if heading else _SYMBOL.findall(line)


def _acronyms(first: str, text: str) -> list[tuple[str, str]]:
    """Acronyms of the first page's names of several words that the document writes ("IBC")."""
    written = set(_CAPITALS.findall(text))
    out: list[tuple[str, str]] = []
    for name in _names(first):
        words = [w for w in _strip_joiners(name.split()) if w.lower() not in _JOINERS]
        initials = [w[0].upper() for w in words if w[0].isalpha()]
        if len(initials) != len(words) or len(words) < 2:
            continue
        # all its words, or all but the last ("International Bottling Company Group": "IBC")
        for acronym in dict.fromkeys(("".join(initials), "".join(initials[:-1]))):
            if ACRONYM_MIN <= len(acronym) <= 5 and acronym in written and acronym not in name.split():
                out.append((acronym, name))
    return out


# --- names and short forms ---------------------------------------------------------------------------
def _name_before(text: str, at: int) -> list[str]:
    """The words of the capitalised run that ends just before `at` ("Acme Holdings, Inc." of
    "... of Acme Holdings, Inc. ("), or none."""
    head = text[max(0, at - NAME_REACH):at]
    words = _TOKEN.findall(head.replace("\n", " "))
    if at - NAME_REACH > 0 and words:
        words = words[1:]  # cut in the middle
    run: list[str] = []
    for word in reversed(words):
        bare = word.strip(",.;:")
        if bare and (bare[0].isupper() or bare.lower() in _JOINERS) and not word.endswith((";", ":")):
            run.insert(0, word)
        else:
            break
    return _strip_joiners(run)


def _strip_joiners(run: list[str]) -> list[str]:
    while run and run[0].strip(",.").lower() in _JOINERS:
        run = run[1:]
    while run and run[-1].strip(",.").lower() in _JOINERS:
        run = run[:-1]
    return run


def _names(first: str) -> list[str]:
    """The capitalised runs of the first page, line by line, in order: the names it holds."""
    out: list[str] = []
    for line in first.splitlines():
        run: list[str] = []
        for word in [*_TOKEN.findall(line), ""]:
            bare = word.strip(",.;:()")
            if bare and (bare[0].isupper() or (run and bare.lower() in _JOINERS)) and not word.startswith("("):
                run.append(word.strip("();:"))
                if not word.endswith((";", ":", ")")):
                    continue
            name = " ".join(_strip_joiners(run)).rstrip(",")
            if name and _LETTERS.search(name):
                out.append(name)
            run = []
    return list(dict.fromkeys(out))


def _shortened(term: str, run: list[str]) -> str | None:
    """The shortest end of the name `run` that `term` is a short form of, or None: "AHI" of "Acme
    Holdings, Inc.", "N&W" of "Nash & Wells"; a capitalised word must begin the name's first word
    ("Acme" of "Acme Holdings" adds nothing, "Company" of it is a role)."""
    ends = [" ".join(_strip_joiners(run[start:])).rstrip(",") for start in range(len(run) - 1, -1, -1)]
    letters = re.sub(r"[\W_]+", "", term).upper()
    # its initials first ("AAA" of "American Arbitration Association", not of "Association")
    initials = next((n for n in ends if n and _initials(n) == letters and _short_form(term, n)), None)
    return initials or next((n for n in ends if n and _short_form(term, n)), None)


def _initials(name: str) -> str:
    return "".join(w[0].upper() for w in _LETTERS.findall(name) if w.lower() not in _JOINERS)


def _short_form(term: str, name: str) -> bool:
    letters = re.sub(r"[\W_]+", "", term)
    if not 2 <= len(letters) <= 8 or term.islower():
        return False
    words = [w.lower() for w in _LETTERS.findall(name)]
    if not words or letters.lower() in words:
        return False  # a word of the name ("Quillon" of "Quillon Inc."): the name itself
    capitals = sum(c.isupper() for c in letters)
    if capitals < 2:  # a word ("Company", "Acme"): only a name's first word cut short stands for it
        return words[0].startswith(letters.lower()) and len(letters) >= 3
    spelled = "".join(words)
    if spelled[0] != letters[0].lower():
        return False
    at, previous = 0, ""
    for c in letters.lower():
        # a doubled letter may stand for one ("GGLD" of "Goldwing")
        at = spelled.find(c, at - 1 if c == previous else at) + 1
        if not at:
            return False
        previous = "" if c == previous else c  # once: "AAA" is not "Association"
    return True
