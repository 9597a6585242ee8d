"""The `kb` command: thin click wrappers over `kb.KnowledgeBase`."""

from kb.cli.main import main

__all__ = ["main"]
