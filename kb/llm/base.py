"""The `LLM` seam: a prompt in, text out in pieces as it is generated. One backend per file.

A prompt is either plain text (completion) or a list of chat messages; a backend whose model
has a chat template renders messages with it, others flatten them with `messages_to_text`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, ClassVar, TypedDict, cast

from kb.errors import KBError

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
Prompt = str | Sequence[Message]

# Tokens a chat template adds around each message (role markers, turn delimiters), counted
# generously when a backend cannot render its template to count exactly.
MESSAGE_OVERHEAD = 8


class LLMError(KBError):
    """The language model could not load or run (server unreachable, bad model file, ...)."""


class ContextOverflowError(LLMError):
    """The backend refused the prompt as too long; `context_window` is the limit it reported."""

    def __init__(self, message: str, context_window: int | None = None):
        super().__init__(message)
        self.context_window = context_window


class OptionChanges(TypedDict, total=False):
    """Changes to `GenerationOptions`, by field (a None given anyway leaves the field as it is)."""

    temperature: float | None
    top_p: float | None
    top_k: int | None
    max_tokens: int
    num_beams: int | None
    stop: tuple[str, ...]


@dataclass(frozen=True)
class GenerationOptions:
    """Passed through to every backend; None leaves the backend's own default."""

    temperature: float | None = 0.1
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int = 512
    num_beams: int | None = None  # transformers only; beam search cannot stream
    stop: tuple[str, ...] = ()

    def update(self, **changes: Unpack[OptionChanges]) -> GenerationOptions:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown generation option(s): {', '.join(sorted(unknown))}")
        given = cast(OptionChanges, {k: v for k, v in changes.items() if v is not None})
        return replace(self, **given)


class Generation(TypedDict, total=False):
    """`GenerationOptions` as keyword arguments (`KnowledgeBase.ask(..., temperature=0.2)`)."""

    temperature: float | None
    top_p: float | None
    top_k: int | None
    max_tokens: int
    num_beams: int | None


@dataclass(frozen=True)
class RenderedPrompt:
    """What a model receives for a prompt (`LLM.render_prompt`)."""

    messages: list[Message] | None  # the chat messages sent (None: the prompt is plain text)
    text: str | None  # the exact text the model reads, its chat template applied, when kb can know it
    template: str | None = None  # where that template came from: "the GGUF's own template", "kb's gemma template: ..."

    def to_json(self) -> dict[str, object]:
        return {"messages": self.messages, "text": self.text, "template": self.template}


# What a status display says of a model (`LLM.state`): loaded and answering; being loaded; not
# running now (a server stopped after a crash: the next question starts it); could not be loaded.
MODEL_STATES = ("ready", "loading", "not loaded", "failed")


