"""The figures the docs (docs/*.md, benchmarks/*.md) print are the rendering of benchmarks/results/readme.json,
and (slow) that file's eval figures are what `kb eval` measures today."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks import readme

# How far a re-measured figure may be from the stored one, in questions of its set (a figure moves in
# steps of 1/n: 0.0051 on the 195 questions, 0.023 on the 43 with page gold), measured 2026-12-02 on
# the 2-vCPU AMD EPYC (AVX-512 VNNI) the figures come from:
# - Same machine class (CPU model, SIMD flags, cores, onnxruntime as stored): none. Two ingests of the
#   20 filings hours apart, one under load 6, wrote bit-identical vectors, and every eval figure was
#   equal to the last digit; so a change of even one question is a real change of kb.
# - Another CPU runs other int8 kernels (ONNX Runtime picks AVX2, AVX-512, AVX-VNNI, AVX-512 VNNI or
#   AMX code; without VNNI, u8*s8 products are summed in saturating 16-bit lanes), so every vector
#   moves a little and nearly tied neighbours can swap. Measured here: relative noise 0.001-0.003 on
#   the query vectors moved no recall figure; 0.01-0.03 (cosine 0.9996) moved some by 1 question; the
#   whole query side swapped to fp32 (cosine ~0.99, far more than a kernel difference) by at most 2,
#   and torch against int8 vectors on both sides (benchmarks/PERFORMANCE.md) by at most 2. Hence 2.
# The index itself (documents, pages, chunks, model, backend, chunking) must match exactly on any CPU.
TOLERANCE_OTHER_CPU = 2
# Where the docs site prints the eval table and the ingest table.
RETRIEVAL, PERFORMANCE = "docs/retrieval.md", "docs/performance.md"


def test_docs_blocks_are_the_stored_results() -> None:
    res = readme.load_results()
    diffs = readme.differences(res)
    assert not diffs, "regenerate with `python -m benchmarks.readme --render`:\n" + "\n".join(diffs)


def test_stored_results_say_where_they_come_from() -> None:
    res = readme.load_results()
    ev = res["eval"]
    assert ev["date"] and ev["machine"]["cpu"] and ev["versions"]["kb"] and ev["index"]["backend"]
    assert any(c.startswith("kb eval ../shared/eval/sec-10q/questions.csv") for c in ev["commands"])
    assert set(ev["results"]) == set(readme.EVALS)
    for run in res["ingest"]["runs"]:
        assert run["source"] and run["command"].startswith("python -m benchmarks.ingest")
    assert res["ingest"]["provenance"]


def _copy_docs(root: Path) -> None:
    for file in {f for f, _ in readme.BLOCKS}:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(readme.REPO / file, root / file)


def test_check_catches_a_figure_edited_by_hand_and_render_restores_it(tmp_path: Path) -> None:
    _copy_docs(tmp_path)
    res = readme.load_results()
    shown = f"{res['eval']['results']['questions']['runs']['hybrid']['mrr']:.3f}"
    text = (tmp_path / RETRIEVAL).read_text()
    block = text[text.index("<!-- figures:eval -->"):text.index("<!-- /figures:eval -->")]
    assert shown in block
    (tmp_path / RETRIEVAL).write_text(text.replace(block, block.replace(shown, "0.999")))
    assert any(RETRIEVAL in d and "0.999" in d for d in readme.differences(res, tmp_path))

    assert readme.write_docs(res, tmp_path) == [RETRIEVAL]
    assert readme.differences(res, tmp_path) == []
    assert (tmp_path / RETRIEVAL).read_text() == text


def test_a_missing_marker_is_an_error_not_a_pass(tmp_path: Path) -> None:
    _copy_docs(tmp_path)
    page = tmp_path / RETRIEVAL
    page.write_text(page.read_text().replace("<!-- /figures:eval -->", ""))
    assert any("figures:eval" in d for d in readme.differences(readme.load_results(), tmp_path))
    with pytest.raises(ValueError):
        readme.write_docs(readme.load_results(), tmp_path)


def test_a_new_ingest_run_renders(tmp_path: Path) -> None:
    """What `--ingest` stores (from `python -m benchmarks.ingest --json`) renders in both docs that show it."""
    side = {"files": 20, "pages": 1037, "failed": [], "wall_s": 100.0, "peak_rss_mb": 900.0}
    raw = {"kb": {**side, "chunks": 4120, "backend": "onnx-int8", "one_off_export_s": 0.1,
                  "recall": {"dense": {"doc_recall@1": 45.1, "doc_recall@5": 82.1, "doc_recall@10": 90.3},
                             "hybrid": {"doc_recall@1": 73.3, "doc_recall@5": 94.4, "doc_recall@10": 99.5}}},
           "reference": {**side, "chunks": 4250, "wall_s": 250.0, "backend": "torch",
                         "recall": {"dense": {"doc_recall@1": 39.5, "doc_recall@5": 84.1, "doc_recall@10": 93.3}}},
           "speedup": 2.5, "files": 20, "machine": {"cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "cores": 2, "load_1m": 1.5,
                                                    "python": "3.11", "flags": ["avx2", "avx512f", "amx_int8"]}}
    res = readme.load_results()
    res["ingest"] = {"provenance": "Measured today.", "runs": [
        readme.ingest_record("kb first", "2026-12-02T15:00:00+00:00", "python -m benchmarks.ingest ../shared/eval/sec-10q --json", raw)]}
    _copy_docs(tmp_path)
    readme.write_docs(res, tmp_path)
    text = (tmp_path / PERFORMANCE).read_text()
    # each row names the CPU the benchmark ran on, short, and AMX where it has it (it moves the ratios most)
    assert "| kb first (2026-12-02, Intel Xeon Platinum 8481C with AMX, load 1.5) | 100.0 | 10.4 | 41.2 | - | 250.0 | 2.50x | - | - |" in text
    assert "94.4 for kb (hybrid, onnx-int8) against 84.1" in text
    perf = (tmp_path / "benchmarks/PERFORMANCE.md").read_text()
    assert ("| 1 (kb first, 2026-12-02, `../shared/eval/sec-10q --json`, Intel Xeon Platinum 8481C with AMX, load 1.5) "
            "| kb (onnx-int8) | 100.0 |") in perf
    assert "| | reference | 250.0 | 4.15 | 4,250 | 17.0 | 900 | **2.50x** |" in perf
    assert readme.differences(res, tmp_path) == []
    # A run with the LlamaIndex reference and kb's torch row too (what `--add-ingest` stores) fills their columns.
    torch = {**side, "chunks": 4120, "wall_s": 200.0, "backend": "torch"}
    res["ingest"]["runs"].append(readme.ingest_record(
        "alternating, median of 3", "2026-12-02T18:46:00+00:00", "python -m benchmarks.ingest DIR --repeats 3",
        {**raw, "llamaindex": {**side, "chunks": 1163, "wall_s": 150.0}, "kb_backends": {"kb": raw["kb"], "kb[torch]": torch}}))
    readme.write_docs(res, tmp_path)
    text = (tmp_path / PERFORMANCE).read_text()
    assert ("| alternating, median of 3 (2026-12-02, Intel Xeon Platinum 8481C with AMX, load 1.5) | 100.0 | 10.4 | 41.2 | 200.0 | 250.0 | 2.50x | 150.0 "
            "| 1.50x |") in text
    perf = (tmp_path / "benchmarks/PERFORMANCE.md").read_text()
    assert "| | kb (torch) | 200.0 | 5.18 | 4,120 | 20.6 | 900 | 2.00x |" in perf
    assert "| | LlamaIndex | 150.0 | 6.91 | 1,163 | 7.8 | 900 | **1.50x** |" in perf


def test_check_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert readme.main(["--check"]) == 0


def _figures(results: dict[str, Any]) -> dict[str, tuple[float, int]]:
    """Every figure of the stored eval, flattened: name -> (value, questions it is counted over)."""
    out: dict[str, tuple[float, int]] = {}
    for set_name, ev in results.items():
        for mode, run in ev["runs"].items():
            parts = [(f"{set_name}/{mode}", run["questions"], run)]
            parts += [(f"{set_name}/{mode}/{g}", r["questions"], r) for g, r in (run.get("groups") or {}).items()]
            for name, n, r in parts:
                for key in ("doc_recall", "page_recall"):
                    for k, v in (r.get(key) or {}).items():
                        out[f"{name} {key}@{k}"] = (v, n)
                for key, n_key in (("mrr", None), ("page_mrr", "page_questions")):
                    if r.get(key) is not None:
                        out[f"{name} {key}"] = (r[key], r[n_key] if n_key else n)
    return out


@pytest.mark.slow
@pytest.mark.needs_eval
def test_eval_figures_are_what_kb_measures_today(tmp_path: Path) -> None:
    """Ingest the 20 filings (~100 s on 2 cores), evaluate twice, compare with the stored figures."""
    stored = readme.load_results()["eval"]
    first = readme.measure_eval(ingest_into=tmp_path / "sec10q")
    again = readme.measure_eval(tmp_path / "sec10q")
    # the index is the same whatever the CPU: same documents, pages, chunks, model, backend, settings
    same_index = {k: v for k, v in first["index"].items() if k != "kb_version"}
    assert same_index == {k: v for k, v in stored["index"].items() if k != "kb_version"}, (
        "the index is built differently now: re-run `python -m benchmarks.readme`")
    # on one machine, one index: the same figures to the last digit
    assert _figures(again["results"]) == _figures(first["results"])
    here, there = first["machine"], stored["machine"]
    same_cpu = (all(here[k] == there[k] for k in ("cpu", "cpu_flags", "cores"))
                and first["versions"]["onnxruntime"] == stored["versions"]["onnxruntime"])
    tolerance = 0 if same_cpu else TOLERANCE_OTHER_CPU
    now, then = _figures(first["results"]), _figures(stored["results"])
    assert now.keys() == then.keys()
    off = {name: (then[name][0], v) for name, (v, n) in now.items()
           if abs(v - then[name][0]) > tolerance / n + 1e-4}  # stored figures have 4 decimals
    assert not off, (f"figures moved by more than {tolerance} question(s) since {stored['date']} "
                     f"({there['cpu']}, {there['cpu_flags']}): re-run `python -m benchmarks.readme`; "
                     f"(stored, now): {off}")
