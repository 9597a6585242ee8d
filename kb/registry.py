"""One registry per seam (parsers, embedders, vector stores, LLM backends), open to other packages.

An entry maps a name to an object or to "module:attribute", imported on first use, so `kb --help`
stays instant and an optional dependency loads only when its backend is chosen. Another package
adds entries through Python entry points in the seam's group, the way `llm` takes plugins:

    # pyproject.toml of a package "kb-srt"
    [project.entry-points."kb.parsers"]
    srt = "kb_srt:SrtParser"

Groups: `kb.parsers`, `kb.embedders`, `kb.stores`, `kb.llms`. A built-in name wins over a plugin
that claims it too (the plugin is skipped with a warning).
"""

from __future__ import annotations

import logging
import threading
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from kb.errors import ConfigError, MissingExtraError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """Names -> objects of one seam; `group` is the entry-point group other packages register in."""

    def __init__(self, group: str, kind: str, entries: dict[str, str | T] | None = None):
        self.group = group
        self.kind = kind  # what an entry is, for messages: "parser", "vector store"...
        self._entries: dict[str, str | T] = dict(entries or {})
        self._plugins_loaded = False
        self._guard = threading.Lock()
        # Raised by each change to the names (an entry registered or removed, the plugins found): what is
        # derived from the entries (the parsers' extension map) is rebuilt when it moves.
        self.changes = 0

    def register(self, name: str, target: str | T) -> None:
        """Add (or replace) an entry: an object, or "module:attribute" to import on first use."""
        with self._guard:
            self._entries[name.lower()] = target
            self.changes += 1

    def unregister(self, name: str) -> None:
        with self._guard:
            self._entries.pop(name.lower(), None)
            self.changes += 1

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        with self._guard:
            if self._plugins_loaded:
                return
            for ep in entry_points(group=self.group):
                name = ep.name.lower()
                if name in self._entries:
                    log.warning("kb: %s plugin %r (%s) ignored: the name is taken", self.kind, name, ep.value)
                    continue
                self._entries[name] = ep.value
            self._plugins_loaded = True
            self.changes += 1

    def names(self) -> list[str]:
        self._load_plugins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.names()

    def get(self, name: str) -> T:
        """The entry called `name`, imported if it was given as "module:attribute"."""
        self._load_plugins()
        key = name.strip().lower()
        try:
            target = self._entries[key]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries)})") from None
        if isinstance(target, str):
            target = self._import(key, target)
            with self._guard:
                self._entries[key] = target
        return target

    def _import(self, name: str, target: str) -> Any:
        module, _, attr = target.partition(":")
        try:
            obj: Any = import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except ImportError as e:
            # An optional dependency of a built-in backend says what to install; anything else is a
            # broken plugin, named as such.
            if isinstance(e, MissingExtraError):
                raise
            raise ConfigError(f"{self.kind} {name!r} ({target}) cannot be imported: {e}") from e
        except AttributeError as e:
            raise ConfigError(f"{self.kind} {name!r} ({target}) cannot be imported: {e}") from e
        return obj