class LLM(ABC):
    """A language model that streams text. Subclasses implement `_stream` and `count_tokens`."""

    backend: ClassVar[str] = "?"
    # False for encoder-decoder models: the answer does not take room from the prompt.
    output_in_context: bool = True
    model_name: str = "?"

    @property
    @abstractmethod
    def context_window(self) -> int:
        """Tokens the model reads at once (prompt + answer for decoder-only models)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` with the model's own tokenizer (no BOS/EOS)."""

    @abstractmethod
    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        """Yield pieces of the answer as the model produces them."""

    def generate(
        self, prompt: Prompt, stream: bool = True, options: GenerationOptions | None = None,
        **changes: Unpack[OptionChanges],
    ) -> Iterator[str]:
        """The answer to `prompt`, piece by piece (`stream=True`) or as one piece."""
        opts = (options or GenerationOptions()).update(**changes)
        pieces = self._stream(prompt, opts)
        if stream:
            return pieces
        return iter(["".join(pieces)])

    def learn_context_window(self, n: int) -> bool:
        """The backend refused a prompt and named its limit `n`: use it from now on if this backend's
        window can change (a server's); returns whether it did, so the caller may fit the prompt again."""
        return False

    def count_prompt_tokens(self, prompt: Prompt) -> int:
        """Tokens `prompt` takes once rendered; backends that can render their template do better."""
        if isinstance(prompt, str):
            return self.count_tokens(prompt)
        return sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in prompt) + MESSAGE_OVERHEAD

    def render_prompt(self, prompt: Prompt) -> RenderedPrompt:
        """What the model receives for `prompt`: the exact text where this backend knows it. Here, the
        text of a plain-text prompt, and only the messages of a chat: a server applies its own template."""
        if isinstance(prompt, str):
            return RenderedPrompt(None, prompt)
        return RenderedPrompt(list(prompt), None)

    def state(self) -> tuple[str, str | None]:
        """(one of `MODEL_STATES`, why): a constructed model is ready unless its backend knows better."""
        return "ready", None

    @property
    def name(self) -> str:
        """`backend:model`, as reported in `kb ask --json` under "llm"."""
        return f"{self.backend}:{self.model_name}"

    def take_start_s(self) -> float | None:
        """Seconds spent starting the model (loading its weights, starting its server) since the last
        call, then 0.0; None when the backend cannot tell (a server kb does not run loads its model
        inside the first answer). `kb ask` reports it as `timing.model_start_s`."""
        return None

    def close(self) -> None:
        """Free what the backend holds (HTTP connections); models stay cached for reuse."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} context_window={self.context_window}>"


class Watched(LLM):
    """`llm`, calling `on_prompt` with what the model receives (`render_prompt`) before each prompt is
    sent: `kb ask --show-prompt`, or `kb.ask(question, llm=Watched(model, print))`."""

    def __init__(self, llm: LLM, on_prompt: Callable[[RenderedPrompt], None]):
        self.llm, self.on_prompt = llm, on_prompt
        self.model_name = llm.model_name
        self.output_in_context = llm.output_in_context

    @property
    def name(self) -> str:
        return self.llm.name

    @property
    def context_window(self) -> int:
        return self.llm.context_window

    def learn_context_window(self, n: int) -> bool:
        return self.llm.learn_context_window(n)

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def count_prompt_tokens(self, prompt: Prompt) -> int:
        return self.llm.count_prompt_tokens(prompt)

    def render_prompt(self, prompt: Prompt) -> RenderedPrompt:
        return self.llm.render_prompt(prompt)

    def state(self) -> tuple[str, str | None]:
        return self.llm.state()

    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        self.on_prompt(self.llm.render_prompt(prompt))
        yield from self.llm.generate(prompt, stream=True, options=options)


def messages_to_text(messages: Prompt) -> str:
    """A plain-text rendering of chat messages for models without a chat template."""
    if isinstance(messages, str):
        return messages
    parts: list[str] = []
    for m in messages:
        role = m.get("role", "user")
        if role == "system":
            parts.append(m["content"].strip())
        elif role == "assistant":
            parts.append(f"Answer: {m['content'].strip()}")
        else:
            parts.append(m["content"].strip())
    text = "\n\n".join(parts)
    if messages and messages[-1].get("role") != "assistant" and not re.search(r"Answer:\s*$", text):
        text += "\n\nAnswer:"
    return text + " "


_OVERFLOW = [
    re.compile(r"context window of (\d+)", re.IGNORECASE),  # llama-cpp-python, llama_cpp.server
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),  # vLLM, OpenAI
    re.compile(r"context (?:size|length)[^0-9]{0,40}(\d{3,7})", re.IGNORECASE),  # llama.cpp server, others
]


def overflow_limit(message: str) -> int | None:
    """The context size a backend's 'prompt too long' message states, if it is one."""
    lowered = message.lower()
    if not any(w in lowered for w in ("context", "too long", "exceed")):
        return None
    for pattern in _OVERFLOW:
        m = pattern.search(message)
        if m:
            return int(m.group(1))
    return None


def cap_context(n: int, cap: int) -> int:
    return max(256, min(n, cap)) if n > 0 else cap
