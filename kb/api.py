"""`KnowledgeBase`: the library's one front door, safe to share between threads; the CLI, the server,
MCP, LangChain and `kb watch` all call its methods. It wires the parts together and holds none of
their logic: the `Index` (`kb.index`: catalog + vector store, read from any thread through
`Index.reading`), the `Embedder` (`kb.embed`, shared), the ingest `Pipeline` (`kb.ingest`), retrieval
(`kb.query`), answers (`kb.answer`) and the single-writer lock (`kb.lock`). Writes run one at a time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kb import answer as answering  # looked up per call (tests replace `load_llm`)
from kb.answer.tables import HEADER_WINDOW
from kb.config import Settings, check_mode, resolve_kb_dir
from kb.embed import (
    Embedder,
    Prompts,
    auto_backend,
    canonical_model_id,
    index_model,
    open_embedder,
    pick_backend,
    shareable,
)
from kb.embed.languages import trained_for
from kb.errors import ConfigError, KBError
from kb.index import Index, open_index
from kb.index.base import made_by, older_vectors
from kb.ingest.base import add_extensions, extensions, is_supported, parsers, stale_types
from kb.ingest.language import warning as language_warning
from kb.ingest.pipeline import Counting, Embedding, Pipeline, Progress, reembed
from kb.ingest.walk import Rules, Walked, walking
from kb.lock import WriteLock
from kb.query.aliases import Alias
from kb.query.aliases import named as named_aliases
from kb.query.names import written as written_names
from kb.query.rerank import Reranker, open_reranker
from kb.query.search import DEFAULT_TUNING, Tuning
from kb.query.search import search as run_search
from kb.types import CheckReport, DocumentInfo, FileOutcome, Hit, IngestReport, Stale, Status

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from kb.answer.chat import History
    from kb.answer.types import Answer
    from kb.filters import Filters
    from kb.index.base import VectorStore
    from kb.index.catalog import Catalog
    from kb.llm.base import LLM, Generation

_T = TypeVar("_T")
EMPTY = "the knowledge base at {} is empty: run `kb ingest PATH` first"


class KnowledgeBase:
    """A knowledge base in one folder: a SQLite catalog plus a vector store.

    >>> kb = KnowledgeBase.open("./.kb")          # doctest: +SKIP
    >>> kb.ingest(["docs"]).added                 # doctest: +SKIP
    >>> kb.search("backup schedule", k=3)         # doctest: +SKIP

    Share one between threads: search, ask, status and documents run side by side; ingest, remove,
    reindex, check and refresh run one at a time, and never change the store under a search."""

    def __init__(self, path: Path, settings: Settings, *, index: Index | None = None,
                 embedder: Embedder | None = None):
        self.path, self.settings = path, settings
        add_extensions(settings.code_extensions)  # what ingest and watch take (the workers are told in ChunkSpec)
        self.lock = WriteLock(path)
        self.auto_refresh = True  # reads pull a team store's changes when due (a server: on its worker)
        self._index = index
        self._embedder = None if embedder is None else shareable(embedder)
        self._model_id: str | None = None
        self._parts = threading.RLock()  # one thread opens the index and loads the model
        self._writing = threading.RLock()  # one write at a time (re-entered by a write that reads)
        self._llms: dict[tuple[object, ...], object] = {}  # loaded LLMs by settings (kb.answer.load_llm)
        self._llm_guard = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, **overrides: object) -> KnowledgeBase:
        return cls(kb_dir := resolve_kb_dir(path), Settings.load(kb_dir, overrides))

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the files once the write and searches in flight end; the next call reopens them (the model stays)."""
        with self._writing:  # a write in flight keeps its files and the lock until it ends
            with self._parts:  # released before the index waits for the searches, which may need it
                index, self._index, self._model_id = self._index, None, None
            try:
                if index is not None:
                    index.close()
            finally:
                self.lock.release(force=True)

    @property
    def index(self) -> Index:
        with self._parts:
            if self._index is None:
                self._index = open_index(self.path, self.settings)
            return self._index

    @property
    def catalog(self) -> Catalog:
        return self.index.catalog

    @property
    def store(self) -> VectorStore:
        return self.index.store

    @property
    def is_open(self) -> bool:
        """Whether this object holds the knowledge base's files open (`close` releases them)."""
        return self._index is not None

    @property
    def exists(self) -> bool:
        return self.index.exists

    @property
    def refresh_every_s(self) -> float | None:
        """How often a long-lived process should `refresh` (a team store), or None."""
        return self.index.refresh_every_s

    @property
    def model_id(self) -> str:
        """The index's own model when it has one; asking for another one is an error."""
        with self._parts:
            if self._model_id is None:
                self._model_id = index_model(self.settings, self.catalog.meta().get("model") if self.exists else None,
                                             self.path)
            return self._model_id

    @property
    def embedder(self) -> Embedder:
        with self._parts:
            if self._embedder is None:
                same = self.model_id == canonical_model_id(self.settings.model)
                meta = self.catalog.meta() if self.exists else {}
                # An index that holds vectors embeds with the prompts they were made with: queries and new
                # passages match the old ones; `kb reindex` moves it to the model's own (`Stale.vectors`).
                self._embedder = open_embedder(self.settings, self.settings.model if same else self.model_id,
                                               made_by(meta), Prompts.from_meta(meta) if meta.get("model") else None)
            return self._embedder

    def _embedding(self, make: Callable[[], Embedder] | None = None) -> Embedding:
        return Embedding(make or (lambda: self.embedder), self.settings, self.path)

    def warm(self) -> None:
        """Open the catalog (a team store: pull it) and load the embedding model now, not in a first search."""
        _ = self.catalog
        self.embedder.embed_query("warm up")

    def load_llm(self, llm: LLM | str | None = None) -> tuple[LLM | None, str | None]:
        """The LLM `ask` uses for `llm`, loaded once, or (None, why it failed): see `kb.answer.load_llm`."""
        with self._llm_guard:
            return answering.load_llm(self.settings, llm, self._llms)

    # --- writing: one at a time -------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Index]:
        with self._writing, self.lock:
            index = self.index
            index.refresh(index.refresh_every_s or 0.0)
            index.catch_up(self._embedder.model_id if self._embedder else None)  # what other processes wrote
            self._follow_prompts()
            try:
                yield index
            finally:
                index.written()

    def ingest(self, paths: Iterable[str], *, progress: Progress | None = None, include: Iterable[str] = (),
               exclude: Iterable[str] = (), changed: Iterable[str] | None = None, reparse: bool = False) -> IngestReport:
        """Add new files, re-index changed ones, move renamed ones (nothing re-embedded), drop files gone
        from the folders given. `include` and `exclude`: gitignore-style patterns, relative to each
        folder given, beside its `.kbignore` files. `changed`: absolute paths under the folders given
        that changed since the last pass (a watcher's events, `kb.watch`): only they are looked at.
        `reparse`: also re-read unchanged files that a newer reader reads better (`Status.stale`); with
        no `paths`, every such file in the knowledge base (`IngestReport.reparsed`)."""
        started = time.perf_counter()
        rules = Rules(tuple(include), tuple(exclude))
        scope = None if changed is None else frozenset(changed)
        paths = list(paths)
        if reparse and not paths and not self.exists:
            return IngestReport()
        if scope is None and not self.exists:
            nothing = _nothing_to_read(paths, rules)
            if nothing is not None:  # no knowledge base is made to hold nothing
                nothing.seconds = time.perf_counter() - started
                return nothing
        with self._write() as index:
            _ = self.model_id  # fail on a model mismatch before any work
            report = Pipeline(index, self._embedding()).run(paths, model=self.model_id, progress=progress,
                                                            rules=rules, changed=scope, reparse=reparse)
            if report.added or report.updated or report.reparsed:  # new text: said once, after the ingest that added it
                # read on the writer's own connection: a reader's would stay open, and the catalog's
                # write-ahead log would outlive the ingest
                report.language_warning = _languages(index.catalog, self.model_id)[1]
        report.seconds = time.perf_counter() - started
        return report

    def check(self, *, repair: bool = True) -> CheckReport:
        """Verify that catalog and vectors agree (and the catalog is sound); repair unless told not to.
        Also says what is stale (`CheckReport.stale`), which is no problem: it repairs nothing of that."""
        if not self.exists:
            return CheckReport(path=str(self.path), ok=True, integrity="ok")
        with self._write() as index:
            _ = self.model_id  # refuses another model before anything is re-embedded
            report = index.check(reembed(index.catalog, self._embedding()), repair=repair)
        report.stale = self.status().stale
        return report

    def reindex(self, model: str | None = None, *, progress: Counting | None = None) -> int:
        """Re-embed every chunk from the catalog (no re-parsing), e.g. with a new `model`, into a new store
        generation switched to in one transaction (interrupted, the old one stays); the chunks embedded."""
        if not self.exists:
            raise KBError(f"the knowledge base at {self.path} is empty: nothing to reindex")
        self.index.check_reindex()  # before the lock and the new model are taken
        with self._write() as index:
            embedding = self._embedding(lambda: open_embedder(self.settings, model or self.settings.model))
            ids = sorted(index.catalog.chunk_ids())
            build = {k: v for k, v in embedding.build().items() if k in ("model", "dimensions", "max_seq_length",
                                                                         "backend", "graph", "query_prompt",
                                                                         "passage_prompt")}

            def switched() -> None:  # with the store, under its write lock: no search meets one without the other
                self._embedder, self._model_id = embedding.embedder, None
                self.settings = self.settings.replace(model=embedding.embedder.model_id)

            index.replace_vectors(reembed(index.catalog, embedding, progress)(ids), build, switched=switched)
        return len(ids)

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Forget files (or all under folders) and their failures, not touching them; the sources forgotten."""
        if not self.exists:
            return []
        with self._write() as index:
            return index.remove([str(Path(given).expanduser().resolve()) for given in paths])

    def refresh(self, max_age: float = 0.0) -> None:
        """Team mode: pull what other members changed into the local mirror (if older than `max_age` s)."""
        with self._writing:
            self.index.refresh(max_age)

    def reload_if_changed(self) -> bool:
        """Read the vectors another process (`kb ingest`, `kb reindex`) rewrote; whether it did (not during a
        write here: the next call looks again). Another model's are logged and left (a restart reads them)."""
        if not self._writing.acquire(blocking=False):
            return False
        try:
            changed = self.index.reload_if_changed(self._embedder.model_id if self._embedder else self.model_id)
            if changed:
                self._follow_prompts()
            return changed
        finally:
            self._writing.release()

    def _follow_prompts(self) -> None:
        """Embed with the prompts the index's vectors are made with now (another process's `kb reindex`
        may have changed them): queries and new passages keep matching the stored ones."""
        if self._embedder is not None and self.exists:
            meta = self.catalog.meta()
            if meta.get("model") == self._embedder.model_id and Prompts.from_meta(meta) != self._embedder.prompts:
                self._embedder.use_prompts(Prompts.from_meta(meta))

    def _held(self) -> bool:
        """Whether anything was ingested; first a team store's pull when due, unless a write runs here."""
        every = self.index.refresh_every_s
        if every is not None and self.auto_refresh and self._writing.acquire(blocking=False):
            try:
                self.index.refresh(every)
            finally:
                self._writing.release()
        return self.exists

    # --- reading: from any thread ----------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, filters: Filters | None = None, mode: str | None = None,
               rerank: str | Reranker | None = None, tuning: Tuning | None = None) -> list[Hit]:
        """The `k` passages that best match `query`, among those passing `filters`. `mode`: "hybrid" (dense
        + keyword, the default), "dense" or "keyword"; None: the `mode` setting. `rerank`: a cross-encoder
        model name, or a `Reranker`, that reorders the best candidates; None: the `rerank` setting."""
        if not query.strip():
            raise ConfigError("the query is empty")
        mode = check_mode(mode or self.settings.mode)
        reranker = open_reranker(rerank if rerank is not None else self.settings.rerank, device=self.settings.device,
                                 backend=self.settings.rerank_backend, embedding_backend=self.settings.backend)
        if not self._held():
            raise KBError(EMPTY.format(self.path))
        _ = self.embedder  # loaded before the read lock is taken
        with self.index.reading() as view:
            if view.catalog.totals()[1] == 0:
                raise KBError(EMPTY.format(self.path))  # the embedder below: `reindex` swaps it with the store
            return run_search(view.catalog, view.store, self.embedder, query, k, filters=filters, mode=mode,
                              reranker=reranker, tuning=tuning or DEFAULT_TUNING)

    def _read(self, read: Callable[[Catalog], _T], *, pull: bool = False) -> _T | None:
        """`read` of this thread's catalog connection, or None where nothing was ever ingested."""
        if not (self._held() if pull else self.exists):
            return None
        with self.index.reading() as view:
            return read(view.catalog)

    def ask(self, question: str, k: int = 5, *, filters: Filters | None = None, llm: LLM | str | None = None,
            on_token: Callable[[str], None] | None = None, stream: bool = True, history: History = (),
            **generation: Unpack[Generation]) -> Answer:
        """Answer `question` from the top `k` passages with checked [n] citations (an `Answer`). `llm`: an
        `kb.llm.LLM`, a backend name, "none" (quote the best sentences), or None for the configured default;
        one that fails to load or while answering gives way to the quoted sentences (`Answer.llm_error`).
        `on_token` sees it stream. `generation`: temperature, top_p, top_k, max_tokens, num_beams. `history`:
        earlier turns, oldest first (`kb.Turn`): with a model, a follow-up is rewritten to stand alone
        (`Answer.rewritten`). No lock is held while the model writes."""
        model, failure = self.load_llm(llm)
        return answering.answer(self.search, self.embedder, question, k=k, filters=filters, llm=model,
                                on_token=on_token, stream=stream, llm_error=failure, history=history,
                                aliases=self.aliases, names=self.names, before=self._text_before, **generation)

    def _text_before(self, hit: Hit) -> str:
        """The text of `hit`'s document just above it: where the header of a table it starts inside is."""
        try:
            return self._read(lambda catalog: catalog.text_before(hit.doc_id, hit.char_start, HEADER_WINDOW)) or ""
        except (KBError, sqlite3.Error):  # a knowledge base being replaced: the answer goes on without it
            return ""

    def aliases(self, text: str) -> dict[str, Alias]:
        """The aliases `text` names that the documents define ("NnW", a ticker), by the word as `text`
        writes it: what each stands for and which documents define it (`kb.query.aliases`)."""
        return self._read(lambda catalog: {a.text: a for a in named_aliases(catalog, text)}) or {}

    def names(self, text: str) -> frozenset[str]:
        """The words of `text` (lower-cased) that its case leaves open and the documents write as names
        ("quillon" in "unpaid leave quillon", "Brackwater" in "Brackwater operating income"): `kb.query.names`."""
        try:
            return self._read(lambda catalog: written_names(catalog, text)) or frozenset()
        except (KBError, sqlite3.Error):  # a lookup that failed says nothing: the question is read as written
            return frozenset()

    def documents(self, filters: Filters | None = None) -> list[DocumentInfo]:
        """The documents passing the path and type parts of `filters`, in source order (failed: `failures`)."""
        return self._read(lambda catalog: catalog.listing(filters), pull=True) or []

    def document(self, doc_id: int) -> DocumentInfo | None:
        """One document by its id (`DocumentInfo.id`), or None."""
        return self._read(lambda catalog: next(iter(catalog.listing(doc_id=doc_id)), None))

    def text(self, doc: DocumentInfo, page: int | None = None) -> tuple[str, int | None, int | None]:
        """`doc`'s text as extracted (or that on `page`), its first and last page: see `Catalog.text`."""
        return self._read(lambda catalog: catalog.text(doc, page)) or ("", None, None)

    def failures(self, filters: Filters | None = None) -> list[FileOutcome]:
        """The files that could not be ingested, with the reason, in source order: those passing the path
        and type parts of `filters` (the type read from the file's extension, as ingest reads it)."""
        failed = self._read(lambda catalog: catalog.failures(filters.path if filters else None), pull=True) or []
        if filters is not None and filters.file_type:
            wanted = filters.file_type.lower().lstrip(".")
            types = {ext: parsers()[name].file_type for ext, name in extensions().items()}
            failed = [f for f in failed if types.get(Path(f.source).suffix.lower()) == wanted]
        return failed

    def status(self) -> Status:
        self._held()
        status = self.index.status(canonical_model_id(self.settings.model))
        # what a search or an ingest here would embed with (named without loading the model)
        status.backend = pick_backend(self.settings.backend, status.vectors)
        if status.backend == "auto":
            status.backend = auto_backend(self.settings.device)
        if status.documents:
            status.stale = self._stale(status)
            status.languages, status.language_warning = self._read(
                lambda catalog: _languages(catalog, status.model or self.model_id)) or ({}, None)
        return status

    def _stale(self, status: Status) -> Stale:
        """What a newer reader or embedding format does better than what built this knowledge base."""
        readers, meta = self._read(lambda catalog: (catalog.readers(), catalog.meta())) or ({}, {})
        types = stale_types(readers)
        return Stale(documents=sum(types.values()), types=types,
                     vectors=older_vectors(meta, status.backend or "", status.model or self.model_id)
                     if status.chunks else None)


def _nothing_to_read(paths: Iterable[str], rules: Rules) -> IngestReport | None:
    """The report of an ingest of `paths` that finds no file of a type kb reads (each file found
    skipped, or failed where named on its own), made without writing anything; None when there is
    one, or a path that is not there (the pipeline says so)."""
    report = IngestReport()
    for given in paths:
        if not os.path.exists(given):
            return None
        walked = Walked()
        for cand in walking(given, walked, rules):  # stops at the first file kb reads: the pipeline walks again
            if is_supported(cand.path):
                return None
            outcome = FileOutcome(cand.source, f"unsupported file type {cand.path.suffix or '(no extension)'}")
            (report.failed if cand.explicit else report.skipped).append(outcome)
        report.ignored += walked.ignored
        report.excluded += walked.excluded
    return report


def _languages(catalog: Catalog, model: str) -> tuple[dict[str, float], str | None]:
    """The share of the text per language (of all chunks), and the warning when most of it is in
    languages `model` was not trained for."""
    counts, chunks = catalog.languages(), catalog.totals()[1]
    if not chunks:
        return {}, None
    shares = {lang: round(n / chunks, 4) for lang, n in counts.items()}
    return shares, language_warning(shares, model, trained_for(model))
