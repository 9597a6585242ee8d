"""The README stays a short front page and the docs site (docs/, mkdocs.yml) builds with every link whole."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
MAIN_JOB = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && kb ingest ../shared/eval/sec-10q/docs"
            ' && kb search "Apple total net sales, quarter ended July 1, 2023"'
            ' && kb ask "What were Apple\'s total net sales for the quarter ended July 1, 2023?"')


def test_readme_is_short_with_the_two_commands_first() -> None:
    lines = README.splitlines()
    assert len(lines) <= 200
    head = lines[:40]
    assert MAIN_JOB in head and "bash .ci/run" in head
    # nothing measured (a date, a time, a size) before the test command
    before = "\n".join(lines[: lines.index("bash .ci/run")])
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b|\b\d+(?:\.\d+)? ?(?:s|min|MB|GB)\b", before), before


def test_readme_links_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    assert any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if not re.match(r"[a-z]+://", t) and not (REPO / t).exists()]
    assert not missing, missing


def test_every_figure_block_lives_on_a_docs_page() -> None:
    """`python -m benchmarks.readme` writes its blocks into pages the site shows (docs/ or an included file)."""
    from benchmarks import readme

    included = {m for page in (REPO / "docs").rglob("*.md")
                for m in re.findall(r'^--8<-- "([^"]+)"$', page.read_text(encoding="utf-8"), re.MULTILINE)}
    for file, _ in readme.BLOCKS:
        assert file.startswith("docs/") or file in included, file


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_site_builds_strict(tmp_path: Path) -> None:
    """A broken link, a missing anchor or a page left out of the nav fails the build (.ci/run builds it too)."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "benchmarks" / "retrieval" / "index.html").is_file()
