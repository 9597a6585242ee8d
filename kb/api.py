"""`KnowledgeBase`: the library's front door. Everything the CLI does goes through here.

It wires the parts together and holds none of their logic: the `Index` (catalog + vector store,
local or team: `kb.index`), the `Embedder` (`kb.embed`), the ingest `Pipeline` (`kb.ingest`),
retrieval (`kb.query`) and answers (`kb.answer`), and the single-writer lock (`kb.lock`).
Every part can be passed in instead of being opened from the settings.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.config import Settings, check_mode, resolve_kb_dir
from kb.embed import Embedder, canonical_model_id, make_embedder
from kb.errors import ConfigError, EmbedderMismatchError, KBError
from kb.failpoints import failpoint
from kb.index import Index, open_index
from kb.ingest.pipeline import Counting, Embedding, Pipeline, Progress, reembed
from kb.ingest.walk import Rules
from kb.lock import WriteLock
from kb.types import CheckReport, DocumentInfo, FileOutcome, Hit, IngestReport, Status

if TYPE_CHECKING:
    from kb.answer.chat import History
    from kb.answer.types import Answer
    from kb.filters import Filters
    from kb.index.base import VectorStore
    from kb.index.catalog import Catalog
    from kb.query.rerank import Reranker
    from kb.query.search import Tuning
    from kb.reader import Reader


class KnowledgeBase:
    """A knowledge base in one folder: a SQLite catalog plus a vector store.

    >>> kb = KnowledgeBase.open("./.kb")          # doctest: +SKIP
    >>> kb.ingest(["docs"]).added                 # doctest: +SKIP
    >>> kb.search("backup schedule", k=3)         # doctest: +SKIP

    Not thread-safe: share one across threads through `reader()`.
    """

    def __init__(self, path: Path, settings: Settings, *, index: Index | None = None,
                 embedder: Embedder | None = None):
        self.path = path
        self.settings = settings
        self.lock = WriteLock(path)
        self._reader: Reader | None = None
        self._reader_guard = threading.Lock()
        self._llms: dict[tuple[Any, ...], Any] = {}  # loaded LLMs by settings (kb.answer.resolve_llm)
        if index is not None:
            self.__dict__["index"] = index
        if embedder is not None:
            self.__dict__["embedder"] = embedder

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> KnowledgeBase:
        kb_dir = resolve_kb_dir(path)
        return cls(kb_dir, Settings.load(kb_dir, overrides))

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.closed:
            reader.close()
        index = self.__dict__.pop("index", None)
        try:
            if index is not None:
                index.close()
        finally:
            self.lock.release(force=True)

    # --- parts, opened on first use ------------------------------------------------------
    @cached_property
    def index(self) -> Index:
        return open_index(self.path, self.settings)

    @property
    def catalog(self) -> Catalog:
        return self.index.catalog

    @property
    def store(self) -> VectorStore:
        return self.index.store

    @property
    def is_open(self) -> bool:
        """Whether this object holds the knowledge base's files open (`close` releases them)."""
        return "index" in self.__dict__

    @property
    def exists(self) -> bool:
        return self.index.exists

    def refresh(self, max_age: float = 0.0) -> None:
        """Team mode: pull what other members changed into the local mirror (if older than `max_age` s)."""
        self.index.refresh(max_age)

    @cached_property
    def model_id(self) -> str:
        """The index's own model when it has one; asking for another one is an error."""
        built_with = self.catalog.meta().get("model") if self.exists else None
        wanted = canonical_model_id(self.settings.model)
        if built_with and built_with != wanted:
            if "model" in self.settings.explicit:
                raise EmbedderMismatchError(
                    f"{self.path} was built with the embedding model {built_with!r}, not {wanted!r}: "
                    "use that model, or re-embed with `kb reindex --model NEW`"
                )
            return built_with
        return wanted

    @cached_property
    def embedder(self) -> Embedder:
        model = self.model_id if self.model_id != canonical_model_id(self.settings.model) else self.settings.model
        return self._embedder_for(model)

    def _embedder_for(self, model: str) -> Embedder:
        # The backend (torch / onnx / onnx-int8) is recorded in the index but is not part of its identity:
        # one model's backends agree to >= 0.98 cosine and mixing them moved doc recall@5 on the retrieval benchmark by
        # < 1 point (benchmarks/PERFORMANCE.md), so `auto` takes the fastest one on every machine.
        return make_embedder(model, backend=self.settings.backend, device=self.settings.device,
                             batch_size=self.settings.batch_size)

    def _embedding(self, make: Callable[[], Embedder] | None = None) -> Embedding:
        return Embedding(make or (lambda: self.embedder), self.settings, self.path)

    # --- writing -----------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str], *, progress: Progress | None = None, include: Iterable[str] = (),
               exclude: Iterable[str] = (), changed: Iterable[str] | None = None) -> IngestReport:
        """Add new files, re-index changed ones, move renamed ones (nothing re-embedded), drop files gone
        from the folders given. `include` and `exclude`: gitignore-style patterns, relative to each
        folder given, beside its `.kbignore` files. `changed`: absolute paths under the folders given
        that changed since the last pass (a watcher's events, `kb.watch`): only they are looked at."""
        started = time.perf_counter()
        rules = Rules(tuple(include), tuple(exclude))
        scope = None if changed is None else frozenset(changed)
        with self.lock:
            _ = self.model_id  # fail on a model mismatch before any work
            report = Pipeline(self.index, self._embedding()).run(paths, model=self.model_id, progress=progress,
                                                                 rules=rules, changed=scope)
        report.seconds = time.perf_counter() - started
        return report

    def check(self, *, repair: bool = True) -> CheckReport:
        """Verify that catalog and vectors agree (and the catalog is sound); repair unless told not to."""
        if not self.exists:
            return CheckReport(path=str(self.path), ok=True, integrity="ok")
        integrity = self.catalog.integrity()
        with self.lock:
            _ = self.model_id  # refuses another model before anything is re-embedded
            orphans, missing = self.index.repair(reembed(self.catalog, self._embedding()), fix=repair)
        docs, chunks, _ = self.catalog.totals()
        return CheckReport(
            path=str(self.path), ok=integrity == "ok" and (repair or not (orphans or missing)), integrity=integrity,
            documents=docs, chunks=chunks, vectors=self.store.count(), orphan_vectors=orphans,
            missing_vectors=missing, repaired=repair and bool(orphans or missing),
        )

    def reindex(self, model: str | None = None, *, progress: Counting | None = None) -> int:
        """Re-embed every chunk from the catalog (no re-parsing), e.g. with a new `model`.

        The new vectors go to a new store generation; the catalog switches to it in one transaction,
        so an interruption leaves the old index in use. Returns the number of chunks embedded.
        """
        if not self.exists:
            raise KBError(f"the knowledge base at {self.path} is empty: nothing to reindex")
        self.index.check_reindex()  # before the lock and the new model are taken
        with self.lock:
            embedding = self._embedding(lambda: self._embedder_for(model or self.settings.model))
            ids = sorted(self.catalog.chunk_ids())
            build = {k: v for k, v in embedding.build().items()
                     if k in ("model", "dimensions", "max_seq_length", "backend")}
            self.index.replace_vectors(reembed(self.catalog, embedding, progress)(ids), build)
            self.__dict__["embedder"] = embedding.embedder
            self.__dict__.pop("model_id", None)
            self.settings = self.settings.replace(model=embedding.embedder.model_id)
        if self._reader is not None:  # it reads with the old model and vectors: the next reader() is new
            self._reader.close()
        return len(ids)

    def remove(self, paths: Iterable[str]) -> list[str]:
        """Forget files (or every file under folders), and the failures recorded for them; return the
        sources forgotten. The files themselves are not touched."""
        if not self.exists:
            return []
        removed: list[str] = []
        with self.lock:
            for given in paths:
                target = str(Path(given).expanduser().resolve())
                # A folder's documents, or a file's and those of the files inside it (a mail's attachments).
                docs = [d for d in [self.catalog.document(target)] if d] + self.catalog.documents_under(target)
                for doc in docs:
                    self.index.forget(doc.path)
                    removed.append(doc.source)
                    failpoint("remove.after_forget")
                removed += self.catalog.forget_failures(target)
            self.index.save()
        return removed

    # --- reading -------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, filters: Filters | None = None, mode: str | None = None,
               rerank: str | Reranker | None = None, tuning: Tuning | None = None) -> list[Hit]:
        """The `k` passages that best match `query`, among those passing `filters`.

        `mode`: "hybrid" (dense + keyword, the default), "dense" or "keyword"; None: the `mode`
        setting. `rerank`: a cross-encoder model name, or a `Reranker`, that reorders the best
        candidates; None: the `rerank` setting (off unless set).
        """
        from kb.query.rerank import open_reranker
        from kb.query.search import DEFAULT_TUNING
        from kb.query.search import search as run_search

        if not query.strip():
            raise ConfigError("the query is empty")
        mode = check_mode(mode or self.settings.mode)
        reranker = open_reranker(rerank if rerank is not None else self.settings.rerank, device=self.settings.device)
        if not self.exists or self.catalog.totals()[1] == 0:
            raise KBError(f"the knowledge base at {self.path} is empty: run `kb ingest PATH` first")
        return run_search(self.catalog, self.store, self.embedder, query, k, filters=filters, mode=mode,
                          reranker=reranker, tuning=tuning or DEFAULT_TUNING)

    def ask(self, question: str, k: int = 5, *, filters: Filters | None = None, llm: Any = None,
            on_token: Callable[[str], None] | None = None, stream: bool = True, history: History = (),
            **generation: Any) -> Answer:
        """Answer `question` from the top `k` passages with checked [n] citations (an `Answer`).

        `llm`: an `kb.llm.LLM`, a backend name, "none" (quote the best sentences), or None for the
        configured default. A model that fails to load or while answering gives way to the quoted
        sentences, the reason in `Answer.llm_error`. `on_token` sees the answer as it streams. `generation`: temperature,
        top_p, top_k, max_tokens, num_beams. `history`: earlier turns of a conversation, oldest first
        (`kb.Turn(question, answer)`): with a model, a follow-up is rewritten to stand alone before it is
        searched (`Answer.rewritten`); without one it is searched as typed. See `kb.answer`.
        """
        from kb.answer import answer, load_llm

        model, failure = load_llm(self.settings, llm, self._llms)
        return answer(self.search, self.embedder, question, k=k, filters=filters, llm=model, on_token=on_token,
                      stream=stream, llm_error=failure, history=history, **generation)

    def documents(self, filters: Filters | None = None) -> list[DocumentInfo]:
        """The documents held (those passing the path and type parts of `filters`), in source order;
        the files that failed are in `failures()`."""
        return self.catalog.listing(filters) if self.exists else []

    def failures(self, filters: Filters | None = None) -> list[FileOutcome]:
        """The files that could not be ingested, with the reason, in source order: those passing the path
        and type parts of `filters` (the type read from the file's extension, as ingest reads it)."""
        if not self.exists:
            return []
        failed = self.catalog.failures(filters.path if filters else None)
        if filters is not None and filters.file_type:
            from kb.ingest.base import extensions, parsers

            wanted = filters.file_type.lower().lstrip(".")
            types = {ext: parsers()[name].file_type for ext, name in extensions().items()}
            failed = [f for f in failed if types.get(Path(f.source).suffix.lower()) == wanted]
        return failed

    def status(self) -> Status:
        return self.index.status(canonical_model_id(self.settings.model))

    def reader(self) -> Reader:
        """A thread-safe view for reading from many threads at once (a server, a LangChain chain):
        one per knowledge base, closed with it. See `kb.reader.Reader`."""
        with self._reader_guard:
            if self._reader is None or self._reader.closed:
                from kb.reader import Reader

                self._reader = Reader(self)
            return self._reader
