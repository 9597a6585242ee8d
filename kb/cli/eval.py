"""`kb eval FILE`: retrieval quality on questions with gold sources (recall@k, MRR, misses);
`kb eval --answers FILE`: answers scored ("not found" precision and recall, gold figure, gold source)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

from kb import Answer, Filters, Hit
from kb.answer.evaluate import SPLITS, AnswerEvalResult, evaluate_answers, first_line, load_answers
from kb.api import KnowledgeBase
from kb.cli.common import CONTEXT, emit, filter_options, json_option, kb_option, llm_options, open_kb, pop_filters
from kb.config import MODES, resolve_kb_dir
from kb.query.evaluate import EvalResult, RunSpec, evaluate, load_gold, parse_run
from kb.query.search import Tuning

ALL_MODES = (*MODES[1:], MODES[0])  # the default last: a comparison ends with it
_INT = re.compile(r"^\d+(,\d+)*$")
_RUN = re.compile(r"^(hybrid|dense|keyword)(:.*)?$", re.IGNORECASE)


class _EvalCommand(click.Command):
    """Lets `--k 1 5 10` and `--compare dense keyword hybrid` take several values after one flag, and a
    second `--kb` mean `--compare-kb` (`kb eval FILE --kb A --kb B`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        seen_kb = False
        while i < len(args):
            arg = args[i]
            if arg == "--kb" or arg.startswith("--kb="):
                if seen_kb:
                    arg = "--compare-kb" + arg[len("--kb"):]
                seen_kb = True
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
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@kb_option
@click.option("--answers", "answers_file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Score answers instead of retrieval: questions with gold answers, or marked unanswerable.")
@click.option("-k", "--k", "ks", multiple=True, metavar="K...",
              help="Cut-offs, e.g. --k 1 5 10  [default: 1 5 10]; with --answers, passages to retrieve [default: 5].")
@click.option("--mode", type=click.Choice(ALL_MODES, case_sensitive=False), envvar="KB_MODE", show_envvar=True,
              help="Retrieval mode [default: the `mode` setting, hybrid].")
@click.option("--rerank", metavar="MODEL", envvar="KB_RERANK", show_envvar=True,
              help="Cross-encoder that reorders the best candidates (off by default).")
@click.option("--compare", "runs", multiple=True, metavar="RUN...",
              help="Evaluate several runs side by side: modes, optionally with tuning, e.g. "
                   "--compare dense keyword hybrid 'hybrid:keyword_weight=0.5'. Bare --compare: all three modes.")
@click.option("--compare-kb", "other_kbs", multiple=True, metavar="DIR",
              help="Also evaluate this knowledge base (repeatable; a second --kb does the same): one column per "
                   "knowledge base, named by its folder, with the model it was built with (e.g. one per model).")
@click.option("--misses", "show_misses", type=int, default=10,
              help="Misses (with --answers: wrong refusals and answers) to list in the table output (-1: all).")
@click.option("--split", type=click.Choice(SPLITS), help="Only the questions of this split (a `split` field).")
@llm_options("With --answers, what answers: ")
@click.option("--temperature", type=click.FloatRange(0, 5), default=0.0, show_default=True,
              help="With --answers: sampling temperature (0: the same answers on every run).")
@click.option("--max-tokens", type=click.IntRange(1), default=512, show_default=True,
              help="With --answers: longest answer, in tokens.")
@filter_options
@json_option
def eval_command(file: str | None, kb_dir: str | None, answers_file: str | None, ks: tuple[str, ...],
                 mode: str | None, rerank: str | None, runs: tuple[str, ...], other_kbs: tuple[str, ...],
                 show_misses: int, split: str | None,
                 llm: str | None, llm_model: str | None, llm_base_url: str | None, temperature: float,
                 max_tokens: int, as_json: bool, **kwargs: Any) -> None:
    """Measure retrieval on FILE, or answers with --answers FILE.

    \b
    Retrieval: FILE holds questions with gold sources (CSV or JSONL).

    \b
    Columns (any case): Question (or query); Source Docs (or sources, docs, gold):
    file names or globs like '*2023 Q3 report*', several separated by commas or new
    lines; optional Pages: '4, 20' or '3-5'. A question counts as found at k when
    a top-k hit comes from any of its gold files (and, at page level, overlaps a
    gold page). Single-doc and multi-doc questions are also reported apart.

    \b
    kb eval --answers FILE: asks every question as `kb ask` does (--llm: any
    backend; default: what `kb ask` uses) and scores the answers. FILE's
    records: question; answer (gold) and/or sources (and pages); or
    unanswerable: true (a record with no gold at all is unanswerable too).
    Prints "not found" precision and recall over the unanswerable questions,
    answerable questions refused, the gold figure on the answer's first line
    and anywhere in it, the gold file and page cited (gold naming one file).
    """
    filters = pop_filters(kwargs)
    if (file is None) == (answers_file is None):
        raise click.UsageError("give a gold FILE (retrieval) or --answers FILE (answers), one of the two")
    if answers_file is not None:
        for given, name in ((mode, "--mode"), (rerank, "--rerank"), (runs, "--compare"), (other_kbs, "--compare-kb")):
            if given:
                raise click.UsageError(f"{name} measures retrieval; it does not go with --answers")
        _eval_answers(answers_file, kb_dir, _passages(ks), split, filters, show_misses, as_json,
                      llm=llm, llm_model=llm_model, llm_base_url=llm_base_url,
                      temperature=temperature, max_tokens=max_tokens)
        return
    assert file is not None
    cutoffs = _cutoffs(ks)
    questions = load_gold(file)
    if split is not None:
        questions = [q for q in questions if q.meta.get("split") == split]
        if not questions:
            raise click.UsageError(f"{file}: no question has split {split!r}")
    specs = [parse_run(s) for spec in runs for s in _split_runs(spec)] or [RunSpec(mode or "", mode or "")]
    folders = [kb_dir, *other_kbs] if other_kbs else [kb_dir]
    names = _kb_names(folders) if other_kbs else [""]
    results, about = [], {}
    for folder, kb_name in zip(folders, names):
        with KnowledgeBase.open(folder) as kb:
            if kb_name:
                about[kb_name] = {"kb": str(kb.path), "model": kb.model_id}
            for result in _evaluate(kb, questions, specs, cutoffs, filters, rerank):
                if kb_name:
                    result.name = kb_name if len(specs) == 1 else f"{kb_name}:{result.name}"
                results.append(result)
    if as_json:
        if len(results) == 1:
            click.echo(json.dumps({"file": file, "mode": results[0].name, **results[0].to_json()}, ensure_ascii=False))
        else:
            out = {"file": file, "questions": len(questions), "ks": cutoffs,
                   "runs": {r.name: r.to_json() for r in results}}
            if about:  # each knowledge base: its folder and the model it was built with
                out["kbs"] = about
            click.echo(json.dumps(out, ensure_ascii=False))
        return
    _print_table(file, results, show_misses, [f"{n}: {i['kb']}, model {i['model']}" for n, i in about.items()])


def _evaluate(kb: KnowledgeBase, questions: list[Any], specs: list[RunSpec], cutoffs: list[int],
              filters: Filters | None, rerank: str | None) -> list[EvalResult]:
    """Each run of `specs` on `kb`."""
    sources = [d.source for d in kb.documents()]
    if sources and any((s.mode or kb.settings.mode) != "keyword" for s in specs):
        kb.embedder.embed_query("warm-up")  # model loading must not count in the first run's seconds
    results = []
    for spec in specs:
        run_mode = spec.mode or kb.settings.mode
        tuning = Tuning(**spec.tuning)  # type: ignore[arg-type]

        def search(q: str, k: int, _m: str = run_mode, _t: Tuning = tuning, _r: str | None = spec.rerank) -> list[Hit]:
            return kb.search(q, k=k, filters=filters, mode=_m, rerank=_r or rerank, tuning=_t)

        results.append(evaluate(questions, search, cutoffs, name=spec.name or run_mode, sources=sources))
    return results


def _kb_names(folders: list[str | None]) -> list[str]:
    """A column name per knowledge base: its folder's name (a `.kb` folder: its parent's), or the path
    where two share one."""
    names = []
    for folder in folders:
        path = resolve_kb_dir(folder)
        names.append(path.parent.name if path.name == ".kb" else path.name)
    if len(set(names)) < len(names):
        names = [str(resolve_kb_dir(f)) for f in folders]
    return names


def _eval_answers(file: str, kb_dir: str | None, k: int, split: str | None, filters: Filters | None,
                  show_misses: int, as_json: bool, *, llm: str | None, llm_model: str | None,
                  llm_base_url: str | None, temperature: float, max_tokens: int) -> None:
    questions = load_answers(file, split)
    with open_kb(kb_dir, llm=llm, llm_model=llm_model, llm_base_url=llm_base_url) as kb:
        model, failure = kb.load_llm()
        if failure:
            click.echo(f"kb: {failure}; the answers quote the passages instead", err=True)
        sources = [d.source for d in kb.documents()]

        def ask(question: str) -> Answer:
            return kb.ask(question, k=k, filters=filters, stream=False, temperature=temperature,
                          max_tokens=max_tokens)

        result = evaluate_answers(questions, ask, sources, llm=model.name if model else "none (extractive)")
    if as_json:
        emit({"file": file, "split": split, "k": k, **result.to_json()})
        return
    _print_answers(file, result, show_misses)


def _passages(values: tuple[str, ...]) -> int:
    """--answers' -k: one number of passages, as `kb ask -k`."""
    if not values:
        return 5
    if len(values) > 1 or not values[0].isdigit() or not 1 <= int(values[0]) <= 100:
        raise click.BadParameter("with --answers, one number of passages from 1 to 100", param_hint="-k")
    return int(values[0])


def _print_answers(file: str, result: AnswerEvalResult, show_misses: int) -> None:
    out = result.to_json()
    counts = out["counts"]
    click.echo(f"{file}: {counts['questions']} questions, {counts['answerable']} answerable, "
               f"{counts['unanswerable']} unanswerable; answered by {result.llm}")

    def row(label: str, yes: int, n: int, note: str = "") -> None:
        figure = f"{yes}/{n} ({yes / n:.0%})" if n else "-"
        click.echo(f"  {label:34}{figure:>16}{note}")

    nf = out["not_found"]
    row('"not found" recall', nf["unanswerable_not_found"], nf["unanswerable"], "  of the unanswerable")
    row('"not found" precision', nf["unanswerable_not_found"], nf["answered_not_found"],
        "  of the answers \"not found\"")
    for label, key in (("answerable refused", "answerable_refused"),
                       ("gold figure on the first line", "gold_figure_first_line"),
                       ("gold figure anywhere in the answer", "gold_figure_in_answer"),
                       ("gold file cited", "gold_file_cited"), ("gold page cited", "gold_page_cited")):
        row(label, out[key]["yes"], out[key]["n"])
    click.echo(f"  median seconds per question {out['median_seconds']}, {out['seconds']} s in all"
               + (f"; {out['llm_errors']} model error(s): those answers are extractive" if out["llm_errors"] else ""))
    if counts["gold_not_indexed"]:
        click.echo(f"kb: {counts['gold_not_indexed']} question(s) name gold files this knowledge base does not hold",
                   err=True)
    wrong = [r for r in result.questions if r.refused != r.unanswerable]
    if not wrong or show_misses == 0:
        return
    shown = wrong if show_misses < 0 else wrong[:show_misses]
    click.echo(f"\n{len(wrong)} wrong refusal(s) or answer(s)" + (f", first {len(shown)}:" if len(shown) < len(wrong) else ":"))
    for r in shown:
        click.echo(f"  - {r.question[:110]}")
        click.echo("    refused, though answerable" if r.refused else f"    answered: {first_line(r.answer)[:100]}")


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


def _print_table(file: str, results: list[EvalResult], show_misses: int, notes: Sequence[str] = ()) -> None:
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
    for note in notes:  # each knowledge base compared: its folder and model
        click.echo(f"  {note}")
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
