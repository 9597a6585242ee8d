"""The packaged Gemma 3 270M on the installed llama-cpp-python build: model start, time to the first
token and prompt tokens/s for a ~1,500-token prompt, generation tokens/s.

    python -m benchmarks.llm [--label portable] [--prompt-tokens 1500] [--max-tokens 128] [--repeats 3] [--json]

Runs the model as `kb ask` does: kb's llama.cpp child server (`kb.llm.llama_cpp`), kb's thread count
and context window, a chat prompt of kb's instructions and numbered sources (paragraphs of kb's own
docs, a different order each run so that no run reuses another's prompt). Each repeat starts a fresh
server (model start), asks once at once (cold: model start + first token, as a first `kb ask` waits)
and once more (warm: a running server). The answer's end-of-turn tokens are banned so that every run
writes `--max-tokens` tokens; the timing is kb's own (`kb.answer.generate.speed`, docs/json.md).

The build is the one installed: its llama-cpp-python version and the CPU kernels llama.cpp reports
(`llama_print_system_info`) are saved with the CPU. To compare builds, install each in turn and run
this with its `--label` (e.g. `native`, `portable`, `dispatch`): benchmarks/results/llm.json keeps one
entry per label, and the table printed shows them all.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine, save

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "llm.json"
KEYS = ("model_start_s", "cold_first_token_s", "first_token_s", "prompt_tokens_per_s", "tokens_per_s")


def build() -> dict[str, Any]:
    """The installed llama-cpp-python: its version and the CPU kernels its llama.cpp was built with."""
    import llama_cpp

    from kb.llm.llama_build import load_backends

    variant = load_backends()  # a dispatch build reports its kernels once this CPU's are loaded
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    kernels = re.findall(r"(\w+) = 1", info)
    return {"llama_cpp_python": llama_cpp.__version__, "kernels": kernels, "system_info": info,
            "variant": variant}


def paragraphs() -> list[str]:
    """Prose to quote as sources: kb's docs, code blocks and tables left out."""
    out: list[str] = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for p in page.read_text(encoding="utf-8").split("\n\n"):
            p = " ".join(p.split())
            if len(p) > 300 and not p.startswith(("```", "|", "#", "<!--")):
                out.append(p)
    return out


