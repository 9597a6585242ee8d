"""`kb models`: the GGUF files of the models folder (with their sizes), the packaged Gemma, an Ollama
server's and an OpenAI-compatible server's models (tiny HTTP servers on 127.0.0.1), which one
`kb ask` takes, and servers that do not answer named with why, quickly."""

from __future__ import annotations

import json
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kb.cli import main
from kb.config import Settings
from kb.llm import LLMError, choose_llm, create_llm
from tests.helpers import free_port

OLLAMA_TAGS = {"models": [
    {"name": "llama3.2:latest", "size": 2_019_393_189},
    {"name": "nomic-embed-text:latest", "size": 274_302_450},  # an embedding model: never the answering one
    {"name": "qwen2.5:7b", "size": 4_683_087_332},
]}
OPENAI_MODELS = {"object": "list", "data": [{"id": "local-model", "object": "model"}, {"id": "second", "object": "model"}]}


class _Routes(BaseHTTPRequestHandler):
    routes: dict[str, Any] = {}

    def do_GET(self) -> None:
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(routes: dict[str, Any]) -> Iterator[str]:
    handler = type("Handler", (_Routes,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def ollama(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An Ollama-like server (`/api/tags`) that OLLAMA_HOST points to."""
    for address in _serve({"/api/tags": OLLAMA_TAGS}):
        monkeypatch.setenv("OLLAMA_HOST", address)
        yield address


@pytest.fixture
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")  # nobody listens there


@pytest.fixture
def openai_server() -> Iterator[str]:
    """An OpenAI-compatible server's /v1 base URL (`/v1/models`)."""
    for address in _serve({"/v1/models": OPENAI_MODELS}):
        yield f"http://{address}/v1"


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder with two small fake GGUF files (one where an hf: download lands), a part of an
    unfinished download and a file of another type."""
    folder = tmp_path / "models"
    (folder / "Org" / "Repo").mkdir(parents=True)
    (folder / "small.gguf").write_bytes(b"GGUF" + b"\0" * 1_500)
    (folder / "Org" / "Repo" / "tiny-q4.gguf").write_bytes(b"GGUF" + b"\0" * 2_500_000)
    (folder / "Org" / "Repo" / ".big.gguf.0123456789abcdef.part").write_bytes(b"GGUF")
    (folder / "README.md").write_text("not a model")
    monkeypatch.setenv("KB_MODELS_DIR", str(folder))
    return folder


def run_kb(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def models_json(*args: str) -> dict[str, Any]:
    result = run_kb("models", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(listed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in listed["models"]}


@pytest.mark.usefixtures("ollama")
def test_lists_the_folder_the_packaged_gemma_and_the_servers_and_marks_what_auto_takes(
        models_dir: Path, openai_server: str) -> None:
    listed = models_json("--base-url", openai_server, "--model", "local-model")
    models = by_name(listed)
    assert listed["models_dir"] == str(models_dir)
    assert models["small.gguf"]["bytes"] == 1_504 and models["small.gguf"]["llm"] == "llama-cpp"
    assert models["Org/Repo/tiny-q4.gguf"]["path"] == str(models_dir / "Org" / "Repo" / "tiny-q4.gguf")
    assert not any(".part" in name or name.endswith(".md") for name in models)
    assert models["gemma-3-270m"]["kind"] == "packaged" and models["gemma-3-270m"]["bytes"] > 100_000_000
    assert models["llama3.2:latest"]["bytes"] == 2_019_393_189 and models["llama3.2:latest"]["llm"] == "ollama"
    assert models["second"]["base_url"] == openai_server
    # the configured server and model, not Ollama's first
    assert [m["name"] for m in listed["models"] if m["chosen"]] == ["local-model"]
    assert listed["chosen"]["backend"] == "openai" and listed["chosen"]["base_url"] == openai_server
    assert {s["kind"]: (s["reachable"], s["models"]) for s in listed["servers"]} == {"ollama": (True, 3),
                                                                                      "openai": (True, 2)}


@pytest.mark.usefixtures("ollama", "models_dir")
def test_auto_without_a_configured_model_takes_ollamas_first_chat_model_as_kb_ask_does() -> None:
    listed = models_json()
    assert [m["name"] for m in listed["models"] if m["chosen"]] == ["llama3.2:latest"]
    assert "Ollama" in listed["chosen"]["reason"]
    # the one choosing code: what kb ask would load is what kb models marks
    choice = choose_llm(Settings.load(None))
    assert choice is not None and (choice.name, choice.model) == ("ollama", "llama3.2:latest")

    table = run_kb("models")
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if "llama3.2:latest" in line)
    assert row.startswith("*") and "2 GB" in row and "ollama" in row
    assert "* kb ask takes llama3.2:latest" in table.stdout


@pytest.mark.usefixtures("no_ollama")
def test_a_file_of_the_models_folder_is_chosen_by_its_name_and_found_there(models_dir: Path) -> None:
    listed = models_json("--model", "Org/Repo/tiny-q4.gguf")
    assert [m["name"] for m in listed["models"] if m["chosen"]] == ["Org/Repo/tiny-q4.gguf"]
    assert listed["chosen"]["backend"] == "llama-cpp"
    table = run_kb("models", "--model", "small.gguf").stdout
    assert next(line for line in table.splitlines() if "small.gguf" in line).startswith("*")
    assert "2 kB" in table  # its size, as people read it
    # kb ask's llama-cpp backend is given the folder's file: a stand-in server writes what it was told and exits
    told = models_dir.parent / "argv.txt"
    server = f"{shlex.quote(sys.executable)} -c 'import sys; open(sys.argv[1], \"w\").write(repr(sys.argv))' {told}"
    with pytest.raises(LLMError, match="exited"):
        create_llm("llama-cpp", model="small.gguf", models_dir=models_dir, server=server, timeout=10)
    assert repr(str(models_dir / "small.gguf")) in told.read_text()


@pytest.mark.usefixtures("no_ollama", "models_dir")
def test_llm_llama_cpp_without_a_model_takes_the_packaged_gemma() -> None:
    listed = models_json("--llm", "llama-cpp")
    assert [m["name"] for m in listed["models"] if m["chosen"]] == ["gemma-3-270m"]


@pytest.mark.usefixtures("no_ollama")
def test_servers_that_do_not_answer_are_named_with_why_quickly(models_dir: Path) -> None:
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    refused = f"http://127.0.0.1:{free_port()}/v1"
    try:
        t0 = time.monotonic()
        hung = models_json("--base-url", f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
        nobody = models_json("--base-url", refused)
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert elapsed < 8, elapsed  # 2 s each at most for the server, 0.3 s for Ollama's port
    servers = {s["kind"]: s for s in hung["servers"]}
    assert not servers["ollama"]["reachable"] and "refused" in servers["ollama"]["error"].lower()
    assert not servers["openai"]["reachable"] and "not answering within 2 s" in servers["openai"]["error"]
    assert "refused" in next(s for s in nobody["servers"] if s["kind"] == "openai")["error"].lower()
    # the folder's files are still listed; nothing is chosen for auto but the configured server
    assert {"small.gguf", "Org/Repo/tiny-q4.gguf"} <= set(by_name(nobody))

    table = run_kb("models", "--base-url", refused)
    assert table.exit_code == 0
    assert f"OpenAI-compatible server at {refused}: not reachable: Connection refused" in table.stdout
    assert "Ollama at http://127.0.0.1:" in table.stdout and "not reachable" in table.stdout


@pytest.mark.usefixtures("no_ollama")
def test_nothing_configured_and_no_server_means_the_passages_are_quoted(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_MODELS_DIR", str(tmp_path / "none-yet"))
    listed = models_json()
    assert listed["chosen"] is None and not any(m["chosen"] for m in listed["models"])
    assert "the answer quotes the passages" in run_kb("models").stdout


def test_an_unknown_llm_is_a_usage_error() -> None:
    result = run_kb("models", "--llm", "nonesuch", "--json")
    assert result.exit_code == 2
    assert "unknown LLM backend" in json.loads(result.stdout)["error"]
