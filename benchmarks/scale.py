"""Ingest throughput by parser workers: `kb ingest --workers N` on a folder, for N in 1, 2 and all cores.

    python -m benchmarks.scale DIR [DIR...] [--workers 1 2 0] [--limit FILES] [--json]

Each run is a fresh `kb ingest --json` process into a new knowledge base (the model's built graph is
cached and warmed by an untimed ingest of one file first); wall time from the process start to its
exit, peak RSS sampled every 50 ms over the process and its parser workers, summed. `--workers 0` is
kb's default (one per core, at most 4). `--limit` takes the first FILES files of each folder in name
order (copied to a temporary folder) to keep long corpora short. Prints the CPU and its load; writes
benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import PeakRss, _machine

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 3600


def ingest(folder: Path, kb_dir: Path, workers: int) -> dict[str, Any]:
    kb = shutil.which("kb", path=str(Path(sys.executable).parent)) or "kb"  # the console script beside this Python
    cmd = [kb, "ingest", str(folder), "--kb", str(kb_dir), "--json", "-q"]
    if workers:
        cmd += ["--workers", str(workers)]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with PeakRss(proc.pid) as rss:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
        wall = time.perf_counter() - started
    peak = rss.peak
    if proc.returncode not in (0, 1):  # 1: some file failed, reported in the JSON
        raise SystemExit(f"kb ingest {folder} --workers {workers} exited {proc.returncode}")
    report = json.loads(out)
    return {"workers": workers or "default", "files": len(report["added"]), "pages": report["pages"],
            "chunks": report["chunks"], "wall_s": round(wall, 2), "pages_per_s": round(report["pages"] / wall, 2),
            "chunks_per_s": round(report["chunks"] / wall, 1), "peak_rss_mb": round(peak / 2**20),
            "load_before": round(load, 2)}


def subset(folder: Path, limit: int | None, work: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not limit or limit >= len(files):
        return folder
    target = work / f"{folder.name}-first-{limit}"
    target.mkdir()
    for f in files[:limit]:
        shutil.copy(f, target / f.name)
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2, 0])
    ap.add_argument("--limit", type=int, default=None, help="the first N files of each folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kb-scale-") as tmp:
        work = Path(tmp)
        first = next(p for p in sorted(args.folders[0].iterdir()) if p.is_file())
        warm = work / "warm"
        warm.mkdir()
        shutil.copy(first, warm / first.name)
        ingest(warm, work / "kb-warm", 1)  # the model's graph built and cached, files paged in
        for folder in args.folders:
            source = subset(folder, args.limit, work)
            for w in args.workers:
                r = ingest(source, work / f"kb-{folder.name}-{w}", w)
                r["folder"] = str(folder) + (f" (first {args.limit} files)" if source != folder else "")
                results.append(r)
                if not args.json:
                    print(f"{r['folder']:<48} workers {str(r['workers']):>7}: {r['wall_s']:7.1f} s, "
                          f"{r['pages_per_s']:6.1f} pages/s, {r['chunks_per_s']:6.1f} chunks/s, "
                          f"peak RSS {r['peak_rss_mb']} MB (load {r['load_before']})", flush=True)
    report = {"machine": _machine(), "command": "python -m benchmarks.scale " + " ".join(sys.argv[1:]),
              "results": results}
    (ROOT / "benchmarks" / "results" / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        m = report["machine"]
        print(f"CPU: {m['cpu']} ({m['cores']} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
