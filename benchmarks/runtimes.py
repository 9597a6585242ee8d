"""Raw embedding runtimes on this CPU: texts/s by threads and batch size, and runs side by side as kb
does; OpenVINO bf16's vectors against fp32's.

    python -m benchmarks.runtimes --kb DIR [--every 8] [--passes 2] [--threads 1 2] [--batch 1 8 32] [--json]

kb's int8 graph and its fp32 graph through ONNX Runtime, and the fp32 graph through OpenVINO in f32
and bf16 where `openvino` is installed (`pip install openvino`; OpenVINO runs bf16 on AMX or AVX-512
BF16 units and otherwise computes in f32). Rows:
- "threads N": one session with N threads, the texts in length-sorted batches of each size;
- "side by side": one single-threaded session run per core at once (a thread pool), which is how kb's
  int8 path embeds (each text alone); here for int8 and for bf16 at each batch size.
For bf16, also the cosine of its vectors of the first 64 texts to ONNX Runtime fp32's, and of each
text alone to the same text in one batch of all 64. The texts are every Nth chunk of the knowledge
base in DIR, tokenized as kb does. Building the fp32 graph marks it as used in kb's model cache, so it
stays there. `benchmarks.ingest --embed-only` times the backends as kb runs them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ingest import _machine
from kb.config import DEFAULT_MODEL
from kb.embed.onnx import OnnxEmbedder
from kb.embed.onnx_export import FP32_FILE, INT8_FILE, SLOW_FUSIONS, pool

Feed = dict[str, np.ndarray]
Run = Callable[[Feed], np.ndarray]  # a feed to its token vectors
COMPARED = 64  # texts whose bf16 vectors are compared with fp32's


def texts_of(kb: Path, every: int) -> list[str]:
    with closing(sqlite3.connect(f"file:{kb / 'catalog.sqlite'}?mode=ro", uri=True)) as con:
        return [r[0] for r in con.execute("SELECT text FROM chunks ORDER BY id")][::every]


def batches(ids: list[list[int]], size: int, inputs: set[str]) -> list[Feed]:
    """`ids` in batches of `size`, in the order given, each padded to its longest text."""
    out = []
    for start in range(0, len(ids), size):
        rows = ids[start : start + size]
        tokens = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
        mask = np.zeros_like(tokens)
        for r, row in enumerate(rows):
            tokens[r, : len(row)], mask[r, : len(row)] = row, 1
        feed = {"input_ids": tokens, "attention_mask": mask, "token_type_ids": np.zeros_like(tokens)}
        out.append({k: v for k, v in feed.items() if k in inputs})
    return out


def vectors(run: Run, feeds: list[Feed], pooling: str) -> np.ndarray:
    """The texts' sentence vectors, L2-normalised, in the feeds' order."""
    out = np.vstack([pool(run(feed), feed["attention_mask"], pooling) for feed in feeds])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def rate(run: Callable[[list[Feed]], Any], feeds: list[Feed], texts: int, passes: int) -> float:
    """Texts per second of the best of `passes` passes over `feeds`, after an untimed one (every shape
    seen once: OpenVINO compiles per shape)."""
    run(feeds)
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        run(feeds)
        best = min(best, time.perf_counter() - started)
    return texts / best


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.runtimes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kb", type=Path, required=True, help="a knowledge base whose chunks are the texts")
    ap.add_argument("--every", type=positive, default=8, help="every Nth chunk [default: 8]")
    ap.add_argument("--passes", type=positive, default=2, help="timed passes, the best kept [default: 2]")
    ap.add_argument("--threads", type=positive, nargs="+", default=[1, 2], help="threads of one session [default: 1 2]")
    ap.add_argument("--batch", type=positive, nargs="+", default=[1, 8, 32], help="texts per run [default: 1 8 32]")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if not (args.kb / "catalog.sqlite").is_file():
        ap.error(f"--kb {args.kb}: no knowledge base there")

    import onnxruntime as ort

    int8, fp32 = (OnnxEmbedder(DEFAULT_MODEL, quantize=q) for q in (True, False))
    texts = texts_of(args.kb, args.every)
    if not texts:
        ap.error(f"--kb {args.kb}: no chunks there")
    ids = [e.ids for e in int8._encoder.encode_batch(texts)]
    by_length = sorted(ids, key=len)  # little padding in a batch, as kb's fp32 path batches
    cores = int8.cores
    rows: list[dict[str, Any]] = []

    def timed(runtime: str, layout: str, make: Callable[[], Run], inputs: set[str]) -> None:
        """One row: `make()` gives a run for one caller; "side by side" gives each of `cores` callers its own."""
        pool = ThreadPoolExecutor(max_workers=cores) if layout == "side by side" else None
        if pool is not None:
            local = threading.local()

            def one(feed: Feed) -> np.ndarray:
                if not hasattr(local, "run"):
                    local.run = make()
                return local.run(feed)

            def over(feeds: list[Feed]) -> Any:
                return list(pool.map(one, feeds))
        else:
            run = make()

            def over(feeds: list[Feed]) -> Any:
                return [run(feed) for feed in feeds]
        try:
            per_batch = {str(size): round(rate(over, batches(by_length, size, inputs), len(ids), args.passes), 1)
                         for size in args.batch}
        finally:
            if pool is not None:
                pool.shutdown()
        rows.append({"runtime": runtime, "layout": layout, "texts_per_s": per_batch})
        if not args.json:
            print(f"{runtime:26s} {layout:16s} " + "  ".join(f"batch {b}: {r:6.1f}" for b, r in per_batch.items()), flush=True)

    def ort_run(path: Path, threads: int) -> Callable[[], Run]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as kb's sessions
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=SLOW_FUSIONS)
        return lambda: lambda feed: session.run(None, feed)[0]  # one session serves concurrent runs

    graphs = {"int8": int8.export_dir / INT8_FILE, "fp32": fp32.export_dir / FP32_FILE}
    inputs = set(fp32.meta["inputs"])  # the graph's inputs, as its export recorded them
    for label, path in graphs.items():
        for threads in args.threads:
            timed(f"onnxruntime {label}", f"threads {threads}", ort_run(path, threads), inputs)
    timed("onnxruntime int8", "side by side", ort_run(graphs["int8"], 1), inputs)

    compared: dict[str, float] = {}
    openvino = None
    if importlib.util.find_spec("openvino") is not None:
        import openvino as ov

        openvino = ov.__version__.split("-")[0]
        core = ov.Core()
        model = core.read_model(str(graphs["fp32"]))

        def ov_run(precision: str, threads: int, streams: int = 1) -> Callable[[], Run]:
            # A stream runs one request at a time: side by side, one stream per core, a thread each.
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": streams,
                                                         "INFERENCE_NUM_THREADS": threads * streams})

            def make() -> Run:  # an infer request serves one caller at a time
                request = compiled.create_infer_request()
                return lambda feed: next(iter(request.infer(feed).values()))
            return make

        for precision in ("f32", "bf16"):
            for threads in args.threads:
                timed(f"openvino {openvino} {precision}", f"threads {threads}", ov_run(precision, threads), inputs)
        timed(f"openvino {openvino} bf16", "side by side", ov_run("bf16", 1, cores), inputs)
        first, pooling = ids[:COMPARED], fp32.meta["pooling"]
        bf16 = ov_run("bf16", cores)()
        alone = vectors(bf16, batches(first, 1, inputs), pooling)
        exact = vectors(ort_run(graphs["fp32"], cores)(), batches(first, 1, inputs), pooling)
        together = vectors(bf16, batches(first, len(first), inputs), pooling)
        compared = {"texts": len(first), "bf16_vs_fp32_cosine_min": float((alone * exact).sum(1).min()),
                    "bf16_alone_vs_batch_cosine_min": float((alone * together).sum(1).min())}
        if not args.json:
            print(f"openvino bf16 on {len(first)} texts: cosine to fp32 min {compared['bf16_vs_fp32_cosine_min']:.6f}, "
                  f"alone vs in one batch min {compared['bf16_alone_vs_batch_cosine_min']:.7f}")
    elif not args.json:
        print("openvino is not installed: its rows are left out (pip install openvino)", file=sys.stderr)
    machine = _machine()
    mean_tokens = round(float(np.mean([len(i) for i in ids])), 1)
    if args.json:
        print(json.dumps({"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "texts": len(ids),
                          "mean_tokens": mean_tokens, "fp32_graph_from": fp32.backend, "int8_graph_from": int8.backend,
                          "onnxruntime": importlib.metadata.version("onnxruntime"), "openvino": openvino,
                          "runs": rows, "vectors": compared, "machine": machine}))
    else:
        print(f"{len(ids)} texts, mean {mean_tokens:.0f} tokens; {machine['cpu']} ({' '.join(machine['flags'])}), "
              f"load {machine['load_1m']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
