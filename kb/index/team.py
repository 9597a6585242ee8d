"""`TeamIndex`: a knowledge base kept in a shared store (Milvus), with the local catalog as a mirror of it.

Milvus holds the truth (chunks with text and citation metadata, document records with hashes,
build metadata); each member's SQLite catalog is a cache that `pull` brings up to date when the
knowledge base opens, so search, ask, status and incremental ingest work unchanged on any machine
that has the URI. `TeamIndex.refresh` pulls at most every `TEAM_SYNC_S` in a long-lived process.
`publish` writes one document: chunks first, then its record (the commit point
other members sync on), then the chunks of its earlier version are dropped.

Chunk ids are derived from (path, content hash, position), so every member's catalog gives a chunk
the same id, and writing the same document twice writes the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kb.errors import ConfigError, KBError
from kb.failpoints import failpoint
from kb.index.base import DocumentRecord, Index, Reembed, Switched
from kb.index.store import Payload
from kb.types import Chunk

if TYPE_CHECKING:
    from kb.index.catalog import Catalog
    from kb.index.milvus import MilvusStore

log = logging.getLogger(__name__)

SOURCE_KEY = "team_source"  # local meta: the URI#collection this catalog mirrors
LOCAL_META = {"vectors", SOURCE_KEY}  # local meta keys that are not the shared build's
PULL_BATCH = 64  # documents whose chunks are read in one query
TEAM_SYNC_S = 10.0  # a long-lived process pulls others' changes at most this often
ORPHAN_GRACE_S = 3600.0  # chunks without a record younger than this may be another member's ingest in flight


def chunk_id(path: str, sha256: str, ord: int) -> int:
    """A positive 63-bit id, the same on every machine for the same chunk of the same content."""
    digest = hashlib.blake2b(f"{path}\0{sha256}\0{ord}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") & ((1 << 63) - 1)) or 1


@dataclass
class SyncReport:
    pulled: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # records whose chunks are not all there (yet)


def pull(catalog: Catalog, store: MilvusStore) -> SyncReport:
    """Make the local catalog mirror the shared one: new or changed documents in, vanished ones out."""
    report = SyncReport()
    meta = catalog.meta()
    _, chunks, _ = catalog.totals()
    if meta.get(SOURCE_KEY) is None and meta.get("store", "milvus") != "milvus" and chunks:
        raise ConfigError(
            f"{catalog.path.parent} holds a local {meta['store']} knowledge base: "
            "use another --kb folder for the Milvus one"
        )
    if meta.get(SOURCE_KEY) not in (None, store.location):
        # This folder mirrored another Milvus or collection: a cache, so start it afresh.
        for doc in catalog.documents():
            catalog.delete_document(doc.path)
        with catalog.transaction() as db:
            db.execute("DELETE FROM meta")
    remote_meta = {k: v for k, v in store.meta().items() if k not in LOCAL_META}
    catalog.set_meta(**remote_meta, **{SOURCE_KEY: store.location})

    remote = {d["path"]: d for d in store.documents()}
    local = {d.path: d for d in catalog.documents()}
    for path in local.keys() - remote.keys():
        catalog.delete_document(path)
        report.dropped.append(local[path].source)
    todo = sorted(p for p, d in remote.items() if p not in local or local[p].sha256 != d["sha256"])
    for start in range(0, len(todo), PULL_BATCH):
        batch = todo[start : start + PULL_BATCH]
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in store.chunk_rows(batch):
            if row["sha256"] == remote[row["path"]]["sha256"]:
                rows[row["path"]].append(row)
        for path in batch:
            record, found = remote[path], sorted(rows.get(path, []), key=lambda r: r["ord"])
            if len(found) != int(record["chunks"]):
                report.incomplete.append(record["source"])
                continue
            metadata = _json(record["metadata"]) or {}
            reader, version = metadata.pop(READER_KEY, None) or (None, 1)
            catalog.replace_document(
                path=path, source=record["source"], file_type=record["file_type"], sha256=record["sha256"],
                size=int(record["size"]), mtime_ns=int(record["mtime_ns"]), title=record["title"],
                pages=record["pages"], metadata=metadata, chunks=[_chunk(r) for r in found],
                ids=[int(r["id"]) for r in found], reader=reader, reader_version=int(version),
            )
            report.pulled.append(record["source"])
            failpoint("team.pull")
    if report.incomplete:
        log.warning("%d shared document(s) are being written or were cut short; skipped: %s",
                    len(report.incomplete), ", ".join(report.incomplete[:5]))
    return report


# The reader that read a document (kb.index.catalog, migration 4) rides in its shared record's metadata,
# under this key, so that the Milvus collections keep their schema.
READER_KEY = "_reader"


def publish(store: MilvusStore, *, path: str, source: str, file_type: str, sha256: str, size: int, mtime_ns: int,
            title: str, pages: int | None, metadata: dict[str, Any], chunks: list[Chunk], vectors: np.ndarray,
            previous: bool = True, reader: str | None = None, reader_version: int = 1) -> list[int]:
    """Write one document to Milvus (chunks, then its record, then drop older chunks); return chunk ids.

    `previous`: whether an earlier version may be there (the mirror knows the path). Dropping old
    chunks is a scan by filter, slow on Lite, so a new document skips it; leftovers of an ingest cut
    short are `repair`'s.
    """
    ids = [chunk_id(path, sha256, c.ord) for c in chunks]
    now = int(time.time())
    payloads: list[Payload] = [
        {"path": path, "source": source, "file_type": file_type, "sha256": sha256, "ord": c.ord, "text": c.text,
         "headings": list(c.headings), "page_start": c.page_start, "page_end": c.page_end,
         "char_start": c.char_start, "char_end": c.char_end, "tokens": c.tokens, "at": now}
        for c in chunks
    ]
    store.add(np.asarray(ids, dtype=np.int64), vectors, payloads)
    failpoint("team.after_chunks")
    store.put_document({"path": path, "source": source, "file_type": file_type, "sha256": sha256, "size": size,
                        "mtime_ns": mtime_ns, "title": title, "pages": pages,
                        "metadata": {**metadata, READER_KEY: [reader, reader_version]} if reader else metadata,
                        "chunks": len(chunks), "ingested_at": time.time()})
    failpoint("team.after_record")
    if previous:
        store.delete_stale_chunks(path, sha256)
    return ids


def push_meta(catalog: Catalog, store: MilvusStore) -> None:
    """Share how the index is built (model, dimensions, chunking...) when it changed."""
    local = {k: v for k, v in catalog.meta().items() if k not in LOCAL_META}
    remote = store.meta()
    changed = {k: v for k, v in local.items() if remote.get(k) != v}
    if changed:
        store.set_meta(**changed)


def repair(catalog: Catalog, store: MilvusStore, fix: bool = True) -> tuple[int, int]:
    """`TeamIndex.repair`: (orphan chunks, chunks missing), as found.

    Orphans are Milvus chunks that no document record claims: an older version of a document whose
    deletion was cut short (written no later than the record that replaced it: deleted at once, as
    `publish` would have), or an ingest cut short between its chunks and its record. Another
    member's ingest in flight looks like the latter for a moment, so those go only once older than
    ORPHAN_GRACE_S. Missing: mirrored chunks gone from Milvus (a member changed the document
    meanwhile); the document is dropped from the mirror and pulled again.
    """
    documents = store.documents()
    records = {(d["path"], d["sha256"]) for d in documents}
    recorded_at = {d["path"]: int(d["ingested_at"]) for d in documents}
    cutoff = time.time() - ORPHAN_GRACE_S
    orphans: list[int] = []
    present: set[int] = set()
    for row in store.rows(store.chunks_name, "", ("id", "path", "sha256", "at")):
        if (row["path"], row["sha256"]) in records:
            present.add(int(row["id"]))
        elif row["at"] < cutoff or row["at"] <= recorded_at.get(row["path"], -1):
            orphans.append(int(row["id"]))
        else:
            present.add(int(row["id"]))
    missing = set(catalog.chunk_ids()) - present
    if fix and orphans:
        store.delete(np.asarray(orphans, dtype=np.int64))
    if fix and missing:
        for path in {r["path"] for r in catalog.chunks(missing).values()}:
            catalog.delete_document(path)
        pull(catalog, store)
    if fix and (orphans or missing):
        store.save()
    return len(orphans), len(missing)


class TeamIndex(Index):
    """The shared store is the truth; every write goes there first, and the catalog follows."""

    refresh_every_s = TEAM_SYNC_S

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pulled_at = 0.0

    @property
    def team_store(self) -> MilvusStore:
        return self.store  # type: ignore[return-value]  # a `shared` store: the team methods below

    def _opened(self) -> None:
        try:  # pull what other members changed before anything reads the catalog
            self._pull()
        except BaseException:
            self.close()
            raise

    @property
    def exists(self) -> bool:
        _ = self.catalog  # the knowledge base lives in Milvus: mirror it (once) before anything looks
        return super().exists

    def refresh(self, max_age: float = 0.0) -> None:
        pulled = self._pulled_at
        _ = self.catalog  # the first open pulls
        if pulled and time.monotonic() - self._pulled_at > max_age:
            self._pull()

    def _pull(self) -> SyncReport:
        report = pull(self.catalog, self.team_store)
        self._pulled_at = time.monotonic()
        return report

    def record_build(self, build: dict[str, str]) -> None:
        super().record_build(build)
        push_meta(self.catalog, self.team_store)

    def commit(self, doc: DocumentRecord, chunks: list[Chunk], vectors: np.ndarray) -> tuple[list[int], list[int]]:
        # Milvus first (it is the truth the others mirror), with ids derived from path and content.
        ids = publish(self.team_store, **doc.fields(), chunks=chunks, vectors=vectors,
                      previous=self.catalog.document(doc.path) is not None)
        return self.catalog.replace_document(**doc.fields(), chunks=chunks, ids=ids)

    def forget(self, path: str) -> None:
        self.team_store.delete_document(path)
        self.catalog.delete_document(path)

    def repair(self, reembed: Reembed, *, fix: bool = True) -> tuple[int, int]:
        # Other members' vectors are not orphans, and a missing chunk is pulled again, not re-embedded.
        if not self.exists:
            return 0, 0
        return repair(self.catalog, self.team_store, fix)

    def check_reindex(self) -> None:
        raise KBError("kb reindex does not work on a Milvus store yet: ingest into a new --collection "
                      "with the new model")

    def replace_vectors(self, batches: Any, build: dict[str, str], *, switched: Switched | None = None) -> None:
        self.check_reindex()


def _chunk(row: dict[str, Any]) -> Chunk:
    return Chunk(ord=int(row["ord"]), text=row["text"], embed_text="", headings=tuple(_json(row["headings"]) or ()),
                 page_start=row["page_start"], page_end=row["page_end"], char_start=int(row["char_start"]),
                 char_end=int(row["char_end"]), tokens=int(row["tokens"]))


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}