def prompt(llm: Any, texts: list[str], start: int, target: int) -> list[dict[str, str]]:
    """kb's answer prompt with sources from `texts` (from `start` on) until it holds `target` tokens
    (the last source cut at a word to come within 20 tokens over)."""
    from kb.answer.prompt import SYSTEM

    def messages(sources: list[str]) -> list[dict[str, str]]:
        quoted = "\n".join(f'<source n="{n}">\n{text}\n</source>' for n, text in enumerate(sources, 1))
        question = "Question: How does kb keep a model's answer honest? Answer in detail."
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Sources:\n{quoted}\n\n{question}"}]

    sources: list[str] = []
    i = start
    while not sources or llm.count_prompt_tokens(messages(sources)) < target:
        sources.append(texts[i % len(texts)])
        i += 1
    words = sources[-1].split()
    while len(words) > 10 and llm.count_prompt_tokens(messages([*sources[:-1], " ".join(words)])) > target + 20:
        words = words[: len(words) * 9 // 10]
    return messages([*sources[:-1], " ".join(words)])


def banned(model: str) -> dict[str, float]:
    """The model's end-of-generation tokens, banned (logit bias -100) so that it writes to `max_tokens`."""
    from llama_cpp import Llama

    from kb.llm.llama_build import load_backends

    load_backends()  # a dispatch build loads no model, not even its vocabulary, without its CPU kernels
    vocab = Llama(model_path=model, vocab_only=True, verbose=False)
    ids = {vocab.token_eos()} | {t for t in range(vocab.n_vocab()) if _is_eog(vocab, t)}
    return {str(t): -100.0 for t in ids}


def _is_eog(vocab: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(vocab._model.vocab, token))


def ask(llm: Any, messages: list[dict[str, str]], max_tokens: int, bias: dict[str, float]) -> dict[str, Any]:
    """One streamed answer from kb's server, timed as `kb ask` times it."""
    import httpx

    from kb.answer.generate import speed

    server = llm._server
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "stream": True, "logit_bias": bias}
    pieces: list[str] = []
    first = None
    t0 = time.perf_counter()
    with httpx.stream("POST", f"http://127.0.0.1:{server.port}/v1/chat/completions", json=body, timeout=600.0,
                      trust_env=False) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            piece = (json.loads(line[5:])["choices"][0].get("delta") or {}).get("content")
            if piece:
                first = first or time.perf_counter()
                pieces.append(piece)
    end = time.perf_counter()
    text = "".join(pieces)
    prompt_tokens = llm.count_prompt_tokens(messages)
    return {"prompt_tokens": prompt_tokens,
            **speed(prompt_tokens, llm.count_tokens(text), len(pieces), t0, first, end)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from kb.llm.llama_cpp import LlamaCppLLM, LlamaServer, _threads, resolve_gguf, stop_servers

    model = resolve_gguf(None)
    bias = banned(str(model))
    texts = paragraphs()
    runs = []
    for r in range(args.repeats):
        stop_servers()
        LlamaServer._shared.clear()
        began = time.perf_counter()
        llm = LlamaCppLLM(None, n_threads=args.threads)
        start_s = time.perf_counter() - began
        cold = ask(llm, prompt(llm, texts, 2 * r, args.prompt_tokens), args.max_tokens, bias)
        warm = ask(llm, prompt(llm, texts, 2 * r + 1, args.prompt_tokens), args.max_tokens, bias)
        row = {"model_start_s": round(start_s, 2), "cold_first_token_s": round(start_s + cold["first_token_s"], 2),
               **warm, "cold": cold}
        runs.append(row)
        print(f"[{r + 1}/{args.repeats}] model start {start_s:.1f} s, cold first token {row['cold_first_token_s']:.1f} s; "
              f"warm: {warm['prompt_tokens']} prompt tokens, first token {warm['first_token_s']:.2f} s "
              f"({warm['prompt_tokens_per_s']} tokens/s), {warm['output_tokens']} tokens at {warm['tokens_per_s']} tokens/s",
              file=sys.stderr, flush=True)
    stop_servers()
    return {"label": args.label, "build": build(), "machine": _machine(), "model": model.name,
            "threads": args.threads or _threads(), "max_tokens": args.max_tokens, "repeats": args.repeats,
            "median": {k: round(statistics.median(r[k] for r in runs), 2) for k in KEYS}, "runs": runs,
            "date": time.strftime("%Y-%m-%d")}


def table(builds: dict[str, Any]) -> str:
    """The results of every build measured, one row each (medians), as in docs/performance.md."""
    rows = ["| build | llama-cpp-python | CPU kernels | CPU | model start s | cold first token s | first token s "
            "| prompt tokens/s | generation tokens/s |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for label, b in builds.items():
        m, machine = b["median"], b["machine"]
        kernels = " ".join(k for k in b["build"]["kernels"] if k.startswith(("AVX", "AMX")))
        if b["build"].get("variant"):  # a dispatch build: the variant it loaded for this CPU
            kernels = f"{b['build']['variant']}: {kernels}"
        flags = " ".join(f for f in machine["flags"] if f != "fma")
        cpu = f"{machine['cpu']} ({flags}), {machine['cores']} cores, {b['threads']} threads, load {machine['load_1m']}"
        rows.append(f"| {label} | {b['build']['llama_cpp_python']} | {kernels} | {cpu} | {m['model_start_s']} "
                    f"| {m['cold_first_token_s']} | {m['first_token_s']} | {m['prompt_tokens_per_s']} | {m['tokens_per_s']} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="installed", help="the build's name in the results (native, portable, dispatch)")
    ap.add_argument("--prompt-tokens", type=int, default=1500, help="the prompt's length (whole sources: a little over)")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens each answer writes")
    ap.add_argument("--repeats", type=int, default=3, help="fresh servers, each asked twice; medians are reported")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads [default: kb's choice]")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    result = run(args)
    builds = json.loads(OUT.read_text())["builds"] if OUT.exists() else {}
    builds[args.label] = result
    if not save({"builds": builds}, OUT, args.json):
        print(table(builds))


if __name__ == "__main__":
    main()
