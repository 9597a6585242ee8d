"""`--model hf:ORG/REPO/FILE.gguf` against a loopback stand-in of the Hugging Face Hub (HF_ENDPOINT): the
file lands in the models folder, a second use asks nothing of the network, an interrupted download
goes on where it stopped in the next run, and a download that does not match the hub's sha256 fails
in one line and is not kept."""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kb.config import Settings
from kb.errors import ConfigError
from kb.llm import create_llm, default_llm
from kb.llm.base import LLMError
from kb.llm.hub import fetch, local_model
from tests.helpers import FAKE, free_port, write_markdown

DOWNLOAD_CHUNK_SIZE = pytest.importorskip("huggingface_hub.constants").DOWNLOAD_CHUNK_SIZE

REPO_ID = "acme/tiny-GGUF"
FILENAME = "tiny-q4_k_m.gguf"
SPEC = f"hf:{REPO_ID}/{FILENAME}"
# three of the hub client's reads (it writes what it has read in whole reads of DOWNLOAD_CHUNK_SIZE, 10 MB)
CONTENT = b"GGUF" + bytes(range(256)) * (3 * DOWNLOAD_CHUNK_SIZE // 256)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    """What the stand-in serves and what it was asked."""

    url: str
    content: bytes = CONTENT
    sha256: str = hashlib.sha256(CONTENT).hexdigest()
    get_mode: str = "ok"  # ok | cut (half the body, then the connection drops; later GETs: 503) | down (503)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _known(self) -> bool:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            if self.path != f"/{REPO_ID}/resolve/main/{FILENAME}":
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if self.path.startswith(f"/{REPO_ID}/")
                                 else "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False
            return True

        def _headers(self, status: int, length: int) -> None:
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hub.sha256}"')  # an LFS file's ETag is its sha256
            self.send_header("X-Linked-Etag", f'"{hub.sha256}"')
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")

        def do_HEAD(self) -> None:  # http.server's name
            if self._known():
                self._headers(200, len(hub.content))
                self.end_headers()

        def do_GET(self) -> None:
            if not self._known():
                return
            if hub.get_mode == "down":
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if asked:
                start = int(asked.group(1))
                self._headers(206, len(hub.content) - start)
                self.send_header("Content-Range", f"bytes {start}-{len(hub.content) - 1}/{len(hub.content)}")
            else:
                self._headers(200, len(hub.content))
            self.end_headers()
            body = hub.content[start:]
            if hub.get_mode == "cut":
                hub.get_mode = "down"  # the network stays down for the rest of this run
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in := Hub("")))
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_the_file_lands_in_the_models_folder_and_a_second_use_asks_no_network(
        hub: Hub, models: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_POSITION", "-1")  # the hub client's bar, shown on a terminal only, shown here too
    # A test before may have loaded a transformers model, which turns the hub's bars off for its process.
    bars = importlib.import_module("huggingface_hub.utils.tqdm")  # the module: the package's `tqdm` is the class
    monkeypatch.setattr(bars, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    monkeypatch.setattr(bars, "progress_bar_states", {"_global": True})
    path = Path(local_model(SPEC, models))
    assert path == models / REPO_ID / FILENAME and path.read_bytes() == CONTENT
    assert [r[0] for r in hub.requests] == ["HEAD", "GET"]
    assert f"downloading {SPEC} (31.5 MB) into {models / REPO_ID}" in caplog.text
    assert "100%" in capfd.readouterr().err
    assert not list(path.parent.glob(".*.part"))  # nothing left half-done

    hub.requests.clear()
    hub.get_mode = "down"
    assert Path(local_model(SPEC, models)) == path
    assert hub.requests == []  # the file there is used as it is


def test_an_interrupted_download_goes_on_where_it_stopped(hub: Hub, models: Path) -> None:
    hub.get_mode = "cut"
    with pytest.raises(LLMError, match="run it again to go on where it stopped") as failed:
        fetch(SPEC, models)
    assert "\n" not in str(failed.value)
    parts = list((models / REPO_ID).glob(f".{FILENAME}.*.part"))
    assert len(parts) == 1 and 0 < (kept := parts[0].stat().st_size) < len(CONTENT)
    assert not (models / REPO_ID / FILENAME).exists()

    hub.requests.clear()
    hub.get_mode = "ok"
    path = fetch(SPEC, models)
    assert path.read_bytes() == CONTENT
    assert ("GET", f"/{REPO_ID}/resolve/main/{FILENAME}", f"bytes={kept}-") in hub.requests  # only the rest
    assert not parts[0].exists()


def test_a_download_that_does_not_match_the_hubs_checksum_fails_in_one_line_and_is_not_kept(
        hub: Hub, models: Path) -> None:
    hub.sha256 = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(LLMError) as failed:
        fetch(SPEC, models)
    message = str(failed.value)
    assert "\n" not in message and SPEC in message and "does not match the hub's checksum" in message
    assert hub.sha256[:12] in message
    assert not (models / REPO_ID / FILENAME).exists()
    assert not list((models / REPO_ID).glob(f".{FILENAME}.*.part"))  # the next run downloads it anew


def test_kb_ask_with_a_corrupt_download_answers_from_the_passages_and_says_why(
        hub: Hub, models: Path, tmp_path: Path) -> None:
    from kb import KnowledgeBase

    hub.sha256 = hashlib.sha256(b"another file").hexdigest()
    write_markdown(tmp_path / "docs" / "runbook.md")
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE, llm_model=SPEC, models_dir=str(models)) as kb:
        kb.ingest([str(tmp_path / "docs")])
        answer = kb.ask("Who do I page when the payment gateway returns error 5031?")
    assert answer.llm_error and "does not match the hub's checksum" in answer.llm_error
    assert "\n" not in answer.llm_error


def test_the_settings_route_hf_models_to_llama_cpp_and_the_models_folder(hub: Hub, models: Path) -> None:
    settings = Settings.load(None, {"llm_model": SPEC, "models_dir": str(models), "llm_server": "false"})
    with pytest.raises(LLMError, match="exited"):  # downloaded, then handed to a server that exits at once
        default_llm(settings)
    assert (models / REPO_ID / FILENAME).read_bytes() == CONTENT
    with pytest.raises(ConfigError, match="run by llama-cpp"):
        create_llm("ollama", model=SPEC, models_dir=models)


def test_a_spec_that_names_no_gguf_file_is_a_usage_error_naming_the_form(models: Path) -> None:
    for spec in ("hf:acme/tiny-GGUF", "hf:acme/tiny-GGUF/README.md", "hf:acme/../x.gguf"):
        with pytest.raises(ConfigError, match="hf:ORG/REPO/FILE.gguf"):
            fetch(spec, models)


def test_a_missing_repository_or_file_is_named(hub: Hub, models: Path) -> None:
    with pytest.raises(ConfigError, match="has no file other.gguf"):
        fetch(f"hf:{REPO_ID}/other.gguf", models)
    with pytest.raises(ConfigError, match="the repository nobody/nothing is not on the hub"):
        fetch("hf:nobody/nothing/x.gguf", models)


def test_no_hub_to_reach_is_one_line_quickly(monkeypatch: pytest.MonkeyPatch, models: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    with pytest.raises(LLMError, match=f"cannot download {SPEC}") as failed:
        fetch(SPEC, models)
    assert "\n" not in str(failed.value)


def test_kb_models_shows_an_hf_model_to_download_then_the_file_downloaded(
        hub: Hub, models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from kb.cli import main

    monkeypatch.setenv("KB_MODELS_DIR", str(models))
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")

    def chosen() -> dict[str, Any]:
        result = CliRunner().invoke(main, ["models", "--json", "--model", SPEC], catch_exceptions=False)
        return next(m for m in json.loads(result.stdout)["models"] if m["chosen"])

    before = chosen()
    assert before["note"] == "not downloaded yet: the first kb ask downloads it" and before["bytes"] is None
    assert hub.requests == []  # kb models downloads nothing
    fetch(SPEC, models)
    after = chosen()
    assert (after["name"], after["bytes"], after["note"]) == (f"{REPO_ID}/{FILENAME}", len(CONTENT), None)
