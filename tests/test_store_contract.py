"""The `VectorStore` contract, run unchanged against every backend: FAISS and Milvus Lite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kb.errors import StoreError
from kb.index.base import VectorStore

DIMS = 16


def _faiss(root: Path, dims: int | None) -> VectorStore:
    from kb.index.faiss import FaissStore

    return FaissStore(root / "vectors.faiss", dims)


def _milvus(root: Path, dims: int | None) -> VectorStore:
    pytest.importorskip("milvus_lite")
    from kb.index.milvus import MilvusStore

    return MilvusStore(str(root / "contract.db"), "contract", dims)


# Milvus Lite starts a real server process per store: its half of the contract is the slow layer's.
@pytest.fixture(params=[pytest.param(_faiss, id="faiss"),
                        pytest.param(_milvus, id="milvus-lite", marks=pytest.mark.slow)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int | None], VectorStore]:
    """Opens the backend's store in one folder; every store opened is closed after the test."""
    opened: list[VectorStore] = []

    def open_(dims: int | None = DIMS) -> VectorStore:
        store = request.param(tmp_path, dims)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


IDS = np.array([11, 22, 33, 44, 55, 66, 77, 88, 99, 2**62 + 5], dtype=np.int64)  # big ids too: Milvus team ids are 63-bit


class TestVectorStore:
    def test_empty(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        assert store.count() == 0
        assert store.ids().dtype == np.int64 and len(store.ids()) == 0
        assert store.search(unit(1)[0], 5) == []
        assert store.search(unit(1)[0], 5, allowed_ids=np.array([1, 2], dtype=np.int64)) == []

    def test_add_search_count_ids(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        vectors = unit(10)
        store.add(IDS, vectors, None)
        assert store.count() == 10
        assert sorted(store.ids().tolist()) == sorted(IDS.tolist())
        for i in (0, 4, 9):
            hits = store.search(vectors[i], 3)
            assert hits[0][0] == IDS[i] and hits[0][1] == pytest.approx(1.0, abs=1e-4)
            assert len(hits) == 3
            assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
            assert all(isinstance(i, int) and isinstance(s, float) for i, s in hits)

    def test_scores_are_inner_products(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        vectors = unit(10)
        store.add(IDS, vectors, None)
        query = unit(1, seed=3)[0]
        expected = sorted(zip(IDS.tolist(), (vectors @ query).tolist()), key=lambda p: -p[1])[:5]
        got = store.search(query, 5)
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-4)

    def test_k_larger_than_count(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        store.add(IDS[:4], unit(4), None)
        hits = store.search(unit(1, seed=9)[0], 50)
        assert sorted(i for i, _ in hits) == sorted(IDS[:4].tolist())
        assert store.search(unit(1)[0], 0) == []

    def test_allowed_ids(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        vectors = unit(10)
        store.add(IDS, vectors, None)
        allowed = IDS[[1, 5, 8]]
        hits = store.search(vectors[0], 10, allowed_ids=allowed)
        assert sorted(i for i, _ in hits) == sorted(allowed.tolist())
        # The best allowed hit is found even when many better ones are filtered out.
        assert store.search(vectors[0], 1, allowed_ids=IDS[[9]])[0][0] == IDS[9]
        assert store.search(vectors[0], 5, allowed_ids=np.array([], dtype=np.int64)) == []
        assert store.search(vectors[0], 5, allowed_ids=np.array([123456], dtype=np.int64)) == []

    def test_delete(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        vectors = unit(10)
        store.add(IDS, vectors, None)
        store.delete(IDS[:3])
        store.delete(np.array([], dtype=np.int64))
        store.delete(np.array([424242], dtype=np.int64))  # unknown ids are ignored
        assert store.count() == 7
        assert sorted(store.ids().tolist()) == sorted(IDS[3:].tolist())
        assert IDS[0] not in [i for i, _ in store.search(vectors[0], 10)]

    def test_persists_across_reopen(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        vectors = unit(10)
        store.add(IDS, vectors, None)
        store.delete(IDS[-1:])
        store.save()
        store.close()
        again = opener(None)  # dimensions come from what was stored
        assert again.count() == 9
        assert again.search(vectors[2], 1)[0][0] == IDS[2]
        # Writes to a reopened store (FAISS maps the file and must read it in before changing it).
        again.delete(IDS[:1])
        again.add(np.array([5], dtype=np.int64), unit(1, seed=5), None)
        assert again.count() == 9
        again.save()
        again.close()
        assert sorted(opener(None).ids().tolist()) == sorted([*IDS[1:-1].tolist(), 5])

    def test_dimension_mismatch_is_an_error(self, opener: Callable[..., VectorStore]) -> None:
        store = opener()
        store.add(IDS[:2], unit(2), None)
        store.save()
        store.close()
        with pytest.raises(StoreError, match="dimensions"):
            opener(DIMS * 2)
