"""The package's shape: imports run down the layers declared in pyproject.toml, never in a circle,
and the library carries no words of the corpora it is evaluated on."""

from __future__ import annotations

import re
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
    """No strongly connected group of modules in kb's import graph (TYPE_CHECKING imports aside)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("kb", exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = [group for group in _strongly_connected(edges) if len(group) > 1]
    assert not cycles, cycles


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
