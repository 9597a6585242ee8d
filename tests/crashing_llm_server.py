"""A stand-in for kb's llama.cpp server that really crashes, for the tests of what kb does then.

    python tests/crashing_llm_server.py --model FILE --port N [the llama_server options]

KB_TEST_CRASH (environment) says when it dies:
- `answer` (default): it serves /v1/models like a real server, then kills itself with SIGSEGV when
  asked to generate, as a llama.cpp built for another CPU does inside llama_decode;
- `load`: it kills itself with SIGSEGV before it listens, as a crash while loading the model does;
- `hang`: it never listens (at most 120 s), as a load that never ends.
KB_TEST_STARTS (environment), when set, names a file it appends a line to each time it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "crashing.gguf", "object": "model"}]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path.endswith(("/completions", "/chat/completions")):
            os.kill(os.getpid(), signal.SIGSEGV)
        self._json(404, {"error": "not found"})

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()
    if os.environ.get("KB_TEST_STARTS"):
        with open(os.environ["KB_TEST_STARTS"], "a") as f:
            f.write("started\n")
    crash = os.environ.get("KB_TEST_CRASH", "answer")
    if crash == "load":
        os.kill(os.getpid(), signal.SIGSEGV)
    if crash == "hang":
        time.sleep(120)
        return
    with ThreadingHTTPServer(("127.0.0.1", args.port), Handler) as server:
        server.timeout = 1.0
        deadline = time.monotonic() + 300  # bounded, whatever the test does
        while time.monotonic() < deadline:
            server.handle_request()


if __name__ == "__main__":
    main()
