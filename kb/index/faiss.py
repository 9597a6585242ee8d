"""FAISS vector store: inner product over normalised vectors, ids mapped to chunk ids.

Exact (flat) search below `IVF_THRESHOLD` vectors; above it the index is rebuilt at save time as an
IVF index trained on the data itself (IVF, unlike HNSW, can remove ids), retrained as it grows.

The index file is replaced atomically (write to a temporary file, fsync, rename), so a crash
or a full disk during a save leaves the previous index usable. It is opened memory-mapped (a
search-only process such as `kb search` reads only the pages it touches: 300k vectors open in
~20 ms instead of ~650 ms) and read into memory on the first write, since FAISS aborts the process
when a mapped index is modified.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from kb.errors import DependencyError, StoreError, disk_full, is_disk_full
from kb.failpoints import failpoint
from kb.index.store import Payload, VectorStore

if TYPE_CHECKING:
    from kb.config import Settings

DEFAULT_VECTORS = "vectors.faiss"


def _faiss() -> ModuleType:
    try:
        # lazy: FAISS loads when a store opens, not at import (kb --help stays instant)
        import faiss
    except ImportError as e:
        raise DependencyError('faiss is not available: pip install faiss-cpu (or the "gpu" extra)') from e
    return faiss


class FaissStore(VectorStore):
    name = "faiss"

    def __init__(self, path: Path, dimensions: int | None):
        self.path = path
        self.faiss = _faiss()
        self._dirty = False
        self._mapped = False
        self._gpu: Any = None
        if path.exists():
            # Vectors stay in the file's pages until a write needs them (no flag in old FAISS: read whole).
            flags = int(getattr(self.faiss, "IO_FLAG_MMAP_IFC", 0))
            self._mapped = flags != 0
            self.index = self._read(flags)
            if dimensions is not None and self.index.d != dimensions:
                raise StoreError(f"{path}: index has {self.index.d} dimensions, the model gives {dimensions}")
        elif dimensions is not None:
            self.index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dimensions))
        else:
            self.index = None

    @classmethod
    def open(cls, settings: Settings, folder: Path, dimensions: int | None, vectors: str | None = None) -> FaissStore:
        return cls(_file(folder, vectors), dimensions)

    @classmethod
    def stamp(cls, folder: Path, vectors: str | None) -> object | None:
        try:
            st = os.stat(_file(folder, vectors))
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    @classmethod
    def generation(cls) -> str:
        return f"{super().generation()}.faiss"  # the file's name, as older kb versions expect it

    @classmethod
    def drop(cls, folder: Path, vectors: str | None) -> None:
        _file(folder, vectors).unlink(missing_ok=True)

    @classmethod
    def sweep(cls, folder: Path, vectors: str | None) -> list[str]:
        live = _file(folder, vectors).name
        gone = []
        for path in folder.iterdir():
            name = path.name
            if (name.startswith(".vectors") and name.endswith(".tmp")) or (
                    name.startswith("vectors") and name.endswith(".faiss") and name != live):
                path.unlink(missing_ok=True)
                gone.append(name)
        return gone

    def _read(self, flags: int) -> Any:
        try:
            return self.faiss.read_index(str(self.path), flags)
        except RuntimeError as e:
            raise StoreError(f"{self.path}: unreadable FAISS index ({str(e).splitlines()[0]}); "
                             "`kb doctor` rebuilds it from the catalog") from e

    def _on_gpu(self) -> Any:
        """A GPU copy of a large index when faiss-gpu sees a GPU (`pip install faiss-gpu-cu12` in place of
        faiss-cpu), made on the first search after a write; None otherwise."""
        if self._gpu is None and self.index.ntotal >= GPU_MIN and _gpus(self.faiss) > 0:
            self._gpu = self.faiss.index_cpu_to_all_gpus(self.index)
        return self._gpu

    def _require(self, dimensions: int) -> Any:
        """The index, ready to be modified (read into memory if it was mapped)."""
        self._gpu = None  # the GPU copy is stale once the index changes
        if self.index is None:
            self.index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dimensions))
        elif self._mapped:
            self.index = self._read(0)
            self._mapped = False
        return self.index

    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[Payload] | None = None) -> None:
        if len(ids) == 0:
            return
        index = self._require(vectors.shape[1])
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._dirty = True

    def search(self, vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        if self.index is None or self.index.ntotal == 0 or k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        sel = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            sel = self.faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
        k = min(k, self.index.ntotal)
        gpu = self._on_gpu() if sel is None else None  # GPU indexes take no id selector: filtered runs on the CPU
        if gpu is not None:
            scores, ids = gpu.search(query, k)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
        ivf = _ivf(self.faiss, self.index)
        # One query: OpenMP's fork/join costs more than it saves, and stalls for tens of ms on a busy machine.
        threads = self.faiss.omp_get_max_threads()
        self.faiss.omp_set_num_threads(1)
        try:
            if ivf is None:
                scores, ids = self.index.search(query, k, params=self.faiss.SearchParameters(sel=sel) if sel else None)
            else:
                scores, ids = self.index.search(query, k, params=self.faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nprobe))
                if sel is not None and (ids[0] == -1).any():  # a narrow filter: scan every list
                    params = self.faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nlist)
                    scores, ids = self.index.search(query, k, params=params)
        finally:
            self.faiss.omp_set_num_threads(threads)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def delete(self, ids: np.ndarray) -> None:
        if self.index is None or len(ids) == 0:
            return
        self._require(self.index.d).remove_ids(self.faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        self._dirty = True

    def count(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        if self.index is None:
            return np.zeros(0, dtype=np.int64)
        if _ivf(self.faiss, self.index) is not None:
            return _ivf_contents(self.faiss, self.index, vectors=False)[1]
        return self.faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def save(self) -> None:
        if not self._dirty or self.index is None:
            return
        failpoint("store.before_save")
        self._resize()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.faiss.write_index(self.index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())  # the data is on disk before the name points at it
            failpoint("store.before_rename")
            os.replace(tmp, self.path)
            failpoint("store.after_rename")
            _fsync_dir(self.path.parent)  # ...and the rename itself survives a power loss
        except (RuntimeError, OSError) as e:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if is_disk_full(e):  # the previous file is whole: the catalog re-embeds what it lacks
                raise disk_full(self.path.parent, f"save the vectors ({self.path.name})",
                                self.bytes_to_save(0, self.index.d)) from e
            raise StoreError(f"could not save {self.path}: {e}") from e
        self._dirty = False

    def bytes_to_save(self, added: int, dimensions: int) -> int:
        # A save writes the whole index anew beside the old file: float32 vectors and int64 ids.
        return (self.count() + added) * (4 * dimensions + 8) + SAVE_MARGIN

    def _resize(self) -> None:
        """Flat below IVF_THRESHOLD; above, IVF with ~sqrt(n) lists, retrained when n outgrows them 4x."""
        n = self.index.ntotal
        ivf = _ivf(self.faiss, self.index)
        if n < IVF_THRESHOLD or (ivf is not None and ivf.nlist * 2 >= _nlist(n)):
            return
        if ivf is None:
            vectors = self.faiss.rev_swig_ptr(self.faiss.downcast_index(self.index.index).get_xb(), n * self.index.d)
            vectors = np.array(vectors, dtype=np.float32).reshape(n, self.index.d)
            ids = self.faiss.vector_to_array(self.index.id_map).astype(np.int64)
        else:
            vectors, ids = _ivf_contents(self.faiss, self.index, vectors=True)
        self.index = _train_ivf(self.faiss, vectors, ids)
        self._gpu = None


SAVE_MARGIN = 64 * 1024  # a file's headers (an IVF index's centroids add ~0.1% to its vectors: not counted)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file(folder: Path, vectors: str | None) -> Path:
    """The index file of a generation ("vectors-1733131200000"; older catalogs name the file itself)."""
    name = vectors or DEFAULT_VECTORS
    return folder / (name if name.endswith(".faiss") else f"{name}.faiss")


GPU_MIN = 100_000  # below this a CPU query takes < 5 ms: not worth a copy in GPU memory


def _gpus(faiss: Any) -> int:
    get = getattr(faiss, "get_num_gpus", None)  # only faiss-gpu has it
    return int(get()) if get else 0


IVF_THRESHOLD = 250_000  # exact search, one core: 100k x 384 floats ~5 ms, 250k ~13 ms (benchmarks/search.py)


def _nlist(n: int) -> int:
    return 1 << max(6, round(np.log2(np.sqrt(n))))  # 1M vectors: 1,024 lists


def _ivf(faiss: Any, index: Any) -> Any:
    """The IVF index, or None for a flat (IDMap) one."""
    if isinstance(index, faiss.IndexIDMap):
        return None
    down = faiss.downcast_index(index)
    return down if isinstance(down, faiss.IndexIVF) else None


def _train_ivf(faiss: Any, vectors: np.ndarray, ids: np.ndarray) -> Any:
    n, d = vectors.shape
    nlist = _nlist(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)]
    index.cp.min_points_per_centroid = 1  # a 40-per-list sample is enough for retrieval, and fast
    index.train(sample)
    index.add_with_ids(vectors, ids)
    index.nprobe = max(64, nlist // 16)  # 300k: 1/8 of the lists, recall@10 0.93 of exact; 1M: 1/16, 0.99
    return index


def _ivf_contents(faiss: Any, index: Any, *, vectors: bool) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ids) held by an IVF-Flat index, list by list."""
    ivf = _ivf(faiss, index)
    lists = ivf.invlists
    all_ids, all_vectors = [], []
    for i in range(ivf.nlist):
        size = lists.list_size(i)
        if not size:
            continue
        all_ids.append(np.array(faiss.rev_swig_ptr(lists.get_ids(i), size), dtype=np.int64))
        if vectors:
            codes = faiss.rev_swig_ptr(lists.get_codes(i), size * lists.code_size)
            all_vectors.append(np.frombuffer(bytes(codes), dtype=np.float32).reshape(size, ivf.d))
    ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=np.int64)
    vecs = np.concatenate(all_vectors) if all_vectors else np.zeros((0, ivf.d), dtype=np.float32)
    return vecs, ids
