"""Third-party packages extend kb through entry points: examples/kb-plugin-srt, installed here with
pip into a folder of its own, adds a file format that `kb ingest`, `kb search --type` and citations use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "kb-plugin-srt"
SUBTITLES = """1
00:00:01,000 --> 00:00:04,000
Welcome to the lighthouse maintenance briefing.

2
00:00:04,500 --> 00:00:09,000
The lamp must be cleaned every Tuesday before sunset.

3
00:12:05,000 --> 00:12:09,000
Replace the fog horn diaphragm when it cracks.
"""


def kb_cli(*args: str, plugins: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    if plugins is not None:
        env["PYTHONPATH"] = str(plugins)
    return subprocess.run([str(Path(sys.executable).with_name("kb")), *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


@pytest.mark.slow
def test_an_installed_parser_plugin_adds_a_format(tmp_path: Path) -> None:
    target, source = tmp_path / "site", tmp_path / "plugin"
    shutil.copytree(PLUGIN, source)  # a build writes beside the sources: not into the repository
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(source)], capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stderr
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "briefing.srt").write_text(SUBTITLES, encoding="utf-8")
    (docs / "notes.md").write_text("# Notes\n\nThe keeper logs the weather at dawn.\n", encoding="utf-8")

    without = kb_cli("ingest", str(docs), "--kb", str(tmp_path / "plain"), "--json")
    report = json.loads(without.stdout)
    assert [s["reason"] for s in report["skipped"]] == ["unsupported file type .srt"]

    kb_dir = str(tmp_path / "kb")
    ingested = kb_cli("ingest", str(docs), "--kb", kb_dir, "--json", plugins=target)
    assert ingested.returncode == 0, ingested.stderr
    assert sorted(Path(p).name for p in json.loads(ingested.stdout)["added"]) == ["briefing.srt", "notes.md"]
    found = kb_cli("search", "fog horn diaphragm", "--kb", kb_dir, "--type", "srt", "--json", plugins=target)
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["hits"][0]
    assert top["source"].endswith("briefing.srt") and top["section"] == "00:12:05" and "diaphragm" in top["text"]
