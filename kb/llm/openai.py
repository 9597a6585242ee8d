"""openai backend: any OpenAI-compatible server (Ollama's /v1, vLLM, llama.cpp server,
llama_cpp.server, LM Studio) over plain HTTP with server-sent-event streaming (httpx)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import httpx

from kb.errors import ConfigError
from kb.llm.base import (
    LLM,
    ContextOverflowError,
    GenerationOptions,
    LLMError,
    Prompt,
    cap_context,
    messages_to_text,
    overflow_limit,
)

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"  # Ollama
DEFAULT_CONTEXT = 4096  # what Ollama serves unless told otherwise; set llm_context for more
CONTEXT_CAP = 8192
CHARS_PER_TOKEN = 3.0  # when the server cannot count: English runs ~4 chars a token, figures ~3


class OpenAILLM(LLM):
    backend = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 context_window: int = 0, timeout: float = 300.0, seed: int | None = None, **_: Any):
        self._httpx = httpx
        # Sent with every request: a server that seeds its sampler from the last request's (llama-cpp-python)
        # otherwise samples a prompt differently by how many it answered before.
        self.seed = seed
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"llm_base_url must be an http(s) URL, got {self.base_url!r}")
        # The server root, for the non-OpenAI extras (llama.cpp /props and /tokenize, Ollama /api/show).
        self.root = f"{parts.scheme}://{parts.netloc}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # A server on this machine is reached directly, whatever HTTP(S)_PROXY says (corporate proxies).
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=5.0), trust_env=not loopback)
        self._configured_context = context_window
        self._tokenizer_route: str | None = "?"  # found on first count
        self.model_name = model or self._first_model()

    # --- what the server says about itself ----------------------------------------------------
    def _get(self, url: str) -> Any:
        try:
            r = self._client.get(url, timeout=5.0)
        except self._httpx.HTTPError as e:
            raise LLMError(f"cannot reach the LLM server at {self.base_url}: {e}") from e
        if r.status_code >= 400:
            raise LLMError(f"{url}: HTTP {r.status_code}: {r.text[:200]}")
        return r.json()

    @cached_property
    def _models(self) -> list[dict[str, Any]]:
        data = self._get(self.base_url + "/models")
        return [m for m in data.get("data", []) if isinstance(m, dict)]

    def _first_model(self) -> str:
        ids = [m.get("id") for m in self._models if m.get("id")]
        if not ids:
            raise LLMError(f"the LLM server at {self.base_url} serves no model: pull or load one first")
        return str(ids[0])

    @cached_property
    def _server_context(self) -> int | None:
        """The context the server runs with, when it says (llama.cpp /props, vLLM, LM Studio)."""
        try:
            props = self._client.get(self.root + "/props", timeout=2.0)
            if props.status_code == 200:
                body = props.json()
                n = (body.get("default_generation_settings") or {}).get("n_ctx") or body.get("n_ctx")
                if n:
                    return int(n)
        except (self._httpx.HTTPError, ValueError):
            pass
        try:
            models = self._models
        except LLMError:
            return None
        for m in models:
            if m.get("id") != self.model_name:
                continue
            for key in ("max_model_len", "context_length", "max_context_length", "n_ctx"):
                if isinstance(m.get(key), int):
                    return int(m[key])
            meta = m.get("meta") or {}
            if isinstance(meta.get("n_ctx"), int):
                return int(meta["n_ctx"])
        return None

    @property
    def context_window(self) -> int:
        if self._configured_context > 0:
            return self._configured_context
        return cap_context(self._server_context or DEFAULT_CONTEXT, CONTEXT_CAP)

    def learn_context_window(self, n: int) -> bool:
        """The server refused a prompt and named its limit: believe it from now on."""
        self._configured_context = n
        return True

    # --- tokens ----------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        if self._tokenizer_route == "?":
            self._tokenizer_route = self._find_tokenizer(text)
        if self._tokenizer_route:
            n = self._remote_count(self._tokenizer_route, text)
            if n is not None:
                return n
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def _find_tokenizer(self, sample: str) -> str | None:
        for route in (self.root + "/extras/tokenize/count", self.root + "/tokenize"):
            if self._remote_count(route, sample) is not None:
                return route
        return None

    def _remote_count(self, route: str, text: str) -> int | None:
        # llama_cpp.server: {"input"} -> {"count"}; llama.cpp server: {"content"} -> {"tokens"};
        # vLLM: {"model", "prompt"} -> {"count"}.
        body = {"input": text, "content": text, "prompt": text, "model": self.model_name, "add_special": False}
        try:
            r = self._client.post(route, json=body, timeout=5.0)
            if r.status_code != 200:
                return None
            data = r.json()
        except (self._httpx.HTTPError, ValueError):
            return None
        if isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        return None

    # --- generation ------------------------------------------------------------------------------
    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        body: dict[str, Any] = {"model": self.model_name, "stream": True, "max_tokens": options.max_tokens}
        for key in ("temperature", "top_p", "top_k"):  # top_k: not OpenAI's, but every local server takes it
            value = getattr(options, key)
            if value is not None:
                body[key] = value
        if options.stop:
            body["stop"] = list(options.stop)
        if self.seed is not None:
            body["seed"] = self.seed
        if isinstance(prompt, str):
            url, body["prompt"] = self.base_url + "/completions", messages_to_text(prompt)
        else:
            url, body["messages"] = self.base_url + "/chat/completions", list(prompt)
        httpx = self._httpx
        done = produced = False
        try:
            with self._client.stream("POST", url, json=body) as r:
                if r.status_code >= 400:
                    self._fail(r.status_code, r.read().decode("utf-8", "replace"))
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        continue
                    if event.get("error"):
                        self._fail(500, json.dumps(event["error"]))
                    choices = event.get("choices") or [{}]
                    piece = (choices[0].get("delta") or {}).get("content") if "messages" in body else choices[0].get("text")
                    if piece:
                        produced = True
                        yield piece
            if not done and not produced:
                # Some servers (llama_cpp.server) fail inside a stream they already answered 200 to,
                # and just close it; asked again without streaming they say why (e.g. prompt too long).
                yield from self._once(url, {**body, "stream": False})
        except httpx.ConnectError as e:
            hint = " (is `ollama serve` running?)" if self.base_url.startswith("http://127.0.0.1:11434") else ""
            raise LLMError(f"cannot reach the LLM server at {self.base_url}{hint}: {e}") from e
        except httpx.TimeoutException as e:
            raise LLMError(f"the LLM server at {self.base_url} timed out: {e}") from e
        except httpx.HTTPError as e:
            raise LLMError(f"LLM server error at {self.base_url}: {e}") from e

    def _once(self, url: str, body: dict[str, Any]) -> Iterator[str]:
        # A fresh connection: the pooled one may be the one the server just dropped.
        r = self._httpx.post(url, json=body, headers=dict(self._client.headers), timeout=self._client.timeout,
                             trust_env=self._client.trust_env)
        if r.status_code >= 400:
            self._fail(r.status_code, r.text)
        choice = (r.json().get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") if "messages" in body else choice.get("text")
        if text:
            yield text

    def _fail(self, status: int, text: str) -> None:
        message = text
        try:
            err = json.loads(text).get("error", text)
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            pass
        limit = overflow_limit(message)
        if limit is not None or "context" in message.lower() and "exceed" in message.lower():
            raise ContextOverflowError(f"the prompt is too long for the server: {message[:300]}", limit)
        raise LLMError(f"LLM server at {self.base_url} answered HTTP {status}: {' '.join(message.split())[:300]}")

    def close(self) -> None:
        self._client.close()
