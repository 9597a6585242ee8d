"""SQLite catalog: the source of truth for documents, chunks, their text and citation metadata.

Vectors are derived from it: any chunk here can be re-embedded from its stored text, which is how
a crash between the catalog commit and the vector save is repaired. FTS5 indexes chunk text for
keyword search. Schema changes are numbered migrations tracked in `PRAGMA user_version`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from kb.errors import CatalogError, disk_full, is_disk_full
from kb.failpoints import failpoint
from kb.filters import Filters, glob_escape
from kb.types import Chunk, DocumentInfo, FileOutcome

_T = TypeVar("_T")

MIGRATIONS: list[str] = [
    # 1: documents, chunks, full-text index, failures, index metadata
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,          -- absolute, resolved: the identity of the file
        source TEXT NOT NULL,               -- absolute, as the user named it (not resolved): shown in citations
        file_type TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        title TEXT NOT NULL,
        pages INTEGER,
        metadata TEXT NOT NULL DEFAULT '{}',
        ingested_at REAL NOT NULL
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a stale vector can't point at new text
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        text TEXT NOT NULL,
        headings TEXT NOT NULL DEFAULT '[]',
        section TEXT,
        page_start INTEGER,
        page_end INTEGER,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        tokens INTEGER NOT NULL
    );
    CREATE INDEX chunks_doc ON chunks(doc_id, ord);
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, section, content='chunks', content_rowid='id', tokenize='porter unicode61'
    );
    CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text, section) VALUES (new.id, new.text, new.section);
    END;
    CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text, section) VALUES ('delete', old.id, old.text, old.section);
    END;
    CREATE TABLE failures (
        path TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
    # 2: keyword index over each document's title and file path, for the document-level match
    # in hybrid search (a question naming "Q3 2023" should favour the file called "2023 Q3 ...").
    """
    CREATE VIRTUAL TABLE documents_fts USING fts5(
        title, source, content='documents', content_rowid='id', tokenize='porter unicode61'
    );
    INSERT INTO documents_fts(rowid, title, source) SELECT id, title, source FROM documents;
    CREATE TRIGGER documents_ai AFTER INSERT ON documents BEGIN
        INSERT INTO documents_fts(rowid, title, source) VALUES (new.id, new.title, new.source);
    END;
    CREATE TRIGGER documents_ad AFTER DELETE ON documents BEGIN
        INSERT INTO documents_fts(documents_fts, rowid, title, source) VALUES ('delete', old.id, old.title, old.source);
    END;
    CREATE TRIGGER documents_au AFTER UPDATE OF title, source ON documents BEGIN
        INSERT INTO documents_fts(documents_fts, rowid, title, source) VALUES ('delete', old.id, old.title, old.source);
        INSERT INTO documents_fts(rowid, title, source) VALUES (new.id, new.title, new.source);
    END;
    """,
    # 3: sources are absolute (they were stored as typed, e.g. "../docs/a.pdf", wrong from any other
    # folder); the resolved path is the best absolute name an old catalog has.
    """
    UPDATE documents SET source = path WHERE source NOT LIKE '/%' AND path LIKE '/%';
    UPDATE failures SET source = path WHERE source NOT LIKE '/%' AND path LIKE '/%';
    """,
    # 4: which reader read each file: the parser (its registry name) and that parser's `version`, so that
    # files a newer reader reads better are known (`kb status`, `kb ingest --reparse`). Documents from
    # before were read by version 1 of the parser their extension names (reader NULL).
    """
    ALTER TABLE documents ADD COLUMN reader TEXT;
    ALTER TABLE documents ADD COLUMN reader_version INTEGER NOT NULL DEFAULT 1;
    """,
]


@dataclass
class DocumentRecord:
    """What the catalog keeps of one ingested file, besides its chunks."""

    path: str  # absolute, resolved: the file's identity
    source: str  # as the user gave it: shown in citations
    file_type: str
    sha256: str
    size: int
    mtime_ns: int
    title: str
    pages: int | None
    metadata: dict[str, Any] = field(default_factory=dict)
    reader: str | None = None  # the parser that read the file (its registry name; None: not recorded)
    reader_version: int = 1  # that parser's `version` (kb.ingest.base.reader_of)

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class DocumentRow(DocumentRecord):
    """A document as read back from the catalog, with its id (`metadata` is not read)."""

    id: int = 0


class Catalog:
    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = path
        self._writes = 0  # this connection's commits: PRAGMA data_version counts only other connections'
        self._memos: dict[str, tuple[tuple[int, int], Any]] = {}  # key: (changes() when computed, value)
        # term -> (changes() when counted, chunks per document): the latest TERMS_KEPT terms looked up
        self._term_chunks: OrderedDict[str, tuple[tuple[int, int], dict[int, int]]] = OrderedDict()
        self._nested = 0  # depth of `transaction` blocks open
        # A folder this user cannot write (a shared, read-only knowledge base): read the file as it is.
        # SQLite could not create the WAL index beside it, and nobody here can change it.
        frozen = path.is_file() and not os.access(path.parent, os.W_OK)
        readonly = readonly or frozen
        try:
            if readonly:
                mode = "ro&immutable=1" if frozen else "ro"
                self.db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=30, check_same_thread=False)
            else:
                self.db = sqlite3.connect(path, timeout=30, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            # WAL with a sync at every commit: a document committed before a power loss is still
            # there after it (NORMAL would keep the file sound but may lose the last commits).
            self.db.execute("PRAGMA synchronous=FULL")
            if not readonly:
                self._migrate()
            schema = self._check_version()
        except sqlite3.DatabaseError as e:
            if is_disk_full(e):
                raise disk_full(path.parent, "open the catalog") from e
            raise CatalogError(f"{path}: {e}") from e
        self._columns = _DOC_COLUMNS if schema >= 4 else _DOC_COLUMNS_3

    def _check_version(self) -> int:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise CatalogError(f"{self.path} was written by a newer kb (schema {version}); upgrade kb")
        return int(version)

    def _migrate(self) -> None:
        version = self._check_version()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db:
                self.db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction. One begun inside another is part of it: committed, or rolled back, with it
        (an archive's files go in with the archive, or none of them)."""
        if self._nested:
            self._nested += 1
            try:
                yield self.db
            finally:
                self._nested -= 1
            return
        self._nested = 1
        try:
            with self.db:
                yield self.db
        except sqlite3.DatabaseError as e:  # rolled back: the catalog is as before the transaction
            if is_disk_full(e):
                raise disk_full(self.path.parent, "write the catalog") from e
            raise CatalogError(f"{self.path}: {e}") from e
        finally:
            self._nested = 0
            self._writes += 1

    # --- index metadata -------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in values.items()],
            )

    # --- documents --------------------------------------------------------------------------
    def document(self, path: str) -> DocumentRow | None:
        row = self.db.execute(f"SELECT {self._columns} FROM documents WHERE path = ?", (path,)).fetchone()
        return _document(row) if row else None

    def document_by_id(self, doc_id: int) -> DocumentRow | None:
        row = self.db.execute(f"SELECT {self._columns} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return _document(row) if row else None

    def documents(self) -> list[DocumentRow]:
        return [_document(r) for r in self.db.execute(f"SELECT {self._columns} FROM documents ORDER BY path")]

    def listing(self, filters: Filters | None = None, *, doc_id: int | None = None) -> list[DocumentInfo]:
        """Every document that passes the document-level part of `filters` (path, type), with its
        chunk count, in source order: what `kb documents` shows. `doc_id`: only that document."""
        where, params = filter_sql(Filters(path=filters.path, file_type=filters.file_type, where=filters.where)
                                   if filters else Filters())
        if doc_id is not None:
            where, params = f"({where}) AND d.id = ?", [*params, doc_id]
        rows = self.db.execute(
            "SELECT d.source, d.file_type, d.title, d.pages, count(c.id), d.size, d.ingested_at, d.id,"
            " coalesce(json_extract(d.metadata, '$.unit'), 'page'), json_extract(d.metadata, '$.date'), d.path"
            f" FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id WHERE {where} GROUP BY d.id ORDER BY d.source",
            params,
        )
        return [DocumentInfo(*r) for r in rows]

    def text(self, doc: DocumentInfo, page: int | None = None) -> tuple[str, int | None, int | None]:
        """The text of `doc` (or of its chunks on `page`), assembled from its chunks in order, and the
        first and last page it covers (a chunk that crosses a page break brings its other page along).

        Chunks may overlap (the chunker carries a few sentences over) and leave the blank lines between
        blocks out: the span each chunk covers in the extracted text puts every character in once."""
        filters = Filters(path=glob_escape(doc.source), pages=(page, page) if page else None)
        rows = [c for c in self.chunks(self.filtered_ids(filters)).values() if c["doc_id"] == doc.id]
        parts: list[str] = []
        end: int | None = None
        for c in sorted(rows, key=lambda c: (c["char_start"], c["char_end"])):
            text, start = c["text"], c["char_start"]
            if end is not None:
                if c["char_end"] <= end:
                    continue
                if start < end:
                    text = text[end - start:]
                else:
                    parts.append("\n\n")
            parts.append(text)
            end = c["char_end"]
        starts = [c["page_start"] for c in rows if c["page_start"] is not None]
        ends = [c["page_end"] or c["page_start"] for c in rows if c["page_start"] is not None]
        return "".join(parts), min(starts, default=None), max(ends, default=None)

    def common_folder(self) -> str | None:
        """The deepest folder that holds every document (the folder ingested, for most knowledge
        bases): the common prefix of the first and last source in sort order is every source's.
        Remembered until the catalog changes (every MCP search names files from there)."""

        def folder() -> str | None:
            first, last = self.db.execute("SELECT min(source), max(source) FROM documents").fetchone()
            if first is None:
                return None
            prefix = os.path.commonprefix([first, last])
            return prefix[: prefix.rfind("/")] or "/" if "/" in prefix else None

        return self._memo("folder", folder)

    def documents_under(self, root: str) -> list[DocumentRow]:
        """The documents whose path starts with `root/`: a folder's, or a file's parts. A range of the
        path index (every path between "root/" and "root0", '0' following '/'), not a scan: the
        ingest asks this of every file it commits."""
        prefix = root.rstrip("/") + "/"
        rows = self.db.execute(
            f"SELECT {self._columns} FROM documents WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0")
        )
        return [_document(r) for r in rows]

    def touch(self, doc_id: int, *, source: str, mtime_ns: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE documents SET source = ?, mtime_ns = ? WHERE id = ?", (source, mtime_ns, doc_id))

    def replace_document(
        self,
        *,
        path: str,
        source: str,
        file_type: str,
        sha256: str,
        size: int,
        mtime_ns: int,
        title: str,
        pages: int | None,
        metadata: dict[str, Any],
        chunks: list[Chunk],
        ids: list[int] | None = None,
        reader: str | None = None,
        reader_version: int = 1,
    ) -> tuple[list[int], list[int]]:
        """Put a document and all its chunks in one transaction; return (old chunk ids, new ones).

        `ids`: the chunks' ids, when the store decides them (a team store derives them from path,
        content hash and position, so that every member's catalog agrees); else new ones.
        """
        with self.transaction() as db:
            old = [r[0] for r in db.execute("SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.path = ?", (path,))]
            db.execute("DELETE FROM documents WHERE path = ?", (path,))
            cur = db.execute(
                "INSERT INTO documents(path, source, file_type, sha256, size, mtime_ns, title, pages, metadata, ingested_at,"
                " reader, reader_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path, source, file_type, sha256, size, mtime_ns, title, pages, json.dumps(metadata, default=str), time.time(),
                 reader, reader_version),
            )
            doc_id = cur.lastrowid
            new = []
            for n, c in enumerate(chunks):
                cur = db.execute(
                    "INSERT INTO chunks(id, doc_id, ord, text, headings, section, page_start, page_end, char_start, char_end, tokens)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ids[n] if ids is not None else None, doc_id, c.ord, c.text, json.dumps(list(c.headings)), c.section,
                     c.page_start, c.page_end, c.char_start, c.char_end, c.tokens),
                )
                assert cur.lastrowid is not None  # an INSERT sets it
                new.append(cur.lastrowid)
            db.execute("DELETE FROM failures WHERE path = ?", (path,))
            failpoint("catalog.in_transaction")
        return old, new

    def move_document(self, path: str, to: str, *, source: str, mtime_ns: int, title: str) -> list[int]:
        """Give a document a new path (its file was renamed, the content unchanged), keeping its chunks
        and their ids, in one transaction; a document already at `to` is replaced. Returns the ids of
        the replaced document's chunks."""
        with self.transaction() as db:
            replaced = [r[0] for r in db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.path = ?", (to,))]
            db.execute("DELETE FROM documents WHERE path = ?", (to,))
            db.execute("UPDATE documents SET path = ?, source = ?, mtime_ns = ?, title = ? WHERE path = ?",
                       (to, source, mtime_ns, title, path))
            db.execute("DELETE FROM failures WHERE path = ?", (to,))
        return replaced

    def delete_document(self, path: str) -> list[int]:
        """Remove a document; return the ids of the chunks it had."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.path = ?", (path,))]
            db.execute("DELETE FROM documents WHERE path = ?", (path,))
            db.execute("DELETE FROM failures WHERE path = ?", (path,))
        return ids

    # --- failures ---------------------------------------------------------------------------
    def record_failure(self, path: str, source: str, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO failures(path, source, reason, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET source = excluded.source, reason = excluded.reason, at = excluded.at",
                (path, source, reason, time.time()),
            )

    def clear_failures_under(self, root: str, keep: Iterable[str]) -> None:
        prefix = root.rstrip("/") + "/"
        keep = set(keep)
        with self.transaction() as db:
            rows = db.execute("SELECT path FROM failures WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)).fetchall()
            db.executemany("DELETE FROM failures WHERE path = ?", [(p,) for (p,) in rows if p not in keep])

    def forget_failures(self, target: str) -> list[str]:
        """Forget the failure recorded for the file `target`, or for every file under the folder
        `target`; return their sources."""
        prefix = target.rstrip("/") + "/"
        with self.transaction() as db:
            rows = db.execute("SELECT path, source FROM failures WHERE path = ? OR substr(path, 1, ?) = ?",
                              (target, len(prefix), prefix)).fetchall()
            db.executemany("DELETE FROM failures WHERE path = ?", [(p,) for p, _ in rows])
        return [source for _, source in rows]

    def failures(self, path: str | None = None) -> list[FileOutcome]:
        """The files that could not be ingested, with the reason; `path`: only those matching this glob, as
        the `path` filter matches documents."""
        where, params = _path_where(path, "f") if path else ("1", [])
        sql = f"SELECT f.source, f.reason FROM failures f WHERE {where} ORDER BY f.source"
        return [FileOutcome(s, r) for s, r in self.db.execute(sql, params)]

    # --- chunks -----------------------------------------------------------------------------
    def chunk_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks")]

    def chunks(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Chunk rows with their document's source and type, keyed by chunk id."""
        ids = list(ids)
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self.db.execute(
                "SELECT c.id, c.doc_id, c.text, c.headings, c.section, c.page_start, c.page_end, c.char_start,"
                " c.char_end, d.source, d.file_type, d.title, d.path, coalesce(json_extract(d.metadata, '$.unit'), 'page')"
                f" FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                batch,
            )
            for r in rows:
                out[r[0]] = {
                    "id": r[0], "doc_id": r[1], "text": r[2], "headings": tuple(json.loads(r[3])), "section": r[4],
                    "page_start": r[5], "page_end": r[6], "char_start": r[7], "char_end": r[8],
                    "source": r[9], "file_type": r[10], "title": r[11], "path": r[12], "unit": r[13],
                }
        return out

    def chunk_documents(self, ids: Iterable[int]) -> dict[int, int]:
        """The document id of each chunk id given (ids no longer in the catalog are left out)."""
        ids = list(ids)
        out: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            out.update(self.db.execute(f"SELECT id, doc_id FROM chunks WHERE id IN ({marks})", batch).fetchall())
        return out

    def document_paths(self, filters: Filters) -> list[str]:
        """Paths of the documents that pass the document-level part of `filters` (path glob, file type)."""
        where, params = filter_sql(Filters(path=filters.path, file_type=filters.file_type, where=filters.where))
        return [r[0] for r in self.db.execute(f"SELECT d.path FROM documents d WHERE {where}", params)]

    def filtered_ids(self, filters: Filters) -> list[int]:
        """Ids of the chunks that pass `filters`."""
        where, params = filter_sql(filters)
        sql = f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}"
        return [r[0] for r in self.db.execute(sql, params)]

    def keyword_search(self, match: str, limit: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Best `limit` (chunk id, BM25 score; higher is better) for an FTS5 `match` expression.

        `filters` apply inside the query, so `limit` counts only chunks that pass them. `match`
        must already be safe FTS5 syntax (see `kb.query.fts.match_expression`).
        """
        score = "bm25(chunks_fts, 1.0, 0.5)"  # a heading match counts half a body match
        if filters is None or filters.is_empty():
            sql = f"SELECT rowid, {score} AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?"
            params: list[object] = [match, limit]
        else:
            where, fparams = filter_sql(filters)
            sql = (
                f"SELECT chunks_fts.rowid, {score} AS s FROM chunks_fts"
                " JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id"
                f" WHERE chunks_fts MATCH ? AND {where} ORDER BY s LIMIT ?"
            )
            params = [match, *fparams, limit]
        try:
            return [(int(i), -float(s)) for i, s in self.db.execute(sql, params)]
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"{self.path}: keyword search failed: {e}") from e

    def document_matches(self, match: str) -> dict[int, float]:
        """BM25 score (higher is better) of each document whose title or file path matches `match`."""
        if not self._has_table("documents_fts"):  # a catalog opened read-only before migration 2
            return {}
        sql = "SELECT rowid, bm25(documents_fts) FROM documents_fts WHERE documents_fts MATCH ?"
        try:
            return {int(i): -float(s) for i, s in self.db.execute(sql, (match,))}
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"{self.path}: keyword search failed: {e}") from e

    def document_term_chunks(self, terms: Iterable[str]) -> dict[str, dict[int, int]]:
        """For each FTS5 term (a word or a phrase), how many chunks of each document hold it."""
        sql = (
            "SELECT c.doc_id, count(*) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
            " WHERE chunks_fts MATCH ? GROUP BY c.doc_id"
        )
        out: dict[str, dict[int, int]] = {}
        stamp = None if self.db.in_transaction else self.changes()  # mid-write: count now, keep nothing
        try:
            for term in terms:
                held = self._term_chunks.get(term)
                if held is not None and stamp is not None and held[0] == stamp:
                    self._term_chunks.move_to_end(term)
                    out[term] = held[1]
                    continue
                out[term] = {int(d): int(n) for d, n in self.db.execute(sql, (fts_quote(term),))}
                if stamp is not None:  # a question's names are looked up again by each part of hybrid search
                    self._term_chunks[term] = (stamp, out[term])
                    while len(self._term_chunks) > TERMS_KEPT:
                        self._term_chunks.popitem(last=False)
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"{self.path}: keyword search failed: {e}") from e
        return out

    def document_dates(self) -> dict[int, str]:
        """The date of each document that has one (metadata `date`, ISO: "2023-07-01", a mail's with
        its time); remembered until the catalog changes, as every question about "the latest" asks."""

        def dates() -> dict[int, str]:
            sql = "SELECT id, json_extract(metadata, '$.date') FROM documents WHERE json_extract(metadata, '$.date') <> ''"
            return {int(i): str(d) for i, d in self.db.execute(sql)}

        return self._memo("dates", dates)

    def document_quarters(self) -> dict[int, tuple[str, str]]:
        """The quarter each quarterly report is about, as read at ingest (metadata `quarter`, "2023-Q3",
        and `fiscal_quarter`, "" when it counts no fiscal year of its own); remembered until the catalog
        changes."""

        def quarters() -> dict[int, tuple[str, str]]:
            sql = ("SELECT id, json_extract(metadata, '$.quarter'), json_extract(metadata, '$.fiscal_quarter')"
                   " FROM documents WHERE json_extract(metadata, '$.quarter') <> ''")
            return {int(i): (str(q), str(f or "")) for i, q, f in self.db.execute(sql)}

        return self._memo("quarters", quarters)

    def aliases(self) -> dict[str, list[tuple[str, str, bool, int]]]:
        """The aliases the documents define (metadata `aliases`, read at ingest by kb.ingest.aliases), by
        their lower case: (the alias as written, the name it stands for, whether it matches only as
        written, the document). Remembered until the catalog changes: every search looks its words up."""

        def read() -> dict[str, list[tuple[str, str, bool, int]]]:
            out: dict[str, list[tuple[str, str, bool, int]]] = {}
            sql = ("SELECT id, json_extract(metadata, '$.aliases'), json_extract(metadata, '$.aliases_cased')"
                   " FROM documents WHERE json_extract(metadata, '$.aliases') IS NOT NULL")
            for doc, found, cased in self.db.execute(sql):
                try:
                    names, only = json.loads(found), set(json.loads(cased) if cased else ())
                except ValueError:  # a document whose metadata was written otherwise: it names no alias
                    continue
                if not isinstance(names, dict):
                    continue
                for alias, name in names.items():
                    out.setdefault(str(alias).lower(), []).append((str(alias), str(name), alias in only, int(doc)))
            return out

        return self._memo("aliases", read)

    def document_names(self) -> dict[int, str]:
        """Each document's file name (the last part of its source), as a series of reports names its
        period ("2023 Q3 Acme.pdf"); remembered until the catalog changes."""

        def names() -> dict[int, str]:
            return {int(i): re.split(r"[\\/]", str(source))[-1] for i, source in self.db.execute("SELECT id, source FROM documents")}

        return self._memo("names", names)

    def texts_holding(self, doc_ids: Iterable[int], word: str, limit: int) -> dict[int, list[str]]:
        """For each of `doc_ids`, up to `limit` of its chunks' texts that hold `word` (the keyword index's
        term, and its letters in any case for ASCII letters), in the document's order: how each document
        writes the word (`kb.query.names`). The keyword index is read within each document's range of
        chunk ids: the cost grows with the documents asked about, not with the folder."""
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = ("SELECT c.text FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid WHERE chunks_fts MATCH ?"
               " AND chunks_fts.rowid BETWEEN ? AND ? AND c.doc_id = ? AND c.text LIKE ? ESCAPE '\\' LIMIT ?")
        out: dict[int, list[str]] = {}
        try:
            for doc in doc_ids:
                low, high = self.db.execute("SELECT min(id), max(id) FROM chunks WHERE doc_id = ?", (doc,)).fetchone()
                if low is None:
                    continue
                texts = [str(t) for (t,) in self.db.execute(sql, (fts_quote(word), low, high, doc, like, limit))]
                if texts:
                    out[doc] = texts
        except sqlite3.DatabaseError as e:
            raise CatalogError(f"{self.path}: reading chunks failed: {e}") from e
        return out

    def text_before(self, doc_id: int, char_start: int, chars: int) -> str:
        """Up to `chars` characters of document `doc_id`'s text that end where `char_start` begins,
        from its chunks in order (a table's header above the chunk that holds a row of it)."""
        if chars <= 0:
            return ""
        rows = self.db.execute(
            "SELECT text, char_start, char_end FROM chunks WHERE doc_id = ? AND char_start < ? AND char_end > ? "
            "ORDER BY char_start", (doc_id, char_start, char_start - chars)).fetchall()
        parts: list[str] = []
        end: int | None = None
        for text, start, stop in rows:
            stop = min(stop, char_start)
            if end is not None and stop <= end:
                continue
            begin = max(start, end if end is not None else start)
            if end is not None and start > end:
                parts.append("\n\n")
            parts.append(text[begin - start:stop - start])
            end = stop
        return "".join(parts)[-chars:]

    def document_sizes(self) -> dict[int, int]:
        """Number of chunks of each document."""
        return {int(d): int(n) for d, n in self.db.execute("SELECT doc_id, count(*) FROM chunks GROUP BY doc_id")}

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def integrity(self) -> str:
        """'ok', or SQLite's first complaint about the catalog file."""
        try:
            return str(self.db.execute("PRAGMA quick_check").fetchone()[0])
        except sqlite3.DatabaseError as e:
            return str(e)

    def changes(self) -> tuple[int, int]:
        """A stamp that differs whenever the catalog may have changed since it was last taken, through
        this connection or any other (another thread's, another process's): one O(1) pragma."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0]), self._writes

    def remember(self, key: str, compute: Callable[[], _T]) -> _T:
        """`compute()`, remembered with the catalog's own counts until the catalog changes (`_memo`): for a
        value a caller derives from them, such as an index of `aliases()`. Its keys are the callers' own:
        none is taken for one of the catalog's."""
        return self._memo(f"derived:{key}", compute)

    def _memo(self, key: str, compute: Callable[[], _T]) -> _T:
        """`compute()`, remembered until the catalog changes: the counts every search needs are O(chunks)."""
        stamp = self.changes()
        held = self._memos.get(key)
        if held is not None and held[0] == stamp and not self.db.in_transaction:  # mid-write: count now
            return held[1]
        value = compute()
        self._memos[key] = (stamp, value)
        return value

    def totals(self) -> tuple[int, int, int]:
        """(documents, chunks, pages)."""

        def count() -> tuple[int, int, int]:
            # Pages are pages: a deck's slides and a sheet's rows are counted by documents, not here.
            docs, pages = self.db.execute(
                "SELECT count(*), coalesce(sum(CASE WHEN json_extract(metadata, '$.unit') IS NULL THEN pages END), 0)"
                " FROM documents").fetchone()
            chunks = self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            return int(docs), int(chunks), int(pages)

        return self._memo("totals", count)

    def languages(self) -> dict[str, int]:
        """Chunks per language of their document (metadata `language`, as ingest detects it), most first;
        documents with none (ingested before kb detected it, or too little text) are not counted."""

        def count() -> dict[str, int]:
            rows = self.db.execute(
                "SELECT lower(json_extract(d.metadata, '$.language')) AS lang, sum(c.n) FROM documents d"
                " JOIN (SELECT doc_id, count(*) AS n FROM chunks GROUP BY doc_id) c ON c.doc_id = d.id"
                " WHERE json_type(d.metadata, '$.language') = 'text' GROUP BY lang ORDER BY 2 DESC, 1")
            # A code only: a front matter's free-form `language: German` is the author's, not detected.
            return {lang: int(n) for lang, n in rows if _LANGUAGE_CODE.fullmatch(lang or "")}

        return self._memo("languages", count)

    def readers(self) -> dict[tuple[str, str | None, int, str], int]:
        """Documents per (file type, reader, reader version, file name): how the files were read, for
        telling which a newer reader reads better (`kb.ingest.base.read_better`). The file name is the
        path's last piece, lower case (its reader may go by the name: 'cmakelists.txt'); a reader None:
        not recorded (a document from before kb recorded it)."""

        def count() -> dict[tuple[str, str | None, int, str], int]:
            out: dict[tuple[str, str | None, int, str], int] = {}
            read = "reader, reader_version" if self._columns == _DOC_COLUMNS else "NULL, 1"
            rows = self.db.execute(f"SELECT path, file_type, {read} FROM documents")
            for path, file_type, reader, version in rows:
                key = (file_type, reader, int(version), os.path.basename(path).lower())
                out[key] = out.get(key, 0) + 1
            return out

        return self._memo("readers", count)

    def type_counts(self) -> dict[str, int]:
        """Documents per file type, most first."""
        rows = self.db.execute("SELECT file_type, count(*) FROM documents GROUP BY file_type ORDER BY 2 DESC, 1")
        return {t: int(n) for t, n in rows}

    def version(self) -> tuple[int, int]:
        """What the chunks are, comparable across connections: (highest chunk id ever given, chunk count).
        Ids are never reused, so a chunk added raises the first and one removed lowers the second; what
        is computed from the chunks (snippets' term frequencies) can be remembered under it. (A team
        catalog's ids come from the store: a document replaced by as many chunks with lower ids keeps
        the stamp, which costs a snippet's window its best weights, nothing more.)"""
        sql = "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'chunks'"
        return self._memo("seq", lambda: int(self.db.execute(sql).fetchone()[0])), self.totals()[1]


def fts_quote(term: str) -> str:
    """One term (a word or a phrase) as an FTS5 string literal: nothing in it is read as FTS5 syntax."""
    return '"' + term.replace('"', '""') + '"'


TERMS_KEPT = 256  # terms whose per-document counts a connection keeps: a few questions' worth
_DOC_COLUMNS = "id, path, source, file_type, sha256, size, mtime_ns, title, pages, reader, reader_version"
# A catalog opened read-only before migration 4 (a folder this user cannot write) has no reader columns.
_DOC_COLUMNS_3 = _DOC_COLUMNS.replace("reader, reader_version", "NULL, 1")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")  # ISO 639-1 (or -3), as `kb.ingest.language` stores it


def _document(row: tuple[Any, ...]) -> DocumentRow:
    doc_id, path, source, file_type, sha256, size, mtime_ns, title, pages, reader, reader_version = row
    return DocumentRow(path, source, file_type, sha256, size, mtime_ns, title, pages, reader=reader,
                       reader_version=int(reader_version), id=doc_id)


def _path_where(glob: str, table: str) -> tuple[str, list[object]]:
    """Rows of `table` (documents or failures) whose source or path matches `glob`: a bare file name
    matches in any folder, a relative path at the end of the absolute one."""
    pattern = glob if "/" in glob or glob.startswith("*") else f"*{glob}"
    return (f"({table}.source GLOB ? OR {table}.path GLOB ?)",
            [pattern, pattern if pattern.startswith(("/", "*")) else f"*/{pattern}"])


def filter_sql(filters: Filters) -> tuple[str, list[object]]:
    """`filters` as a WHERE clause over `chunks c JOIN documents d`, and its parameters."""
    where: list[str] = []
    params: list[object] = []
    if filters.path:
        sql, glob_params = _path_where(filters.path, "d")
        where.append(sql)
        params += glob_params
    if filters.file_type:
        where.append("d.file_type = ?")
        params.append(filters.file_type.lower().lstrip("."))
    if filters.pages:
        where.append("c.page_start <= ? AND coalesce(c.page_end, c.page_start) >= ?")
        params += [filters.pages[1], filters.pages[0]]
    if filters.section:
        where.append("lower(coalesce(c.section, '')) LIKE ?")
        params.append(f"%{filters.section.lower()}%")
    for key, value in filters.where:  # keys are checked by `parse_where`: letters, digits, _ and -
        where.append(f"instr(lower(coalesce(json_extract(d.metadata, '$.\"{key}\"'), '')), ?) > 0")
        params.append(value.lower())
    return (" AND ".join(where) or "1"), params
