"""The child process that runs a GGUF model for the llama-cpp backend: llama-cpp-python's
OpenAI-compatible server, on loopback only, in a process of its own so that a native crash
(a build this CPU cannot run, a bad model file) ends this process and never kb.

    python -m kb.llm.llama_server --model FILE.gguf --port N [--n_ctx N] [--n_threads N] [--n_gpu_layers N]

It exits when its standard input closes: kb holds the other end, so the server ends with kb
however kb ends (a normal exit, Ctrl-C or kill -9).

Chat messages become the model's text through the GGUF's chat template, else its family's
(`kb.llm.chat_templates`), else kb's plain-text rendering; `POST /kb/prompt` shows that text.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Annotated, Any


def _exit_with_parent() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


PROMPT_ROUTE = "/kb/prompt"  # POST {"messages": [...]} -> {"prompt": the text the model reads, "template": its source}
CHAT_FORMAT = "kb"  # the name kb's chat handler is registered under in llama-cpp-python


class _Chat:
    """How this server turns chat messages into the model's text: the GGUF's own chat template, else its
    family's (`kb.llm.chat_templates`), else kb's plain-text rendering. Chosen from the loaded model's
    metadata on first use, so that the file is read once."""

    def __init__(self) -> None:
        self.formatter: Any = None
        self.template = ""  # where it came from, for a user: "the GGUF's own template", "kb's gemma template: ..."
        self._lock = threading.Lock()

    def choose(self, llama: Any) -> Any:
        """The formatter for `llama` (a `llama_cpp.Llama`), chosen once."""
        with self._lock:
            if self.formatter is None:
                self.formatter, self.template = _formatter(llama)
            return self.formatter

    def handler(self, *, llama: Any, **kwargs: Any) -> Any:
        """A llama-cpp-python chat completion handler that formats with `choose(llama)`."""
        # lazy: llama-cpp-python (the llm extra) is optional and heavy
        from llama_cpp.llama_chat_format import chat_formatter_to_chat_completion_handler

        return chat_formatter_to_chat_completion_handler(self.choose(llama))(llama=llama, **kwargs)

    def render(self, llama: Any, messages: list[dict[str, str]]) -> dict[str, str]:
        """The exact text the model reads for `messages`, and where its template came from."""
        return {"prompt": self.choose(llama)(messages=messages).prompt, "template": self.template}


def _formatter(llama: Any) -> tuple[Any, str]:
    # lazy: llama-cpp-python (the llm extra) is optional and heavy
    from llama_cpp.llama_chat_format import ChatFormatterResponse, Jinja2ChatFormatter

    from kb.llm.base import messages_to_text
    from kb.llm.chat_templates import choose

    metadata = llama.metadata
    own = metadata.get("tokenizer.chat_template")
    chosen = choose(metadata)

    def token(token_id: int) -> str:
        return llama.detokenize([token_id], special=True).decode("utf-8", "replace") if token_id >= 0 else ""

    def jinja(template: str) -> Any:
        eos = llama.token_eos()
        return Jinja2ChatFormatter(template=template, eos_token=token(eos), bos_token=token(llama.token_bos()),
                                   stop_token_ids=[eos] if eos >= 0 else None)

    if own:
        return jinja(own), "the GGUF's own template"
    if chosen is None:
        def plain(*, messages: list[dict[str, str]], **_: Any) -> Any:
            return ChatFormatterResponse(prompt=messages_to_text(messages))

        return plain, "plain text: the GGUF has no chat template, and kb knows none for its family"
    formatter, stops = jinja(chosen.jinja), list(chosen.stop)

    def family(*, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        response = formatter(messages=messages, **kwargs)
        given = [response.stop] if isinstance(response.stop, str) else list(response.stop or [])
        response.stop = given + [s for s in stops if s not in given]
        return response

    return family, f"kb's {chosen.family} template: the GGUF has none"


CHAT = _Chat()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kb.llm.llama_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--n_ctx", type=int, default=8192, help="context window in tokens")
    parser.add_argument("--n_threads", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument("--n_gpu_layers", type=int, default=-1, help="layers on the GPU (-1: all, when built for one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    threading.Thread(target=_exit_with_parent, name="kb-parent-watch", daemon=True).start()

    from kb.errors import KBError
    from kb.llm.llama_build import load_backends

    try:
        variant = load_backends()  # a run-time dispatch build: this CPU's best kernels, before the model loads
    except KBError as e:  # its reason as kb's last line, as for a model that cannot load
        print(e, file=sys.stderr, flush=True)
        os._exit(1)
    if variant is not None:
        print(f"kb: llama.cpp CPU kernels: {variant}", file=sys.stderr, flush=True)
    # lazy: llama-cpp-python (the llm extra) is optional and heavy
    import uvicorn
    from fastapi import Body, Depends
    from llama_cpp.llama_chat_format import LlamaChatCompletionHandlerRegistry
    from llama_cpp.server.app import create_app, get_llama_proxy
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(CHAT_FORMAT, CHAT.handler, overwrite=True)
    try:
        app = create_app(  # loads the model: a crash here is a crash at load
            server_settings=ServerSettings(host="127.0.0.1", port=args.port),
            # logits_all=False: the server's default keeps the logits of every prompt token (for logprobs,
            # which kb never asks): twice the prompt's reading time, and vocabulary x tokens floats of memory
            # (Gemma's 262k: 1 GB for a 1,000-token prompt).
            model_settings=[ModelSettings(model=args.model, n_ctx=args.n_ctx, n_threads=args.n_threads,
                                          n_gpu_layers=args.n_gpu_layers, seed=args.seed, verbose=False,
                                          chat_format=CHAT_FORMAT, logits_all=False)],
        )
    except Exception as e:  # llama.cpp could not read the file (ValueError): its reason, as kb's last line
        print(f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)
        # not sys.exit: Python's shutdown aborts (SIGABRT) while the parent watch blocks reading stdin,
        # and kb would take that for a build made for another CPU
        os._exit(1)

    async def prompt(messages: list[dict[str, str]], proxy: Any) -> dict[str, str]:
        """kb's extra: the text the model reads for `messages` (`kb ask --show-prompt`)."""
        return CHAT.render(proxy(None), messages)

    # FastAPI reads the annotations; given as objects, since the names imported here are not the
    # module's, where it would look up the strings that `from __future__ import annotations` makes.
    prompt.__annotations__ = {"messages": Annotated[list[dict[str, str]], Body(embed=True)],
                              "proxy": Annotated[Any, Depends(get_llama_proxy)], "return": dict[str, str]}
    app.post(PROMPT_ROUTE)(prompt)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
