"""The export cache (~/.cache/kb/onnx) keeps one model file per model and backend: the fp32 graph only
where the `onnx` backend runs it, no folder of an older export recipe, no export cut short; never
deleting what another process exports or embeds with. A full disk there is one line naming it."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections import namedtuple
from pathlib import Path

import pytest

from kb.embed import onnx_export
from kb.embed.onnx_export import (
    EXPORT_VERSION,
    FP32_FILE,
    FP32_USED,
    INT8_FILE,
    META_FILE,
    ensure_export,
    hold,
    prune,
)
from kb.errors import DiskFullError

MODEL = "acme/tiny-encoder"
Usage = namedtuple("Usage", "total used free")  # what shutil.disk_usage returns


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2}))
    (folder / "model.safetensors").write_bytes(b"\0" * 4096)
    return folder


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A stand-in for the export (the real one builds a 90 MB graph: test_real_export_keeps_only_int8):
    it writes what `_export` writes, small. The folders it wrote into, in order."""
    made: list[Path] = []

    def export(location: Path, model_id: str, out: Path) -> None:
        made.append(out)
        for name in (FP32_FILE, INT8_FILE, "tokenizer.json"):
            (out / name).write_bytes(name.encode())
        (out / META_FILE).write_text(json.dumps({"model_id": model_id, "export_version": EXPORT_VERSION}))

    monkeypatch.setattr(onnx_export, "_export", export)
    return made


def old_export(cache: Path, name: str, model_id: str = MODEL, version: int = EXPORT_VERSION - 1) -> Path:
    folder = cache / name
    folder.mkdir(parents=True)
    (folder / META_FILE).write_text(json.dumps({"model_id": model_id, "export_version": version}))
    (folder / INT8_FILE).write_bytes(b"old")
    return folder


def test_int8_keeps_no_fp32_graph_and_older_exports_go(tmp_path: Path, model: Path, exports: list[Path]) -> None:
    cache = tmp_path / "cache"
    older = old_export(cache, "tiny-encoder-0000000000000001")
    other = old_export(cache, "other-0000000000000002", model_id="acme/other")  # another model's: kept
    cut_short = cache / ".tiny-encoder-00000000000000ff.4242.tmp"  # an export killed midway
    cut_short.mkdir()
    folder = ensure_export(str(model), MODEL, cache)
    assert sorted(p.name for p in folder.iterdir()) == sorted([INT8_FILE, META_FILE, "tokenizer.json"])
    assert not older.exists() and other.exists() and not cut_short.exists()
    assert not (cache / f".{older.name}.lock").exists() and not (cache / f".{older.name}.use").exists()
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [other.name, folder.name]
    assert ensure_export(str(model), MODEL, cache) == folder and len(exports) == 1  # done once


def test_the_fp32_graph_is_kept_where_the_onnx_backend_runs_it(tmp_path: Path, model: Path,
                                                               exports: list[Path]) -> None:
    cache = tmp_path / "cache"
    folder = ensure_export(str(model), MODEL, cache)
    assert not (folder / FP32_FILE).exists()
    assert ensure_export(str(model), MODEL, cache, fp32=True) == folder  # the fp32 graph made again, added
    assert (folder / FP32_FILE).is_file() and (folder / FP32_USED).is_file() and len(exports) == 2
    ensure_export(str(model), MODEL, cache)  # the int8 backend leaves the graph the onnx backend runs
    assert (folder / FP32_FILE).is_file() and len(exports) == 2


def test_an_fp32_graph_left_by_an_earlier_kb_goes_at_the_next_load(tmp_path: Path, model: Path,
                                                                   exports: list[Path]) -> None:
    cache = tmp_path / "cache"
    folder = ensure_export(str(model), MODEL, cache)
    (folder / FP32_FILE).write_bytes(b"\0" * 1000)  # what kb kept before: 90 MB for the default model
    assert ensure_export(str(model), MODEL, cache) == folder
    assert not (folder / FP32_FILE).exists() and (folder / INT8_FILE).is_file() and len(exports) == 1


def test_an_older_export_in_use_or_being_made_is_left_alone(tmp_path: Path, model: Path,
                                                            exports: list[Path]) -> None:
    cache = tmp_path / "cache"
    used = old_export(cache, "tiny-encoder-0000000000000001")
    making = cache / ".tiny-encoder-0000000000000003.77.tmp"
    making.mkdir()
    held = hold(used)  # another process embeds with it (flock: another open file counts as another holder)
    exporting = open(cache / ".tiny-encoder-0000000000000003.lock", "w")
    fcntl.flock(exporting, fcntl.LOCK_EX)
    try:
        ensure_export(str(model), MODEL, cache)
        assert used.exists() and making.exists()
    finally:
        assert held is not None
        held.close()
        exporting.close()
    assert sorted(prune(cache, MODEL)) == [making.name, used.name]  # once released, the next load tidies
    assert not used.exists() and not making.exists()


def test_a_full_cache_disk_is_one_line_naming_the_folder(tmp_path: Path, model: Path, exports: list[Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"

    def no_room(location: Path, model_id: str, out: Path) -> None:  # the disk fills while the graph is written
        (out / FP32_FILE).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / FP32_FILE))

    monkeypatch.setattr(onnx_export, "_export", no_room)
    with pytest.raises(DiskFullError) as e:
        ensure_export(str(model), MODEL, cache)
    message = str(e.value)
    assert message.startswith(f"no space left in {cache} to build the ONNX graph of {MODEL}: ")
    assert " free, about " in message and " needed; " in message and "KB_CACHE_DIR" in message
    assert "\n" not in message
    assert not [p for p in cache.iterdir() if p.is_dir()]  # nothing half-written left behind

    # Too little room to begin: said before anything is written.
    monkeypatch.setattr(onnx_export, "_export", lambda *a: pytest.fail("exported without room"))
    monkeypatch.setattr(onnx_export.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskFullError, match=r"1 kB free, about 4\.\d MB needed"):
        ensure_export(str(model), MODEL, cache)


@pytest.mark.slow
def test_real_export_keeps_only_int8(tmp_path: Path) -> None:
    """The default model, exported for real without torch: the cache holds its int8 graph (23 MB), not
    the fp32 one (90 MB) it was made from."""
    pytest.importorskip("onnxruntime")
    from kb.embed.onnx import OnnxEmbedder

    embedder = OnnxEmbedder("all-MiniLM-L6-v2", quantize=True, cache_dir=tmp_path / "onnx")
    assert embedder.embed_query("failover region").shape == (384,)
    (folder,) = [p for p in (tmp_path / "onnx").iterdir() if p.is_dir()]
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert FP32_FILE not in sizes and 15e6 < sizes[INT8_FILE] < 30e6
    assert sum(sizes.values()) < 30e6
