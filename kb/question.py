"""A question read once: its searchable words, the names and periods it is about, whether it asks for
the latest, and the sentences that only say how to answer. Search and answering both take this value.

Generic by construction: no list of companies or of anything else; a name is a capitalised word
the question did not capitalise for grammar, a period is what `kb.dates` reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from kb.dates import MONTHS, Period, periods

# Question and glue words that carry no topic; dropped from the searched words unless the query is
# made of nothing else.
_STOPWORDS = (
    """a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves s t"""
)
STOPWORDS = frozenset(_STOPWORDS.split())
MAX_TERMS = 48  # a pasted paragraph must not become a thousand-term query

# A "word" as a reader sees it: letters and digits, with inner apostrophes, hyphens, commas and
# dots kept together ("Wi-Fi", "40,665", "U.S.", "don't"); FTS5 splits these the same way its
# tokenizer does, so each becomes a phrase of its parts.
_WORD = re.compile(r"\w+(?:['’.,\-/]\w+)*", re.UNICODE)
_PART = re.compile(r"[^\W_]+", re.UNICODE)
_WORD_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
_DIGITS = re.compile(r"\d{4,}")
_QUOTED = re.compile(r'"([^"]+)"')
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
_DEFINED = re.compile(r"(?i)\bdefine\s+([\w%&' -]{2,60}?)\s+as\b|([\w%&'-]+(?: [\w%&'-]+){0,4})\s+(?:is|are)\s+defined\s+as\b")
# A word of letters and digits, both: "S23", "AT-401", "CH-SKIN-02", "170B" (periods are read first).
_ALNUM = re.compile(r"(?<![\w.-])(?=[\w-]*\d)(?=[\w-]*[^\W\d_])[^\W_]+(?:-[^\W_]+)*(?![\w-])")
_FORM = re.compile(r"\d{1,2}-[A-Za-z]s?")  # "4-B", "12-Cs": digits, a hyphen, a letter: a kind of form
# A capitalised word and a version or a number of one to three digits: "Beacon 3.0", "iPhone 16".
_VERSIONED = re.compile(r"\b([A-Z][\w+]*|i[A-Z]\w*)\s+(\d+(?:\.\d+)+|\d{1,3})(?![\d,.%]*\d)(?!\s*(?:%|percent|million|billion))")
_NUMBERED = re.compile(r"\b[^\W\d_]{2,}\s+0\d+\b")  # a number with a leading zero is a code: "site 022"
_ABBREVIATION = re.compile(r"\b[A-Z]{2,6}s?\b")
_MEASURE = re.compile(r"(?i)\bhow\s+(?:many|much)\s+([^\W\d_]+)\s+of\b")

# Words that ask for the newest of a series. Not "current" alone: "current liabilities", "current
# version of the protocol" name a kind of thing, not the newest document.
_LATEST = re.compile(r"(?i)\b(?:latest|most\s+recent(?:ly)?|newest|most\s+current|last\s+reported)\b")

# A sentence that says how to answer, not what: "Round your answer to two decimal places.",
# "Answer in one sentence.", "If the ratio is not useful, state that."
_INSTRUCTION = re.compile(
    r"(?i)^(?:please\s+)?(?:(?:answer|respond|reply)\b(?!\s+(?:the\s+)?(?:following\s+)?question)"
    r"|round\b|express\b|be\s+(?:brief|concise)\b|keep\s+(?:it|the\s+answer|your\s+answer)\b"
    r"|(?:give|provide|show)\s+(?:your|the|a)\s+(?:answer|reasoning|calculation)\b"
    r"|use\s+(?:only|at\s+most|no\s+more)\b|if\b.*\b(?:state|say|answer|reply|respond|write)\s+(?:that|so)\b)"
)
_SENTENCE = re.compile(r"[^.?!]+(?:[.?!]+|$)")

# Words that frame a question rather than say what it is about: capitalised for grammar, not because
# they name something, and never one of its content words.
FRAMING = STOPWORDS | frozenset({
    "please", "list", "describe", "explain", "give", "tell", "compare", "summarize", "summarise", "find", "show",
    "according", "based", "using", "given", "here", "there", "also", "provide", "identify", "calculate", "answer",
    "many", "much", "define", "defined",
    # the kind of answer asked for: a document prints the date or the amount itself, not the word
    "date", "amount", "number", "value", "figure", "figures",
    "question", "yes", "no", "note", "assume", "consider", "does", "did", "has", "have", "is", "are", "was",
    "were", "will", "would", "can", "could", "should", "may", "might", "must", "i", "you", "we", "they",
    *MONTHS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
})
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[&.’'-][A-Za-z0-9]+)*")
_POSSESSIVE = re.compile(r"(?:['’]s|s['’])$")
_JOINERS = {"&", "of"}
_CONTRACTION = re.compile(r"(?i)(?:n['’]t|['’](?:m|re|ve|ll|d))$")  # "I'm", "don't", "we've": grammar, never a name
_ACRONYM = re.compile(r"[A-Z]{2,5}")


@dataclass(frozen=True)
class Name:
    """A name the question is about ("Tesla", "Johnson & Johnson", "iPhone"), as it says it; a text
    mentions it where all its words are."""

    text: str
    words: tuple[str, ...]

    kind = "entity"

    @property
    def query(self) -> str:
        """What to look it up with in the keyword index."""
        return " ".join(self.words)

    @cached_property
    def _patterns(self) -> tuple[re.Pattern[str], ...]:
        # a file name joins its words with "_" ("ACME_2023_report.pdf"): edges are letters and digits
        return tuple(re.compile(rf"(?<![^\W_]){re.escape(w)}(?![^\W_])", re.IGNORECASE) for w in self.words)

    def found_in(self, text: str) -> bool:
        return all(p.search(text) for p in self._patterns)


@dataclass(frozen=True)
class Code:
    """A model, version or code the question names ("Beacon 3.0", "iPhone 16", "CH-SKIN-02", "S23"):
    a text mentions it where its parts stand together, however they are joined ("AT-401", "AT401")."""

    text: str

    kind = "entity"

    @property
    def parts(self) -> list[str]:
        return _PART.findall(self.text)

    @property
    def query(self) -> str:
        return " ".join(self.parts)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        joined = r"[\s.\-–/:#]*".join(re.escape(p) for p in self.parts)  # "Site: 014", "Site #014"
        # not inside a longer word or figure: "iPhone 16" is not "iPhone 16,757" (a table row)
        return re.compile(rf"(?<![^\W_]){joined}(?![^\W_]|[.,]\d)", re.IGNORECASE)

    def found_in(self, text: str) -> bool:
        return self._pattern.search(text) is not None


Term = Name | Code | Period  # what a question is about: `kind` entity | period, `text`, `query`, `found_in`


@dataclass(frozen=True)
class Question:
    """What a question says, read once (`read`)."""

    text: str
    names: tuple[Name, ...]  # in the order the question names them
    periods: tuple[Period, ...]
    latest: bool  # it asks for the newest document of a series ("the latest report")
    instructions: tuple[str, ...] = ()  # its sentences about the answer's form ("Round to two decimals.")
    codes: tuple[Code, ...] = ()  # the models, versions and codes it names

    @property
    def about(self) -> tuple[Term, ...]:
        """The names, the codes, then the periods."""
        return (*self.names, *self.codes, *self.periods)

    @cached_property
    def terms(self) -> list[str]:
        """The searchable words (`terms`)."""
        return terms(self.text)

    @cached_property
    def literals(self) -> list[str]:
        """What it means verbatim (`literals`)."""
        return literals(self.text)

    @property
    def dates(self) -> tuple[str, ...]:
        """The full dates it names, ISO."""
        return tuple(dict.fromkeys(d.isoformat() for p in self.periods if (d := p.date) is not None))

    @property
    def years(self) -> tuple[str, ...]:
        """The years it names, however written ("FY23", "Q3 2023", "July 1, 2023")."""
        return tuple(dict.fromkeys(str(p.year) for p in self.periods))

    @cached_property
    def content(self) -> tuple[str, ...]:
        """The words that say what is asked, lower-cased, in order: its sentences but the instructions,
        without glue and framing words, figures, and what `about` holds (its names, codes and periods,
        which are looked up in whole documents: a report names its company on its first page only)."""
        text = self.text
        for part in (*self.instructions, *(t.text for t in self.about)):
            text = text.replace(part, " ")
        # A term the question defines ("DPO is defined as ...") is its own: the documents hold the
        # parts it is computed from, not the term.
        defined = {w.lower() for m in _DEFINED.finditer(text) for w in _LETTERS.findall(m.group(1) or m.group(2))}
        words = dict.fromkeys(w.lower() for w in _LETTERS.findall(text))
        return tuple(w for w in words if w not in FRAMING and w not in defined)[:MAX_TERMS]

    @cached_property
    def uncased(self) -> bool:
        """Whether it has no capital but a sentence's first letter and "I" (typed in lower case, or naming
        nothing by a capital): its case says nothing of what names something ("unpaid leave rules
        quillon")."""
        for m in _LETTERS.finditer(self.text):
            if m.group() == "I" or not any(c.isupper() for c in m.group()):
                continue
            before = self.text[:m.start()].rstrip()
            if before and before[-1] not in ".?!:;":
                return False
        return True

    @cached_property
    def named(self) -> frozenset[str]:
        """Words it writes with a capital that grammar did not ask for ("Initech net income", "the
        Globex deal"), lower-cased; a first word before a glue word ("Outline the ...") is grammar, and
        an abbreviation ("AGM", "ESG") is as often a term the documents spell out as a name. None
        when it capitalises most of its words, as a title does."""
        words = list(_LETTERS.finditer(self.text))
        if sum(w.group()[0].isupper() for w in words) * 2 > len(words):
            return frozenset()
        out: set[str] = set()
        for i, w in enumerate(words):
            start = not self.text[:w.start()].strip() or self.text[:w.start()].rstrip()[-1] in ".?!:;"
            after = words[i + 1].group().lower() if i + 1 < len(words) else ""
            if w.group()[0].isupper() and not w.group().isupper() and not (start and (after in STOPWORDS or not after)):
                out.add(w.group().lower())
        return frozenset(out)

    @cached_property
    def abbreviations(self) -> frozenset[str]:
        """Words it writes in capitals ("COGS", "DPO"), lower-cased: terms a document may spell out in
        words of its own ("cost of products sold")."""
        return frozenset(w.lower() for w in _ABBREVIATION.findall(self.text))

    @cached_property
    def measures(self) -> frozenset[str]:
        """What a count is counted in ("how many grams of lentils"): the unit of the answer, which the
        documents may write otherwise ("250 g"), not what it is about."""
        return frozenset(m.lower() for m in _MEASURE.findall(self.text))

    @property
    def topic(self) -> str:
        """The question without its names and periods: what it asks about them ("gross margin")."""
        text = self.text
        for term in self.about:
            text = text.replace(term.text, " ")
        return re.sub(r"['’]s\b", " ", text)


@lru_cache(maxsize=64)
def read(text: str, names: frozenset[str] = frozenset()) -> Question:
    """`text` read as a question (cached: search, grounding, line scoring and every table row ask).
    `names`: words (lower-cased) the documents write as names, names wherever the question puts them
    and however it writes them (`kb.query.names`)."""
    found, rest = periods(text)
    return Question(text, tuple(_names(rest, names)), tuple(found), bool(_LATEST.search(text)), _instructions(text),
                    _codes(rest))


# --- words ----------------------------------------------------------------------------------------
def terms(query: str) -> list[str]:
    """The query's searchable terms, lower-cased, in order, without duplicates: words or phrases."""
    out: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(query):
        word = _WORD_POSSESSIVE.sub("", word)
        parts = [p.lower() for p in _PART.findall(word)]
        if not parts:
            continue
        for term in (" ".join(parts), *_figures_inside(parts)):
            if term not in seen:
                seen.add(term)
                out.append(term)
    kept = [t for t in out if t not in STOPWORDS]
    return (kept or out)[:MAX_TERMS]


def _figures_inside(parts: list[str]) -> list[str]:
    """The long numbers inside a word of letters and digits, as terms of their own: "FY2019" is about
    2019, which the text prints on its own ("fiscal 2019", "December 31, 2019")."""
    if len(parts) != 1 or parts[0].isdigit() or parts[0].isalpha():
        return []
    return _DIGITS.findall(parts[0])


def literals(query: str) -> list[str]:
    """What the user means verbatim: "quoted phrases" and figures (40,665; 5031; 2.45), as phrases
    of their parts.

    Embeddings blur exact figures and codes; hybrid search gives chunks that contain a rare
    literal a bonus of their own (see `kb.query.search`).
    """
    out: list[str] = []
    for phrase in _QUOTED.findall(query):
        parts = [p.lower() for p in _PART.findall(phrase)]
        if parts:
            out.append(" ".join(parts))
    for word in _WORD.findall(query):
        parts = _PART.findall(word)
        if parts and all(p.isdigit() for p in parts) and sum(len(p) for p in parts) >= 3:
            out.append(" ".join(parts))
    return list(dict.fromkeys(out))


def _instructions(text: str) -> tuple[str, ...]:
    """The sentences that say how to answer, when the question has others that say what to answer."""
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    found = tuple(s for s in sentences if _INSTRUCTION.match(s))
    return found if len(found) < len(sentences) else ()


# --- codes ----------------------------------------------------------------------------------------
def _codes(question: str) -> tuple[Code, ...]:
    """What names a model, version or code: a word of letters and digits ("S23", "AT-401", "NCT0615"),
    a word and a number with a leading zero ("site 022"), or a capitalised word followed by a version
    or a small number ("Beacon 3.0", "iPhone 16"), in `question` without its periods. Not a kind of
    form ("4-B", "12-Cs"), which names no one thing."""
    out: list[str] = []
    for m in _ALNUM.finditer(question):
        word = m.group()
        if not _FORM.fullmatch(word):
            out.append(word)
    out += [m.group() for m in _NUMBERED.finditer(question)]
    for m in _VERSIONED.finditer(question):
        before = question[:m.start()].rstrip()
        start = not before or before[-1] in ".?!:;"
        plain = not any(c.isupper() for c in m.group(1)[1:])
        if start and plain and "." not in m.group(2):  # "Top 10 customers": grammar's capital, not a product's
            continue
        if m.group(1).lower() not in FRAMING and not any(m.group(2) in c for c in out):
            out.append(m.group())
    return tuple(Code(c) for c in dict.fromkeys(out))


# --- names ----------------------------------------------------------------------------------------
def _names(question: str, known: frozenset[str] = frozenset()) -> list[Name]:
    """Runs of capitalised words that name something: "Tesla", "Johnson & Johnson", "iPhone",
    "AWS". A capitalised word that starts a sentence counts only when it plainly names something
    (possessive, all capitals, inner capitals): "Summarise ..." is grammar, "Tesla's ..." is a name.
    A word of `known` (the documents write it as a name) is one wherever it stands and however written."""
    runs: list[list[str]] = []
    current: list[str] = []
    pending: list[str] = []  # joiners ("of", "&") that count only between two names
    owners: set[str] = set()  # names the question puts in the possessive
    sentence_start = True
    position = 0
    for m in _TOKEN.finditer(question):
        gap = question[position:m.start()].strip()
        position = m.end()
        if gap and gap != "&":  # punctuation ends a name
            runs.append(current)
            current, pending = [], []
            sentence_start = sentence_start or bool(re.search(r"[.?!:;]", gap))
        elif gap == "&" and current:
            pending.append("&")
        word = m.group(0)
        bare = _POSSESSIVE.sub("", word)
        # "12-Cs": a kind of form, not a name
        code = m.start() >= 2 and question[m.start() - 1] == "-" and question[m.start() - 2].isdigit()
        # a first word the documents write as a name starts one ("Harrow Mills pension rules")
        capitalised = not code and (_capitalised_name(word, bare, sentence_start)
                                    or (bare.lower() in known and word[0].isupper()))
        if not code and not capitalised and bare.lower() in known:
            # a name the documents write as one, typed without its capital: a name of its own ("quillon
            # brackwater revenue" names two firms; nothing tells where one ends)
            runs += [current, [bare]]
            current, pending = [], []
        elif capitalised:
            current += [*pending, bare]
            pending = []
            if word != bare:  # a possessive ends the name: "ACME's Data Center" names two things
                owners.add(bare)
                runs.append(current)
                current = []
        elif current and bare.lower() in _JOINERS:
            pending.append(bare)
        else:
            runs.append(current)
            current, pending = [], []
        sentence_start = False
    runs.append(current)
    out: list[Name] = []
    seen: set[str] = set()
    # Abbreviations the question spells out ("days payable outstanding (DPO)", "DIO is defined as")
    # are its own shorthand, and one after a name ("Pepsico AGM") says what of it.
    defined = set(re.findall(r"\(([A-Z]{2,6})\)", question)) | set(re.findall(r"\b([A-Z]{2,6})\s+(?:is|are)\s+defined",
                                                                              question))
    runs = [[w for i, w in enumerate(run) if w not in defined and not (i and _ACRONYM.fullmatch(w))] for run in runs]
    # A bare abbreviation ("COGS", "EPS") is as often a term the documents spell out as a name; one
    # in the possessive ("AMD's") is a name.
    runs = [run for run in runs if not (len(run) == 1 and _ACRONYM.fullmatch(run[0]) and run[0] not in owners)]
    for run in filter(None, runs):
        text = " ".join(run)
        words = [w for part in run if part.lower() not in _JOINERS for w in re.split(r"[&.’'-]+", part) if w]
        if not words or text.lower() in seen:
            continue
        seen.add(text.lower())
        out.append(Name(text, tuple(words)))
    return out


def _capitalised_name(word: str, bare: str, sentence_start: bool) -> bool:
    if not word[0].isupper() and not any(c.isupper() for c in word[1:]):
        return False  # no capital at all
    if re.fullmatch(r"(?i)(?:Q[1-4]|[1-4]Q|H[12]|FY\d*|\d+)", bare):
        return False  # a period, read elsewhere
    if _CONTRACTION.search(word):
        return False
    lower = bare.lower()
    inner_capitals = any(c.isupper() for c in bare[1:])
    if lower in FRAMING and not inner_capitals:
        return False
    if len(bare) < 2:
        return False
    if sentence_start:
        return inner_capitals or word != bare  # "ACME", "iPhone", "Tesla's"
    return True
