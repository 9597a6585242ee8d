"""`kb eval FILE`: retrieval quality on questions with gold sources (recall@k, MRR, misses)."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from kb import Hit
from kb.api import KnowledgeBase
from kb.cli.common import CONTEXT, filter_options, json_option, kb_option, pop_filters
from kb.config import MODES
from kb.query.evaluate import EvalResult, RunSpec, evaluate, load_gold, parse_run
from kb.query.search import Tuning

ALL_MODES = (*MODES[1:], MODES[0])  # the default last: a comparison ends with it
_INT = re.compile(r"^\d+(,\d+)*$")
_RUN = re.compile(r"^(hybrid|dense|keyword)(:.*)?$", re.IGNORECASE)


class _EvalCommand(click.Command):
    """Lets `--k 1 5 10` and `--compare dense keyword hybrid` take several values after one flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            out.append(arg)
            i += 1
            if arg in ("--k", "-k"):
                if i < len(args):
                    out.append(args[i])
                    i += 1
                while i < len(args) and _INT.match(args[i]):
                    out += [arg, args[i]]
                    i += 1
            elif arg == "--compare":
                taken = 0
                while i < len(args) and _RUN.match(args[i]):
                    if taken:
                        out.append(arg)
                    out.append(args[i])
                    taken += 1
                    i += 1
                if not taken:
                    out.append(",".join(ALL_MODES))
        return super().parse_args(ctx, out)


@click.command("eval", cls=_EvalCommand, context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@kb_option
@click.option("-k", "--k", "ks", multiple=True, metavar="K...", help="Cut-offs, e.g. --k 1 5 10  [default: 1 5 10]")
@click.option("--mode", type=click.Choice(ALL_MODES, case_sensitive=False), envvar="KB_MODE", show_envvar=True,
              help="Retrieval mode [default: the `mode` setting, hybrid].")
@click.option("--rerank", metavar="MODEL", envvar="KB_RERANK", show_envvar=True,
              help="Cross-encoder that reorders the best candidates (off by default).")
@click.option("--compare", "runs", multiple=True, metavar="RUN...",
              help="Evaluate several runs side by side: modes, optionally with tuning, e.g. "
                   "--compare dense keyword hybrid 'hybrid:keyword_weight=0.5'. Bare --compare: all three modes.")
@click.option("--misses", "show_misses", type=int, default=10, help="Misses to list in the table output (-1: all).")
@filter_options
@json_option
def eval_command(file: str, kb_dir: str | None, ks: tuple[str, ...], mode: str | None, rerank: str | None,
                 runs: tuple[str, ...], show_misses: int, as_json: bool, **kwargs: Any) -> None:
    """Measure retrieval on FILE: questions with gold sources (CSV or JSONL).

    \b
    Columns (any case): Question (or query); Source Docs (or sources, docs, gold):
    file names or globs like '*2023 Q3 report*', several separated by commas or new
    lines; optional Pages: '4, 20' or '3-5'. A question counts as found at k when
    a top-k hit comes from any of its gold files (and, at page level, overlaps a
    gold page). Single-doc and multi-doc questions are also reported apart.
    """
    filters = pop_filters(kwargs)
    cutoffs = _cutoffs(ks)
    questions = load_gold(file)
    specs = [parse_run(s) for spec in runs for s in _split_runs(spec)] or [RunSpec(mode or "", mode or "")]
    with KnowledgeBase.open(kb_dir) as kb:
        sources = [d.source for d in kb.documents()]
        if sources and any((s.mode or kb.settings.mode) != "keyword" for s in specs):
            kb.embedder.embed_query("warm-up")  # model loading must not count in the first run's seconds
        results = []
        for spec in specs:
            run_mode = spec.mode or kb.settings.mode
            tuning = Tuning(**spec.tuning)  # type: ignore[arg-type]

            def search(q: str, k: int, _m: str = run_mode, _t: Tuning = tuning,
                       _r: str | None = spec.rerank) -> list[Hit]:
                return kb.search(q, k=k, filters=filters, mode=_m, rerank=_r or rerank, tuning=_t)

            results.append(evaluate(questions, search, cutoffs, name=spec.name or run_mode, sources=sources))
    if as_json:
        if len(results) == 1:
            click.echo(json.dumps({"file": file, "mode": results[0].name, **results[0].to_json()}, ensure_ascii=False))
        else:
            click.echo(json.dumps({"file": file, "questions": len(questions), "ks": cutoffs,
                                   "runs": {r.name: r.to_json() for r in results}}, ensure_ascii=False))
        return
    _print_table(file, results, show_misses)


def _cutoffs(values: tuple[str, ...]) -> list[int]:
    if not values:
        return [1, 5, 10]
    out: set[int] = set()
    for value in values:
        for part in filter(None, value.replace(" ", ",").split(",")):
            if not part.isdigit() or int(part) < 1:
                raise click.BadParameter(f"{part!r} is not a positive whole number", param_hint="--k")
            out.add(int(part))
    return sorted(out)


def _split_runs(spec: str) -> list[str]:
    """'dense,keyword,hybrid' is three runs; 'hybrid:a=1,b=2' is one."""
    if ":" in spec:
        return [spec]
    return [s for s in (p.strip() for p in spec.split(",")) if s]


def _print_table(file: str, results: list[EvalResult], show_misses: int) -> None:
    first = results[0]
    click.echo(f"{file}: {first.questions} questions"
               + (f", {first.page_questions} with gold pages" if first.page_questions else ""))
    # Long run names (hybrid:keyword_weight=...) become #1, #2... with a legend under the table.
    names = [r.name if len(r.name) <= 14 else f"#{n}" for n, r in enumerate(results, start=1)]
    width = max(10, *(len(n) + 2 for n in names))
    click.echo(f"{'':24}" + "".join(f"{n:>{width}}" for n in names))

    def row(label: str, values: list[float | None]) -> None:
        cells = "".join(f"{'-' if v is None else f'{v:.3f}':>{width}}" for v in values)
        click.echo(f"{label:24}{cells}")

    for k in first.ks:
        row(f"doc recall@{k}", [r.doc_recall[str(k)] for r in results])
    row("MRR", [r.mrr for r in results])
    if first.page_recall is not None:
        for k in first.ks:
            row(f"page recall@{k}", [r.page_recall[str(k)] if r.page_recall else None for r in results])
        row("page MRR", [r.page_mrr for r in results])
    for group, numbers in first.groups.items():
        label = f"{group} ({numbers['questions']})"
        for k in first.ks:
            row(f"{label} doc@{k}", [r.groups.get(group, {}).get("doc_recall", {}).get(str(k)) for r in results])
    row("seconds", [r.seconds for r in results])
    for name, r in zip(names, results):
        if name != r.name:
            click.echo(f"  {name} = {r.name}")
    for r in results:
        if not r.misses or show_misses == 0:
            continue
        shown = r.misses if show_misses < 0 else r.misses[:show_misses]
        click.echo(f"\n{r.name}: {len(r.misses)} miss(es) within top {r.ks[-1]}"
                   + (f", first {len(shown)}:" if len(shown) < len(r.misses) else ":"))
        for m in shown:
            where = ", ".join(m["gold"]) + (f" p.{','.join(map(str, m['pages']))}" if m["pages"] else "")
            found = f" (doc at {m['doc_rank']})" if m["doc_rank"] else ""
            click.echo(f"  - {m['question'][:110]}")
            click.echo(f"    gold {where}{found}; got {' | '.join(m['got'][:2])}")
