"""Named failpoints in the write path, for crash tests: a real `kb` process made to die exactly there.

    KB_FAILPOINT=store.before_rename:kill kb ingest docs     # SIGKILL at the first save's rename
    KB_FAILPOINT=catalog.after_commit:kill@3 kb ingest docs   # ...at the third document's commit
    KB_FAILPOINT_LOG=/tmp/trace kb ingest docs                # append "name time_ns pid" at every point

Actions: `kill` (SIGKILL: no cleanup, no flush, as a crash), `raise` (a `KBError`, as a failed
write). Both variables are read once, at import; when neither is set, `failpoint` is a function that
returns at once. The names and where they sit are listed in `POINTS`.
"""

from __future__ import annotations

import os
import signal
import time

from kb.errors import KBError

POINTS = {
    "ingest.after_parse": "a parsed document is back from its worker, nothing of it written",
    "ingest.after_embed": "a group of documents is embedded, none of it committed",
    "catalog.in_transaction": "a document's rows are inserted, its transaction not committed",
    "catalog.after_commit": "a file's documents (an archive's: all) are in the catalog, their vectors not yet in the store",
    "store.before_save": "vectors are added in memory, the vectors file not yet written",
    "store.before_rename": "the new vectors file is written and synced, not yet renamed into place",
    "store.after_rename": "the new vectors file is in place, its folder not yet synced",
    "milvus.upsert": "a batch of chunk rows is about to be written to Milvus",
    "milvus.delete": "chunk rows are about to be deleted from Milvus",
    "team.after_chunks": "a document's chunks are in Milvus, its record not yet (the commit point)",
    "team.after_record": "a document's record is in Milvus, its older chunks not yet dropped",
    "team.pull": "a pull has mirrored one shared document into the local catalog, others pending",
    "reindex.after_save": "the new generation of vectors is saved, the catalog not yet switched to it",
    "reindex.after_switch": "the catalog uses the new vectors, the old file not yet deleted",
    "remove.after_forget": "one document of a `kb remove` is forgotten, the vectors not yet saved",
    "pdf.read": "a PDF is open in PDFium, its text not yet read (a crash of the native parser)",
}


class FailpointError(KBError):
    """Raised at a failpoint whose action is `raise`."""


def _parse(spec: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, action = item.partition(":")
        action, _, nth = (action or "kill").partition("@")
        if name not in POINTS or action not in ("kill", "raise"):
            raise KBError(f"KB_FAILPOINT: unknown failpoint or action {item!r} (points: {', '.join(POINTS)})")
        out[name] = (action, int(nth or 1))
    return out


_ARMED = _parse(os.environ.get("KB_FAILPOINT", ""))
_LOG = os.environ.get("KB_FAILPOINT_LOG")
_hits: dict[str, int] = {}


def _failpoint(name: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:  # one short append per point: lines never interleave
            f.write(f"{name} {time.monotonic_ns()} {os.getpid()}\n")
    armed = _ARMED.get(name)
    if armed is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != armed[1]:
        return
    if armed[0] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name} ({POINTS[name]})")


def _off(name: str) -> None:
    return None


failpoint = _failpoint if (_ARMED or _LOG) else _off
