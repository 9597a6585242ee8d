"""`kb serve` under load: requests/s and latency of POST /search with N concurrent clients.

    python -m benchmarks.serve --kb DIR [--clients 20] [--seconds 30] [--k 5] [--questions FILE] [--json]
    python -m benchmarks.serve --url http://127.0.0.1:8000 [--token T] ...   (a server already running)

Without --url it starts `kb serve --kb DIR --llm none` on 127.0.0.1 and a free port (bounded wait for
/healthz), and stops it afterwards. Then `--clients` concurrent clients (asyncio + httpx, one keep-alive
connection each, in this process) send POST /search back to back for `--seconds`, cycling through the
questions (default: ../shared/eval/sec-10q/questions.csv, else a built-in few). One warm-up round first.
Reports completed requests/s and p50/p90/p99 latency (ms) from the client's side, and errors.
The load generator shares the machine's cores with the server: on a small machine it is part of the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine

FALLBACK_QUESTIONS = [
    "What were total net sales for the quarter?",
    "How much cash and cash equivalents did the company hold?",
    "What were research and development expenses?",
    "What risks does the company describe about supply chains?",
    "How did operating income change compared with the prior year?",
]
DEFAULT_QUESTIONS = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "sec-10q" / "questions.csv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(kb_dir: Path, timeout: float = 180.0) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="kb-serve-bench-", suffix=".log")[1])
    env = {k: v for k, v in os.environ.items() if k != "KB_API_TOKEN"}
    exe = Path(sys.executable).with_name("kb")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--kb", str(kb_dir), "--port", str(port), "--llm", "none",
                                 "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"kb serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"kb serve did not answer /healthz within {timeout:.0f} s")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def load(url: str, questions: list[str], clients: int, seconds: float, k: int,
               headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, q: str, record: bool) -> None:
        t = time.perf_counter()
        try:
            r = await client.post("/search", json={"query": q, "k": k})
            ok = r.status_code == 200
            key = "" if ok else f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            ok, key = False, type(e).__name__
        if record:
            if ok:
                latencies.append(time.perf_counter() - t)
            else:
                errors[key] = errors.get(key, 0) + 1

    async def worker(n: int, stop_at: float) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
            i = n
            while time.perf_counter() < stop_at:
                await one(client, questions[i % len(questions)], record=True)
                i += clients

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as warm:
        for q in questions[: min(len(questions), 10)]:
            await one(warm, q, record=False)
    started = time.perf_counter()
    await asyncio.gather(*(worker(n, started + seconds) for n in range(clients)))
    elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))], 1) if ms else float("nan")

    return {
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(ms), "errors": errors,
        "requests_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", type=Path, help="knowledge base to serve (starts kb serve on a free loopback port)")
    ap.add_argument("--url", help="an already running server instead")
    ap.add_argument("--token", default=os.environ.get("KB_API_TOKEN"),
                    help="API token for --url [default: KB_API_TOKEN]")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not args.kb and not args.url:
        ap.error("give --kb DIR or --url URL")
    if not 1 <= args.clients <= 500 or not 0 < args.seconds <= 600:
        ap.error("--clients must be 1-500 and --seconds 0-600")
    if args.questions and args.questions.is_file():
        from kb.query.evaluate import load_gold

        questions = [q.question for q in load_gold(args.questions)]
    else:
        questions = FALLBACK_QUESTIONS
    proc = None
    url = args.url
    if not url:
        proc, url, _ = start_server(args.kb)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token and args.url else {}
    try:
        import httpx

        status = httpx.get(url + "/status", headers=headers, timeout=30).json()
        result = asyncio.run(load(url, questions, args.clients, args.seconds, args.k, headers))
    finally:
        if proc is not None:
            stop_server(proc)
    result.update({"k": args.k, "questions": len(questions), "documents": status.get("documents"),
                   "chunks": status.get("chunks"), "machine": _machine()})
    if args.json:
        print(json.dumps(result))
        return
    print(f"POST /search, k={args.k}: {result['clients']} clients for {result['seconds']} s on {url} "
          f"({result['documents']} documents, {result['chunks']} chunks; {result['machine']['cores']} CPUs)")
    print(f"  {result['requests']} requests, {result['requests_per_s']} requests/s; latency p50 {result['p50_ms']} ms, "
          f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms; errors: {result['errors'] or 'none'}")


if __name__ == "__main__":
    main()
