"""What `kb serve` runs behind its routes: one `KnowledgeBase` kept open with its models warm, read by
many request threads at once (it owns the concurrency rules), written by one background worker
(ingest jobs, team-mode pulls, reloading vectors another process wrote).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.api import KnowledgeBase
from kb.errors import ConfigError, KBError
from kb.filters import Filters
from kb.ingest.pipeline import Ingesting
from kb.types import Hit, IngestReport
from kb.watch import Batch, Pass, Watcher

if TYPE_CHECKING:
    from kb.answer.chat import History
    from kb.answer.types import Answer
    from kb.llm.base import LLM

log = logging.getLogger("kb.server")

EXTERNAL_CHECK_S = 2.0  # how often an idle server looks for vectors another process wrote
MAX_JOBS_KEPT = 200  # finished ingest and remove jobs remembered for GET /jobs/{id}
MAX_WATCH_JOBS_KEPT = 50  # ...and watch passes, apart: a busy folder must not push a user's job out


# --- ingest jobs -------------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    paths: list[str]
    kind: str = "ingest"  # ingest | remove | watch: all writes, run one at a time by the service's worker
    delete_file: bool = False  # remove: the file is the server's own copy (an upload): delete it too
    run: Callable[..., IngestReport] | None = field(default=None, repr=False)  # watch: its pass (kb.watch.Pass.run)
    state: str = "queued"  # queued | running | done | failed | cancelled
    step: str | None = None  # kb.ingest.pipeline.Ingesting.step
    done: int = 0
    total: int | None = None
    current: str | None = None
    pages: int = 0
    chunks: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    ended: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)  # done, failed or cancelled

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "state": self.state, "paths": self.paths,
            "progress": {"step": self.step, "done": self.done, "total": self.total, "current": self.current,
                         "pages": self.pages, "chunks": self.chunks},
            "report": self.report, "error": self.error,
            "created": self.created, "started": self.started, "finished": self.finished,
        }


class _Cancelled(Exception):
    pass


# --- the service ---------------------------------------------------------------------------------
class Service:
    """One knowledge base served to many clients. Build with `Service.start`; `close` when done."""

    def __init__(self, kb: KnowledgeBase, llm: LLM | None, *, owns_kb: bool, llm_error: str | None = None,
                 wanted: LLM | str | None = None):
        self.kb = kb
        self.owns_kb = owns_kb
        self.path = kb.path
        self.settings = kb.settings
        self.llm = llm
        # The model failed to load at start: each question asks for it again (and says why it could not);
        # a GGUF is tried once per process, so that costs nothing.
        self.llm_error = llm_error
        self._wanted = llm if llm is not None else wanted if llm_error else "none"
        self._owner_refresh, kb.auto_refresh = kb.auto_refresh, False  # team pulls happen on the worker (`_work`)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._watch_jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_guard = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._stopping = threading.Event()
        self._busy = False
        self._watchers: list[tuple[Watcher, threading.Thread]] = []
        self._worker = threading.Thread(target=self._work, name="kb-serve-worker", daemon=True)
        self._worker.start()

    @classmethod
    def start(cls, kb: KnowledgeBase | str | os.PathLike[str] | None = None, *, llm: LLM | str | None = None,
              **overrides: Any) -> Service:
        """Open the knowledge base (creating an empty one if needed), load the embedder and the LLM.

        `llm`: an `LLM`, a backend name, "none" (extractive answers), or None for the configured
        default (`llm` setting; else a local Ollama; else extractive)."""
        owns = not isinstance(kb, KnowledgeBase)
        opened = kb if isinstance(kb, KnowledgeBase) else KnowledgeBase.open(kb, **overrides)
        try:
            opened.warm()  # creates the catalog file; on a team store, pulls the shared one
            model, failure = opened.load_llm(llm)
            if model is not None:
                model.take_start_s()  # started with `kb serve`: no question waits for it
        except BaseException:
            if owns:
                opened.close()
            raise
        return cls(opened, model, owns_kb=owns, llm_error=failure, wanted=llm)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker (a running ingest stops after its current file, its work kept), close the store."""
        for watcher, _ in self._watchers:
            watcher.stop()
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(timeout)
        for _, thread in self._watchers:
            thread.join(timeout)
        if self.owns_kb:
            self.kb.close()  # once the searches in flight end
        else:  # it stays open for its owner, as its owner had it
            self.kb.auto_refresh = self._owner_refresh

    # --- reading ---------------------------------------------------------------------------------
    def search(self, query: str, k: int, filters: Filters | None, mode: str | None) -> list[Hit]:
        return self.kb.search(query, k=k, filters=filters, mode=mode)

    def ask(self, question: str, k: int, filters: Filters | None, on_token: Callable[[str], None] | None = None,
            stream: bool = False, history: History = (), **generation: Any) -> Answer:
        """`history`: the client's earlier turns, oldest first; used for this answer only, never kept here."""
        result = self.kb.ask(question, k=k, filters=filters, llm=self._wanted, on_token=on_token,
                             stream=stream, history=history, **generation)
        if self.llm is None and self.llm_error is not None and (result.llm or result.model_answer is not None):
            # a model that failed at start answered now (an Ollama started since): kb holds it, loaded
            self.llm, self.llm_error = self.kb.load_llm(self._wanted)
        return result

    def model(self) -> dict[str, str | None]:
        """The answering model as GET /status shows it: its name, its state (`kb.llm.base.MODEL_STATES`, or
        "none" when answers quote the passages by choice) and why (a failure's reason)."""
        if self.llm is not None:
            state, reason = self.llm.state()
            return {"name": self.llm.name, "state": state, "reason": reason}
        if self.llm_error is not None:
            return {"name": None, "state": "failed", "reason": self.llm_error}
        return {"name": None, "state": "none", "reason": None}

    def status(self) -> dict[str, Any]:
        return self.kb.status().to_json()

    def documents(self) -> list[dict[str, Any]]:
        """Each document with its id and file URL, and what `kb documents --json` says of it (chunks,
        bytes, ingested_at), in source order."""
        return [{**d.to_json(), "url": f"/documents/{d.id}"} for d in self.kb.documents()]

    def document_file(self, doc_id: int) -> tuple[Path, str, str] | None:
        """(path, file type, source) of an ingested document whose file is on this machine, else None."""
        doc = self.kb.document(doc_id)
        if doc is None or not os.path.isfile(doc.path):
            return None
        return Path(doc.path), doc.file_type, doc.source

    # --- ingest jobs -------------------------------------------------------------------------------
    def submit(self, paths: list[str]) -> Job:
        return self._enqueue(Job(id=secrets.token_hex(8), paths=list(paths)))

    def remove(self, doc_id: int, *, owned: Path | None = None) -> Job | None:
        """Queue the removal of a document (None: no such document) as a job of the single writer, so it
        never runs beside an ingest. Its file is deleted too when it lies in `owned` (the uploads folder:
        the server's own copy); any other file is left where it is, as `kb remove` does."""
        doc = self.kb.document(doc_id)
        if doc is None:
            return None
        path = Path(doc.path)
        mine = owned is not None and path.is_relative_to(owned.resolve())
        return self._enqueue(Job(id=secrets.token_hex(8), paths=[doc.path], kind="remove", delete_file=mine))

    def _enqueue(self, job: Job) -> Job:
        kept, limit = (self._watch_jobs, MAX_WATCH_JOBS_KEPT) if job.kind == "watch" else (self._jobs, MAX_JOBS_KEPT)
        with self._jobs_guard:
            kept[job.id] = job
            while len(kept) > limit:
                oldest = next(iter(kept.values()))
                if oldest.state in ("queued", "running"):
                    break
                kept.popitem(last=False)
        self._queue.put(job)
        return job

    def job(self, job_id: str) -> Job | None:
        with self._jobs_guard:
            return self._jobs.get(job_id) or self._watch_jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Oldest first: the users' jobs and the latest watch passes."""
        with self._jobs_guard:
            return sorted([*self._jobs.values(), *self._watch_jobs.values()], key=lambda j: j.created)

    @property
    def busy(self) -> bool:
        return self._busy or not self._queue.empty()

    def _work(self) -> None:
        refresh_every = self.kb.refresh_every_s  # a team store: pull what others changed
        while not self._stopping.is_set():
            try:
                job = self._queue.get(timeout=refresh_every or EXTERNAL_CHECK_S)
            except queue.Empty:
                try:
                    self.kb.refresh() if refresh_every else self.kb.reload_if_changed()
                except Exception as e:  # the next round tries again; requests keep being served
                    log.warning("kb serve: could not sync the knowledge base: %s", e)
                continue
            if job is None:
                break
            self._busy = True
            try:
                self._run(job)
            finally:
                self._busy = False
        with self._jobs_guard:
            for job in [*self._jobs.values(), *self._watch_jobs.values()]:
                if job.state == "queued":
                    job.state, job.finished = "cancelled", time.time()
                    job.ended.set()

    def _run(self, job: Job) -> None:
        job.state, job.started = "running", time.time()

        def progress(p: Ingesting) -> None:
            if self._stopping.is_set():
                raise _Cancelled
            job.step, job.done, job.total, job.current = p.step, p.done, p.total or None, p.source or None
            job.pages, job.chunks = p.pages, p.chunks

        try:
            if job.kind == "remove":
                job.report = self._remove(self.kb, job)
            elif job.run is not None:
                job.report = job.run(self.kb, progress).to_json()
            else:
                job.report = self.kb.ingest(job.paths, progress=progress).to_json()
            job.done, job.total, job.current = job.total or 0, job.total or 0, None
            job.state = "done"
        except _Cancelled:
            job.state, job.error = "cancelled", "the server stopped; documents committed so far are kept"
        except KBError as e:
            job.state, job.error = "failed", str(e)
        except Exception as e:  # a bug must not kill the worker: report it on the job
            log.exception("kb serve: ingest job %s failed", job.id)
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"
        finally:  # the write saved the vectors of what was committed and released the write lock file
            job.finished = time.time()
            job.ended.set()

    @staticmethod
    def _remove(writer: KnowledgeBase, job: Job) -> dict[str, Any]:
        job.step, job.total = "removing", len(job.paths)
        removed = writer.remove(job.paths)
        deleted = []
        if job.delete_file:
            for path in job.paths:
                try:
                    Path(path).unlink()
                    deleted.append(path)
                except FileNotFoundError:
                    pass
                except OSError as e:  # forgotten all the same; the file is only a copy
                    log.warning("kb serve: could not delete the uploaded file %s: %s", path, e)
        return {"removed": removed, "deleted_files": deleted}

    # --- watched folders (kb serve --watch) ---------------------------------------------------------
    def watch(self, paths: list[str], *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
              on_batch: Callable[[Batch], None] | None = None) -> Watcher:
        """Keep the knowledge base in step with `paths` (see `kb.watch`) from a background thread. Each
        pass is a job of the single writer, so it never runs beside an ingest or a removal."""
        watcher = Watcher(paths, self._watch_pass, include=include, exclude=exclude, ignore=[self.path])

        def logged(batch: Batch) -> None:
            if batch.error:
                log.warning("kb watch: the changes could not be ingested yet (%s); trying again", batch.error)
            for line in batch.lines():
                log.info("kb watch: %s", line)

        def run() -> None:
            try:
                watcher.run(on_batch or logged)
            except Exception as e:  # the first pass failed: nothing is watched, the server goes on
                log.error("kb serve: not watching %s: %s", ", ".join(paths), e)

        thread = threading.Thread(target=run, name="kb-serve-watch", daemon=True)
        self._watchers.append((watcher, thread))
        thread.start()
        return watcher

    def _watch_pass(self, p: Pass) -> IngestReport:
        done: list[IngestReport] = []

        def run(writer: KnowledgeBase, progress: Callable[[Ingesting], None]) -> IngestReport:
            done.append(p.run(writer, progress))
            return done[-1]

        job = self._enqueue(Job(id=secrets.token_hex(8), paths=sorted(p.changed or p.paths), kind="watch", run=run))
        # The worker ends every job it takes and cancels those left when it stops; the timeout only
        # notices a worker that died some other way.
        while not job.ended.wait(1.0) and self._worker.is_alive():
            pass
        if job.state != "done" or not done:
            raise KBError(job.error or f"the server stopped before the changes were ingested ({job.state})")
        return done[0]


def check_roots(roots: list[Path]) -> list[Path]:
    out = []
    for root in roots:
        resolved = Path(root).expanduser().resolve()
        if not resolved.is_dir():
            raise ConfigError(f"{root}: not a folder (--docs)")
        out.append(resolved)
    return out
