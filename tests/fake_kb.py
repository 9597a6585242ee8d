"""`python -m tests.fake_kb ARGS...`: the real `kb` command with `FakeEmbedder` registered, so that
crash tests can start many real processes without loading a model (set KB_BACKEND=fake,
KB_MODEL=fake-hash)."""

from __future__ import annotations

import tests.helpers  # noqa: F401  (registers the "fake" embedding backend)
from kb.cli import main

if __name__ == "__main__":
    main()
