"""Raw embedding runtimes on this CPU: texts/s by threads and batch size; OpenVINO bf16's vectors against fp32's.

    python -m benchmarks.runtimes --kb DIR [--every 8] [--passes 2] [--json]

kb's int8 graph and its fp32 graph through ONNX Runtime, and the fp32 graph through OpenVINO in f32
and bf16 (where `openvino` is installed: `pip install openvino`; bf16 runs on AMX or AVX-512 BF16
units, elsewhere OpenVINO falls back to f32); for bf16, the cosine of its mean-pooled vectors of the
first 64 texts to ONNX Runtime fp32's, and of each text alone to the same text in one batch of all 64. The texts are every Nth chunk of the knowledge base in
DIR, tokenized as kb does, sorted by length into batches. This is the measurement behind the choice
of kb's int8 path (texts one at a time, one run per core: benchmarks/PERFORMANCE.md); `benchmarks.ingest
--embed-only` times the backends as kb runs them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ingest import cpu_info
from kb.config import DEFAULT_MODEL
from kb.embed.onnx import OnnxEmbedder
from kb.embed.onnx_export import FP32_FILE, INT8_FILE, SLOW_FUSIONS

Feed = dict[str, np.ndarray]


def texts_of(kb: Path, every: int) -> list[str]:
    with sqlite3.connect(f"file:{kb / 'catalog.sqlite'}?mode=ro", uri=True) as con:
        return [r[0] for r in con.execute("SELECT text FROM chunks ORDER BY id")][::every]


def batches(ids: list[list[int]], size: int) -> list[Feed]:
    ordered = sorted(ids, key=len)
    out = []
    for start in range(0, len(ordered), size):
        rows = ordered[start : start + size]
        tokens = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
        mask = np.zeros_like(tokens)
        for r, row in enumerate(rows):
            tokens[r, : len(row)], mask[r, : len(row)] = row, 1
        out.append({"input_ids": tokens, "attention_mask": mask, "token_type_ids": np.zeros_like(tokens)})
    return out


def pooled(tokens: np.ndarray, feed: Feed) -> np.ndarray:
    """Mean over each text's own tokens, L2-normalised (MiniLM's pooling)."""
    mask = feed["attention_mask"][..., None]
    mean = (tokens * mask).sum(1) / mask.sum(1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def rate(run: Callable[[Feed], Any], feeds: list[Feed], texts: int, passes: int) -> float:
    """Texts per second of the best of `passes` passes over `feeds`, after one warm-up run."""
    run(feeds[0])
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for feed in feeds:
            run(feed)
        best = min(best, time.perf_counter() - started)
    return texts / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.runtimes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kb", type=Path, required=True, help="a knowledge base whose chunks are the texts")
    ap.add_argument("--every", type=int, default=8, help="every Nth chunk [default: 8]")
    ap.add_argument("--passes", type=int, default=2, help="timed passes, the best kept [default: 2]")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    int8, fp32 = (OnnxEmbedder(DEFAULT_MODEL, quantize=q) for q in (True, False))
    texts = texts_of(args.kb, args.every)
    if not texts:
        ap.error(f"--kb {args.kb}: no chunks there")
    ids = [e.ids for e in int8._encoder.encode_batch(texts)]
    feeds = {size: batches(ids, size) for size in args.batch}
    rows: list[dict[str, Any]] = []
    vectors: dict[str, float] = {}

    def timed(runtime: str, threads: int, run: Callable[[Feed], Any]) -> None:
        row = {"runtime": runtime, "threads": threads,
               "texts_per_s": {str(size): round(rate(run, feeds[size], len(ids), args.passes), 1) for size in args.batch}}
        rows.append(row)
        if not args.json:
            print(f"{runtime:34s} threads {threads}  " + "  ".join(f"batch {b}: {r:6.1f}" for b, r in row["texts_per_s"].items()),
                  flush=True)

    for label, path in (("onnxruntime int8", int8.export_dir / INT8_FILE), ("onnxruntime fp32", fp32.export_dir / FP32_FILE)):
        for threads in args.threads:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as kb's sessions
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                           disabled_optimizers=SLOW_FUSIONS)
            timed(label, threads, lambda feed, s=session: s.run(None, feed))
    if importlib.util.find_spec("openvino") is not None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(fp32.export_dir / FP32_FILE))
        for precision in ("f32", "bf16"):
            for threads in args.threads:
                compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                             "INFERENCE_NUM_THREADS": threads})
                timed(f"openvino {ov.__version__.split('-')[0]} {precision}", threads, compiled)
        fp32_session = ort.InferenceSession(str(fp32.export_dir / FP32_FILE), providers=["CPUExecutionProvider"],
                                            disabled_optimizers=SLOW_FUSIONS)
        bf16 = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
        first = ids[:64]
        alone = np.vstack([pooled(next(iter(bf16(feed).values())), feed) for feed in batches(first, 1)])
        exact = np.vstack([pooled(fp32_session.run(None, feed)[0], feed) for feed in batches(first, 1)])
        together = batches(first, len(first))[0]
        in_batch = pooled(next(iter(bf16(together).values())), together)  # rows by length, as `alone`'s
        vectors = {"bf16_vs_fp32_cosine_min": float((alone * exact).sum(1).min()),
                   "bf16_alone_vs_batch_cosine_min": float((alone * in_batch).sum(1).min())}
        if not args.json:
            print(f"openvino bf16 on {len(first)} texts: cosine to fp32 min {vectors['bf16_vs_fp32_cosine_min']:.6f}, "
                  f"alone vs in one batch min {vectors['bf16_alone_vs_batch_cosine_min']:.7f}")
    elif not args.json:
        print("openvino is not installed: its rows are left out (pip install openvino)", file=sys.stderr)
    cpu, flags = cpu_info()
    machine = {"cpu": cpu, "flags": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
                                                   "amx_tile", "amx_int8", "amx_bf16"})}
    if args.json:
        print(json.dumps({"texts": len(ids), "mean_tokens": round(float(np.mean([len(i) for i in ids])), 1),
                          "runs": rows, "vectors": vectors, "machine": machine}))
    else:
        print(f"{len(ids)} texts, mean {np.mean([len(i) for i in ids]):.0f} tokens; {cpu} ({' '.join(machine['flags'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
