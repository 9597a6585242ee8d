"""The child process that runs a GGUF model for the llama-cpp backend: llama-cpp-python's
OpenAI-compatible server, on loopback only, in a process of its own so that a native crash
(a build this CPU cannot run, a bad model file) ends this process and never kb.

    python -m kb.llm.llama_server --model FILE.gguf --port N [--n_ctx N] [--n_threads N] [--n_gpu_layers N]

It exits when its standard input closes: kb holds the other end, so the server ends with kb
however kb ends (a normal exit, Ctrl-C or kill -9).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading


def _exit_with_parent() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


# llama-cpp-python's chat formats for model families whose GGUF files often come without a chat
# template (it then formats every prompt as Llama-2's [INST], which these models echo back).
_FAMILY_FORMATS = {"gemma": "gemma", "qwen": "qwen"}


def chat_format(model: str) -> str | None:
    """None when the GGUF carries its own chat template (llama-cpp-python uses it); else its family's
    format, read from the file's architecture, when llama-cpp-python has one."""
    # lazy: llama-cpp-python (the llm extra) is optional and heavy
    from llama_cpp import Llama

    metadata = Llama(model_path=model, vocab_only=True, verbose=False).metadata
    if metadata.get("tokenizer.chat_template"):
        return None
    architecture = str(metadata.get("general.architecture", ""))
    return next((f for family, f in _FAMILY_FORMATS.items() if architecture.startswith(family)), None)


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

    # lazy: llama-cpp-python (the llm extra) is optional and heavy
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    app = create_app(  # loads the model: a crash here is a crash at load
        server_settings=ServerSettings(host="127.0.0.1", port=args.port),
        # logits_all=False: the server's default keeps the logits of every prompt token (for logprobs,
        # which kb never asks): twice the prompt's reading time, and vocabulary x tokens floats of memory
        # (Gemma's 262k: 1 GB for a 1,000-token prompt).
        model_settings=[ModelSettings(model=args.model, n_ctx=args.n_ctx, n_threads=args.n_threads,
                                      n_gpu_layers=args.n_gpu_layers, seed=args.seed, verbose=False,
                                      chat_format=chat_format(args.model), logits_all=False)],
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
