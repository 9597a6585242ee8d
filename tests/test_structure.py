"""The package's shape: imports run down the layers declared in pyproject.toml, never in a circle,
and the library carries no words of the corpora it is evaluated on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_imports_follow_the_layers() -> None:
    """import-linter's `layers` contract (pyproject.toml [tool.importlinter]): a module imports only
    the layers below its own, and siblings in a layer never import each other."""
    pytest.importorskip("importlinter")
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_no_import_cycles() -> None:
    """No strongly connected group of modules in kb's import graph, counting the imports made for type
    checking only and those inside functions."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("kb", exclude_type_checking_imports=False)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = [group for group in _strongly_connected(edges) if len(group) > 1]
    assert not cycles, cycles


def test_type_only_and_in_function_imports_count(tmp_path: Path) -> None:
    """The two checks above see an upward import hidden under `if TYPE_CHECKING:` or in a function body:
    a copy of the package with one such import added to a low module breaks the layers and makes a cycle."""
    pytest.importorskip("grimp")
    pytest.importorskip("importlinter")

    copy = tmp_path / "kb"
    shutil.copytree(REPO / "kb", copy, ignore=shutil.ignore_patterns("__pycache__", "models", "static"))
    lock = copy / "lock.py"
    lock.write_text(lock.read_text() + "\n\nif TYPE_CHECKING:\n    from kb.api import KnowledgeBase\n\n\n"
                    "def _opened() -> None:\n    from kb.index import open_index  # noqa: F401\n")
    lock.write_text(lock.read_text().replace("import fcntl\n", "import fcntl\nfrom typing import TYPE_CHECKING\n", 1))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    script = ("import grimp, kb, tests.test_structure as t; assert kb.__file__.startswith(%r); "
              "g = grimp.build_graph('kb', exclude_type_checking_imports=False, cache_dir=None); "
              "print(sorted(g.find_modules_directly_imported_by('kb.lock'))); "
              "print([c for c in t._strongly_connected({m: g.find_modules_directly_imported_by(m) for m in g.modules}) "
              "if len(c) > 1])") % str(tmp_path)
    found = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           check=True, env=env).stdout.splitlines()
    assert "'kb.api'" in found[0] and "'kb.index'" in found[0]  # the type-only and the in-function import
    assert "'kb.lock'" in found[1]  # ...make a cycle (kb.api imports kb.lock)
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--no-cache", str(REPO / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False, env=env)
    assert out.returncode != 0 and "kb.lock is not allowed to import kb.api" in out.stdout, out.stdout[-3000:]


def test_no_corpus_words_in_the_library() -> None:
    """The evaluation sets are SEC filings, accident reports and trial protocols; the library is
    for any folder, so none of their tell-tale words appear in its code (comments and docstrings
    may cite measurements on them)."""
    banned = re.compile(r"10-[QK]\b|\bAAPL\b|\bMSFT\b|\bNTSB\b|\bEDGAR\b", re.IGNORECASE)
    offenders = []
    for path in sorted((REPO / "kb").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if banned.search(code) and not _in_docstring(path, n):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_install_commands_work_from_a_checkout() -> None:
    """kb is installed from its checkout; "kb" on the public package index is another project, so no
    message or document may tell a user to `pip install kb` or `pip install "kb[extra]"`."""
    wrong = re.compile(r"""pip install\s+(?:-U\s+)?["']?kb(?:\[|["'\s)]|$)""")
    offenders = []
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "benchmarks").glob("*.md"))]
    for path in [*sorted((REPO / "kb").rglob("*.py")), *docs, *sorted((REPO / "examples").rglob("*.py"))]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if wrong.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _in_docstring(path: Path, line: int) -> bool:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            doc = body[0]
            if doc.lineno <= line <= (doc.end_lineno or doc.lineno):
                return True
    return False


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups
