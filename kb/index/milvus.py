"""Milvus vector store: a Milvus Lite folder (`./kb.db`, embedded) or a server (`http://host:19530`).

Besides vectors it keeps everything a team member needs to search, ask and re-ingest with only
the URI: each chunk's text and citation metadata (`<c>_chunks`, with a BM25 sparse field that
Milvus fills itself), document records with their hashes (`<c>_documents`), and how the index was
built (`<c>_meta`). `kb.index.team` mirrors that into the local catalog.

Measured with pymilvus 3.0.2 / milvus-lite 3.2.2 (see benchmarks/stores.py): Lite is pure Python
in-process and lets one process at a time open its folder; its HNSW returns fewer hits than the
limit under a selective filter, so Lite uses FLAT (exact) and a server uses HNSW searched with a
large `ef`. Lite searches are slow until the rows are flushed into a segment, so `save()` flushes.
Members on one machine share a Lite folder through `milvus-lite server` on 127.0.0.1 with one
worker thread (its engine takes one writer at a time: with ten threads, two clients' concurrent
flushes collided), as a server URI; tests/test_team_writers.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kb.errors import ConfigError, DependencyError, StoreError, install_command
from kb.failpoints import failpoint
from kb.filters import Filters
from kb.index.store import Payload, VectorStore

if TYPE_CHECKING:
    from kb.config import Settings
    from kb.index.catalog import Catalog

DEFAULT_LITE = "milvus.db"  # Milvus Lite folder in the KB dir when store=milvus has no store_uri

INSERT_BATCH = 512  # rows per upsert: throughput is flat from 256 to 2,000 rows; 512 x 64 KB fits a gRPC message
DELETE_BATCH = 2000
TIMEOUT_S = 30.0  # every call to Milvus is bounded
HNSW_EF = 512  # below this a filtered HNSW search returns fewer hits than asked for
EXACT_FALLBACK = 5000  # a filtered search short of hits scores up to this many passing rows exactly
MAX_VARCHAR = 65535
MAX_SHORT = 4096
# Lite knows only the standard and jieba tokenizers and ignores the filters it lacks; a server
# stems and drops English stop words.
ANALYZER = {"tokenizer": "standard",
            "filter": ["lowercase", {"type": "stemmer", "language": "english"},
                       {"type": "stop", "stop_words": ["_english_"]}]}
# Payload fields of a chunk row: what search and citations need, as scalar columns (filters on
# JSON fields take seconds in Milvus).
CHUNK_FIELDS = ("path", "source", "file_type", "sha256", "ord", "text", "headings", "section_lc",
                "page_start", "page_end", "char_start", "char_end", "tokens", "at")
DOC_FIELDS = ("path", "source", "file_type", "sha256", "size", "mtime_ns", "title", "pages", "metadata",
              "chunks", "ingested_at")


def _pymilvus() -> Any:
    try:
        # lazy: the milvus extra is optional
        import pymilvus
    except ImportError as e:
        raise DependencyError(f"pymilvus is not available: {install_command('milvus')} (pymilvus, milvus-lite)") from e
    if not os.environ.get("KB_DEBUG"):
        # RPC errors come back to us as exceptions, translated below; Lite's in-process gRPC server
        # also logs each call it lacks (AllocTimestamp, which query iterators try first), and Lite's
        # server manager logs a folder held by another process with a traceback (`_open_error` says it).
        for name in ("pymilvus", "grpc._server", "milvus_lite"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return pymilvus


def is_lite(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("unix:")


def lite_path(uri: str) -> str:
    """The absolute path of a Milvus Lite URI (a folder whose name ends in .db)."""
    path = Path(uri).expanduser()
    if path.suffix != ".db":
        raise ConfigError(f"store_uri {uri!r}: a Milvus Lite path must end in .db (or give http://host:19530)")
    return str(path.resolve())


# Milvus Lite serves each folder from a gRPC server thread that pymilvus starts on first use and
# keeps until exit; we stop it when our last store on that folder closes, releasing the folder.
_LITE_USERS: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


class MilvusStore(VectorStore):
    name = "milvus"
    native_filters = True  # filters become a boolean expression over scalar columns
    native_keyword = True  # BM25 by a Milvus Function over the text field
    shared = True  # chunks, documents and build metadata live in Milvus: a team's knowledge base (kb.index.team)

    @classmethod
    def open(cls, settings: Settings, folder: Path, dimensions: int | None, vectors: str | None = None) -> MilvusStore:
        # No URI: an embedded Milvus Lite folder inside the knowledge base.
        return cls(settings.store_uri or str(folder / DEFAULT_LITE), settings.collection, dimensions,
                   token=settings.store_token, db_name=settings.store_db)

    def __init__(self, uri: str, collection: str = "kb", dimensions: int | None = None, *,
                 token: str | None = None, db_name: str | None = None, timeout: float = TIMEOUT_S):
        self.pm = _pymilvus()
        self.lite = is_lite(uri)
        self.uri = lite_path(uri) if self.lite else uri
        if not collection.replace("_", "").isalnum() or not collection[0].isalpha():
            raise ConfigError(f"collection {collection!r}: use letters, digits and _, starting with a letter")
        self.collection = collection
        self.chunks_name, self.docs_name, self.meta_name = (f"{collection}_{s}" for s in ("chunks", "documents", "meta"))
        self.timeout = timeout
        self._dirty = False
        self._closed = False
        self._ready: set[str] = set()
        if self.lite:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = self.pm.MilvusClient(uri=self.uri, token=token or "", db_name=db_name or "", timeout=timeout)
        except Exception as e:
            raise StoreError(self._open_error(e)) from e
        if self.lite:
            with _LITE_LOCK:
                _LITE_USERS[self.uri] = _LITE_USERS.get(self.uri, 0) + 1
        self.dimensions = self._existing_dimensions()
        if dimensions is not None and self.dimensions is not None and dimensions != self.dimensions:
            raise StoreError(f"{self.where}: collection {self.chunks_name} has {self.dimensions} dimensions, "
                             f"the model gives {dimensions}")
        self.dimensions = self.dimensions or dimensions

    @property
    def where(self) -> str:
        return f"Milvus Lite {self.uri}" if self.lite else f"Milvus at {self.uri}"

    @property
    def location(self) -> str:
        """Identifies the shared knowledge base: URI and collection."""
        return f"{self.uri}#{self.collection}"

    def _open_error(self, e: Exception) -> str:
        if self.lite and _locked_elsewhere(self.uri):
            return (f"{self.uri} is open in another process: Milvus Lite lets one process at a time use it "
                    "(for a team, run a Milvus server: docker compose up -d; or, on one machine, serve the folder "
                    f"with `milvus-lite server --data-dir {self.uri} --host 127.0.0.1 --port 19530 --max-workers 1` "
                    "and use --store-uri http://127.0.0.1:19530)")
        return f"cannot open {self.where}: {getattr(e, 'message', None) or e}"

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except self.pm.MilvusException as e:
            raise StoreError(f"{self.where}: {doing} failed: {e.message}") from e
        except Exception as e:  # gRPC and connection errors come through in several types
            raise StoreError(f"{self.where}: {doing} failed: {e}") from e

    # --- collections ------------------------------------------------------------------------
    def _existing_dimensions(self) -> int | None:
        with self._errors("describe"):
            if not self.client.has_collection(self.chunks_name, timeout=self.timeout):
                return None
            for f in self.client.describe_collection(self.chunks_name, timeout=self.timeout)["fields"]:
                if f["name"] == "vector":
                    return int(f["params"]["dim"])
        return None

    def _has(self, name: str) -> bool:
        if name in self._ready:
            return True
        with self._errors("describe"):
            if not self.client.has_collection(name, timeout=self.timeout):
                return False
            # A collection written by another process (or before a restart) must be loaded to be read.
            state = self.client.get_load_state(name, timeout=self.timeout).get("state")
            if str(state).split(".")[-1].lower() != "loaded":
                self.client.load_collection(name, timeout=max(self.timeout, 120))
        self._ready.add(name)
        if name == self.chunks_name and self.dimensions is None:  # created by another member since we opened
            self.dimensions = self._existing_dimensions()
        return True

    def _ensure(self, name: str, dimensions: int | None = None) -> None:
        if self._has(name):
            return
        DataType = self.pm.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        index = self.client.prepare_index_params()
        if name == self.chunks_name:
            if dimensions is None:
                raise StoreError(f"{self.where}: the first vectors decide the dimensions; none given")
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimensions)
            for field in ("path", "source"):
                schema.add_field(field, DataType.VARCHAR, max_length=MAX_SHORT)
            schema.add_field("file_type", DataType.VARCHAR, max_length=32)
            schema.add_field("sha256", DataType.VARCHAR, max_length=64)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                             analyzer_params=ANALYZER)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_field("headings", DataType.VARCHAR, max_length=MAX_VARCHAR)
            schema.add_field("section_lc", DataType.VARCHAR, max_length=MAX_SHORT)
            for field in ("page_start", "page_end"):
                schema.add_field(field, DataType.INT64, nullable=True)
            for field in ("ord", "char_start", "char_end", "tokens", "at"):
                schema.add_field(field, DataType.INT64)
            schema.add_function(self.pm.Function(name="text_bm25", function_type=self.pm.FunctionType.BM25,
                                                 input_field_names=["text"], output_field_names=["sparse"]))
            if self.lite:
                index.add_index("vector", index_type="FLAT", metric_type="IP")
            else:
                index.add_index("vector", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        else:
            # Every Milvus collection needs a vector field: these hold records, so a 2-d placeholder.
            key = "path" if name == self.docs_name else "key"
            schema.add_field(key, DataType.VARCHAR, max_length=MAX_SHORT, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
            if name == self.docs_name:
                for field in ("source", "title"):
                    schema.add_field(field, DataType.VARCHAR, max_length=MAX_SHORT)
                schema.add_field("file_type", DataType.VARCHAR, max_length=32)
                schema.add_field("sha256", DataType.VARCHAR, max_length=64)
                schema.add_field("metadata", DataType.VARCHAR, max_length=MAX_VARCHAR)
                schema.add_field("pages", DataType.INT64, nullable=True)
                for field in ("size", "mtime_ns", "chunks"):
                    schema.add_field(field, DataType.INT64)
                schema.add_field("ingested_at", DataType.DOUBLE)
            else:
                schema.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
            index.add_index("vector", index_type="FLAT" if self.lite else "AUTOINDEX", metric_type="L2")
        with self._errors(f"create collection {name}"):
            try:
                self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong",
                                              timeout=self.timeout)
            except self.pm.MilvusException:
                if not self.client.has_collection(name, timeout=self.timeout):  # not a race with another member
                    raise
        self._has(name)
        if name == self.chunks_name:
            self.dimensions = dimensions

    # --- the VectorStore contract --------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[Payload] | None = None) -> None:
        """Upsert vectors (an id already present is replaced) with their chunk payloads."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._ensure(self.chunks_name, int(vectors.shape[1]))
        if vectors.shape[1] != self.dimensions:
            raise StoreError(f"{self.where}: vectors have {vectors.shape[1]} dimensions, "
                             f"collection {self.chunks_name} has {self.dimensions}")
        rows = [_chunk_row(int(i), v, payloads[n] if payloads else {}) for n, (i, v) in enumerate(zip(ids, vectors))]
        with self._errors("insert"):
            for start in range(0, len(rows), INSERT_BATCH):
                failpoint("milvus.upsert")
                self.client.upsert(self.chunks_name, rows[start : start + INSERT_BATCH], timeout=self.timeout)
        self._dirty = True

    def search(self, vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            return self._search(vector, k, f"id in {[int(i) for i in allowed_ids]}")
        return self._search(vector, k, "")

    def _search(self, vector: np.ndarray, k: int, expr: str) -> list[tuple[int, float]]:
        if k <= 0 or not self._has(self.chunks_name):
            return []
        params: dict[str, Any] = {"metric_type": "IP"}
        if not self.lite:
            params["params"] = {"ef": max(HNSW_EF, k)}
        query = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        with self._errors("search"):
            found = self.client.search(self.chunks_name, [query], anns_field="vector", limit=min(k, 16384),
                                       filter=expr, search_params=params, output_fields=["id"],
                                       consistency_level="Strong", timeout=self.timeout)
        hits = [(int(h["id"]), float(h["distance"])) for h in found[0]]
        if expr and not self.lite and len(hits) < k:
            return self._exact_if_small(query, k, expr, hits)
        return hits

    def _exact_if_small(self, query: list[float], k: int, expr: str, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """HNSW under a selective filter can return fewer hits than pass it, even with a large `ef`
        (measured on Lite's server: 39 of 50 at ef=512). When few rows pass, score them all exactly."""
        passing = self._count(self.chunks_name, expr)
        if passing <= len(hits) or passing > EXACT_FALLBACK:
            return hits
        rows = list(self.rows(self.chunks_name, expr, ("id", "vector")))
        matrix = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        scores = matrix @ np.asarray(query, dtype=np.float32)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(rows[i]["id"]), float(scores[i])) for i in best]

    def delete(self, ids: np.ndarray) -> None:
        if len(ids) == 0 or not self._has(self.chunks_name):
            return
        keys = [int(i) for i in ids]
        failpoint("milvus.delete")
        with self._errors("delete"):
            for start in range(0, len(keys), DELETE_BATCH):
                self.client.delete(self.chunks_name, ids=keys[start : start + DELETE_BATCH], timeout=self.timeout)
        self._dirty = True

    def count(self) -> int:
        if not self._has(self.chunks_name):
            return 0
        return self._count(self.chunks_name)

    def _count(self, name: str, expr: str = "") -> int:
        with self._errors("count"):
            rows = self.client.query(name, filter=expr, output_fields=["count(*)"], consistency_level="Strong",
                                     timeout=self.timeout)
        return int(rows[0]["count(*)"]) if rows else 0

    def ids(self) -> np.ndarray:
        return np.fromiter((int(r["id"]) for r in self.rows(self.chunks_name, "", ["id"])), dtype=np.int64)

    def save(self) -> None:
        if not self._dirty:
            return
        with self._errors("flush"):
            for name in (self.chunks_name, self.docs_name, self.meta_name):
                if name in self._ready:
                    self.client.flush(name, timeout=max(self.timeout, 120))
        self._dirty = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.save()
        finally:
            with contextlib.suppress(Exception):
                self.client.close()
            if self.lite:
                with _LITE_LOCK:
                    left = _LITE_USERS.get(self.uri, 1) - 1
                    _LITE_USERS[self.uri] = left
                if left <= 0:
                    _LITE_USERS.pop(self.uri, None)
                    # lazy: the milvus extra is optional
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.uri)

    # --- reading rows --------------------------------------------------------------------------
    def rows(self, name: str, expr: str, fields: Iterable[str], batch: int = 2000) -> Iterator[dict[str, Any]]:
        """Every row of collection `name` that passes `expr`, a batch at a time."""
        if not self._has(name):
            return
        with self._errors("read"):
            it = self.client.query_iterator(name, batch_size=batch, filter=expr, output_fields=list(fields),
                                            consistency_level="Strong", timeout=self.timeout)
            try:
                while page := it.next():
                    yield from page
            finally:
                it.close()

    # --- filters, keyword and hybrid search (native_filters, native_keyword) ---
    def expression(self, filters: Filters | None, catalog: Catalog) -> str | None:
        """`filters` as a Milvus boolean expression over scalar columns; None when nothing passes.

        A path glob becomes the list of matching document paths (the catalog knows them, and SQLite's
        GLOB is the reference semantics); a section substring becomes `like` on a lowercased column,
        unless it holds a character that `like` treats specially, when it becomes the chunk ids.
        """
        if filters is None or filters.is_empty():
            return ""
        parts: list[str] = []
        if filters.path or filters.where:  # metadata lives in the catalog: the documents that pass, by path
            paths = catalog.document_paths(Filters(path=filters.path, where=filters.where))
            if not paths:
                return None
            parts.append(f"path in {_quote_list(paths)}")
        if filters.file_type:
            parts.append(f"file_type == {_quote(filters.file_type.lower().lstrip('.'))}")
        if filters.pages:
            lo, hi = filters.pages
            parts.append(f"(page_start <= {hi} and (page_end >= {lo} or (page_end is null and page_start >= {lo})))")
        if filters.section:
            needle = filters.section.lower()
            if any(ch in needle for ch in '%_\\"'):
                ids = catalog.filtered_ids(Filters(section=filters.section))
                if not ids:
                    return None
                parts.append(f"id in {ids}")
            else:
                parts.append(f'section_lc like "%{needle}%"')
        return " and ".join(parts)

    def search_filtered(self, vector: np.ndarray, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        expr = self.expression(filters, catalog)
        return [] if expr is None else self._search(vector, k, expr)

    def keyword_search(self, query: str, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        """BM25 in Milvus (a Function fills the sparse field from the text): (id, score) best first."""
        expr = self.expression(filters, catalog)
        if expr is None or k <= 0 or not query.strip() or not self._has(self.chunks_name):
            return []
        with self._errors("keyword search"):
            found = self.client.search(self.chunks_name, [query], anns_field="sparse", limit=min(k, 16384),
                                       filter=expr, search_params={"metric_type": "BM25"}, output_fields=["id"],
                                       consistency_level="Strong", timeout=self.timeout)
        # A server reports BM25 scores as positive distances, Lite as negative ones: both best first.
        return [(int(h["id"]), abs(float(h["distance"]))) for h in found[0]]

    def hybrid_search(self, vector: np.ndarray, query: str, k: int, filters: Filters | None, catalog: Catalog,
                      *, depth: int = 100) -> list[tuple[int, float]]:
        """Dense and BM25 fused in Milvus with reciprocal rank fusion (RRFRanker, c=60)."""
        expr = self.expression(filters, catalog)
        if expr is None or k <= 0 or not self._has(self.chunks_name):
            return []
        dense_params: dict[str, Any] = {"metric_type": "IP"}
        if not self.lite:
            dense_params["params"] = {"ef": max(HNSW_EF, depth)}
        q = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        requests = [self.pm.AnnSearchRequest([q], "vector", dense_params, limit=depth, expr=expr or None)]
        if query.strip():
            requests.append(self.pm.AnnSearchRequest([query], "sparse", {"metric_type": "BM25"}, limit=depth,
                                                     expr=expr or None))
        with self._errors("hybrid search"):
            found = self.client.hybrid_search(self.chunks_name, requests, self.pm.RRFRanker(60), limit=k,
                                              output_fields=["id"], timeout=self.timeout)
        return [(int(h["id"]), float(h["distance"])) for h in found[0]]

    # --- document records and build metadata (the team catalog) --------------------------------
    def documents(self) -> list[dict[str, Any]]:
        return list(self.rows(self.docs_name, "", DOC_FIELDS))

    def put_document(self, record: dict[str, Any]) -> None:
        self._ensure(self.docs_name)
        row = {k: record.get(k) for k in DOC_FIELDS}
        row["vector"] = [1.0, 0.0]
        for k in ("source", "title"):
            row[k] = _clip(str(row[k] or ""), MAX_SHORT)
        meta = json.dumps(record.get("metadata") or {}, default=str, ensure_ascii=False)
        row["metadata"] = meta if len(meta.encode()) <= MAX_VARCHAR else json.dumps({"truncated": True})
        _check_short(str(row["path"]))
        with self._errors("write document"):
            self.client.upsert(self.docs_name, [row], timeout=self.timeout)
        self._dirty = True

    def delete_document(self, path: str) -> None:
        """Forget a document: its record first (what members sync on), then its chunks."""
        failpoint("milvus.delete")
        with self._errors("delete document"):
            if self._has(self.docs_name):
                self.client.delete(self.docs_name, filter=f"path == {_quote(path)}", timeout=self.timeout)
            if self._has(self.chunks_name):
                self.client.delete(self.chunks_name, filter=f"path == {_quote(path)}", timeout=self.timeout)
        self._dirty = True

    def delete_stale_chunks(self, path: str, sha256: str) -> None:
        """Drop the chunks of earlier versions of a document."""
        failpoint("milvus.delete")
        if self._has(self.chunks_name):
            with self._errors("delete"):
                self.client.delete(self.chunks_name, filter=f"path == {_quote(path)} and sha256 != {_quote(sha256)}",
                                   timeout=self.timeout)

    def chunk_rows(self, paths: list[str]) -> Iterator[dict[str, Any]]:
        """Payload rows (no vectors) of every chunk of these documents, any version."""
        yield from self.rows(self.chunks_name, f"path in {_quote_list(paths)}", ("id", *CHUNK_FIELDS))

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.rows(self.meta_name, "", ("key", "value"))}

    def set_meta(self, **values: str) -> None:
        if not values:
            return
        self._ensure(self.meta_name)
        rows = [{"key": k, "value": str(v), "vector": [1.0, 0.0]} for k, v in values.items()]
        with self._errors("write metadata"):
            self.client.upsert(self.meta_name, rows, timeout=self.timeout)
        self._dirty = True


def _chunk_row(i: int, vector: np.ndarray, p: dict[str, Any]) -> dict[str, Any]:
    text = str(p.get("text") or "")
    if len(text.encode()) > MAX_VARCHAR:
        raise StoreError(f"{p.get('source')}: a chunk of {len(text.encode())} bytes exceeds Milvus' 65,535 "
                         "(lower chunk_tokens)")
    headings = list(p.get("headings") or ())
    _check_short(str(p.get("path") or ""))
    return {
        "id": i, "vector": vector, "path": str(p.get("path") or ""), "source": _clip(str(p.get("source") or ""), MAX_SHORT),
        "file_type": str(p.get("file_type") or ""), "sha256": str(p.get("sha256") or ""), "text": text,
        "headings": _clip(json.dumps(headings, ensure_ascii=False), MAX_VARCHAR),
        "section_lc": _clip(" > ".join(headings).lower(), MAX_SHORT),
        "page_start": p.get("page_start"), "page_end": p.get("page_end"),
        "ord": int(p.get("ord") or 0), "char_start": int(p.get("char_start") or 0),
        "char_end": int(p.get("char_end") or 0), "tokens": int(p.get("tokens") or 0), "at": int(p.get("at") or 0),
    }


def _check_short(path: str) -> None:
    if len(path.encode()) > MAX_SHORT:
        raise StoreError(f"{path[:80]}...: paths longer than {MAX_SHORT} bytes cannot be stored in Milvus")


def _clip(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _quote_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_quote(s) for s in items) + "]"


def _locked_elsewhere(path: str) -> bool:
    """Whether another process holds Milvus Lite's lock on the folder."""
    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
