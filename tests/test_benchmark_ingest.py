"""benchmarks/ingest.py: kb and both reference pipelines (LangChain's and LlamaIndex's defaults) build an index
in one run, get the same warm-up and alternating order, and a missing reference package stops the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.ingest import SIMD_FLAGS, Pipeline, orders
from tests.helpers import write_pdf

REPO = Path(__file__).resolve().parents[1]


def _bench(*args: str, pythonpath: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") or k == "KB_CACHE_DIR"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "benchmarks.ingest", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=timeout)


def _sample(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "pdfs"
    write_pdf(docs / "quokka.pdf", ["Quokka colony report.\nThe quokka colony on the island counts 412 animals.",
                                    "Warden notes.\nThe warden feeds them apples on Tuesdays."])
    write_pdf(docs / "turbine.pdf", ["Turbine maintenance log.\nThe wind turbine gearbox was replaced in March.",
                                     "Blade inspection.\nBlade three shows erosion on its leading edge.",
                                     "Costs.\nThe gearbox repair cost 18,000 euros."])
    questions = tmp_path / "questions.csv"
    questions.write_text("Question,Source Docs\n"
                         "How many animals does the quokka colony count?,quokka.pdf\n"
                         "When was the wind turbine gearbox replaced?,turbine.pdf\n")
    return docs, questions


@pytest.mark.slow
def test_all_three_pipelines_build_an_index_with_recall(tmp_path: Path) -> None:
    docs, questions = _sample(tmp_path)
    proc = _bench(str(docs), "--repeats", "1", "--json", "--questions", str(questions))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # nothing else on stdout, whatever the libraries print
    for key in ("kb", "reference", "llamaindex"):
        run = report[key]
        assert (run["files"], run["pages"], run["failed"]) == (2, 5, []), key
        assert run["chunks"] >= 2, key
        assert run["wall_s"] > 0 and run["walls"] == [run["wall_s"]] == [run["wall_s_min"]], key
        assert run["warm_up_s"] > 0 and run["warm_up_chunks"] >= 1 and run["peak_rss_mb"] > 0, key
        # Two plain questions over two documents: every index finds the right one first.
        assert run["recall"]["dense"] == {"doc_recall@1": 100.0, "doc_recall@5": 100.0, "doc_recall@10": 100.0}, key
    assert report["kb"]["recall"]["hybrid"]["doc_recall@1"] == 100.0
    for name, key in (("langchain", "reference"), ("llamaindex", "llamaindex")):
        assert report["speedups"][name] == pytest.approx(report[key]["wall_s"] / report["kb"]["wall_s"], rel=0.02)
    assert report["speedup"] == report["speedups"]["langchain"]
    # kb's default path, and kb with the references' fp32 model (torch), so the two parts of the ratio show apart
    assert report["orders"] == [["kb", "kb[torch]", "LangChain", "LlamaIndex"]] and report["repeats"] == 1
    assert report["kb_backends"]["kb[torch]"]["backend"] == "torch"
    assert report["kb_backends"]["kb[torch]"]["chunks"] == report["kb"]["chunks"]
    assert set(report["machine"]["flags"]) <= set(SIMD_FLAGS)


def test_a_missing_reference_package_stops_the_run_with_the_command_to_install_it(tmp_path: Path) -> None:
    docs, _ = _sample(tmp_path)
    hidden = tmp_path / "hidden"
    (hidden / "llama_index").mkdir(parents=True)  # shadows the installed package: importing it fails
    (hidden / "llama_index" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    proc = _bench(str(docs), "--repeats", "1", "--no-eval", pythonpath=hidden, timeout=120)
    assert proc.returncode == 1
    assert "the LlamaIndex reference needs llama_index.core" in proc.stderr
    assert "pip install --no-deps llama-index-readers-file" in proc.stderr
    assert "warm-up" not in proc.stderr  # stopped before timing anything


def test_the_order_alternates_across_repeats() -> None:
    kb, lc, li = (Pipeline(n, n, n, []) for n in ("kb", "LangChain", "LlamaIndex"))
    names = [[p.key for p in o] for o in orders([kb, lc, li], 3, reverse_first=False)]
    assert names == [["kb", "LangChain", "LlamaIndex"], ["LlamaIndex", "LangChain", "kb"], ["kb", "LangChain", "LlamaIndex"]]
    first = orders([kb, lc, li], 2, reverse_first=True)
    assert [p.key for p in first[0]] == ["LlamaIndex", "LangChain", "kb"] and first[1] == [kb, lc, li]
