"""Where a llama-cpp `--model` comes from besides a path: `hf:ORG/REPO/FILE.gguf`, a GGUF file of the
Hugging Face Hub downloaded once into kb's models folder and used from there on without the network;
or the name of a file in that folder (`local_model`).

huggingface_hub does the talking: the file's address (`HF_ENDPOINT`), the token (`HF_TOKEN`), its
metadata (commit, ETag, size, a CDN redirect) and the HTTP download with its progress bar, which
resumes by itself after a dropped connection within one call. What kb adds: the part downloaded is
kept across runs (`hf_hub_download` 1.x deletes it when a download fails, so an interrupted 4 GB
download would start over) and the next run asks only for the rest; the whole file is checked
against the hub's checksum (an LFS file's ETag is its sha256) before it takes the file's name, which
huggingface_hub does not do; two kb processes fetching one file wait for each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kb.errors import ConfigError, DependencyError, disk_full, install_command, is_disk_full, one_line, size
from kb.llm.base import LLMError

log = logging.getLogger(__name__)

PREFIX = "hf:"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")  # a small file kept in git: its ETag is the git blob's sha1
_BLOCK = 1 << 20  # bytes read at a time while hashing


def is_hub_spec(model: str | None) -> bool:
    return bool(model) and str(model).lower().startswith(PREFIX)


def local_model(model: str, folder: Path) -> str:
    """A llama-cpp `--model` as a file to load: `hf:ORG/REPO/FILE.gguf` downloaded into `folder` (once),
    a relative path that is not here but is in `folder` (`qwen.gguf`, `ORG/REPO/FILE.gguf`) that file;
    anything else as given."""
    if is_hub_spec(model):
        return str(fetch(model, folder))
    path = Path(model).expanduser()
    if not path.is_absolute() and not path.exists() and (folder / path).is_file():
        return str(folder / path)
    return model


@dataclass(frozen=True)
class HubFile:
    """`hf:ORG/REPO/FILE.gguf` read: the repository and the file's path in it."""

    repo: str
    filename: str

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.repo}/{self.filename}"

    def path(self, folder: Path) -> Path:
        """Where the file lives once downloaded: FOLDER/ORG/REPO/FILE."""
        return folder / self.repo / self.filename


def parse(spec: str) -> HubFile:
    """`hf:ORG/REPO/FILE.gguf` (FILE may sit in a folder of the repository), or `ConfigError` saying how
    to write it."""
    parts = spec[len(PREFIX):].strip().strip("/").split("/")
    if (len(parts) < 3 or not all(parts) or any(p in (".", "..") for p in parts)
            or not parts[-1].lower().endswith(".gguf")):
        raise ConfigError(f"{spec!r} does not name a GGUF file of the Hugging Face Hub: write hf:ORG/REPO/FILE.gguf, "
                          "e.g. hf:Qwen/Qwen2.5-3B-Instruct-GGUF/qwen2.5-3b-instruct-q4_k_m.gguf")
    return HubFile("/".join(parts[:2]), "/".join(parts[2:]))


def fetch(spec: str, folder: Path) -> Path:
    """The local path of the hub file `spec` in `folder`: there already (no network), or downloaded now,
    resuming a part that an earlier run left, and checked against the hub's checksum."""
    hub_file = parse(spec)
    target = hub_file.path(folder)
    if target.is_file():  # a file only takes this name once complete and checked
        return target
    try:
        import huggingface_hub  # noqa: F401  (lazy: only a first hf: model needs the hub's client)
    except ImportError:
        raise DependencyError(f"downloading {spec} needs huggingface_hub: {install_command('llm')}") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target):
            if target.is_file():  # another kb process fetched it while this one waited
                return target
            _download(hub_file, target)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full(target.parent, f"download {spec}") from e
        raise LLMError(f"cannot download {spec} into {target.parent}: {one_line(e)}") from e
    return target


def _download(hub_file: HubFile, target: Path) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    spec = hub_file.spec
    # read here, not when huggingface_hub was imported: kb's process may have imported it long before
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or None
    url = hf_hub_url(hub_file.repo, hub_file.filename, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint)
        if not meta.etag:
            raise LLMError(f"cannot download {spec}: the hub at {_host(url)} gives the file no ETag to check it by")
        part = target.with_name(f".{target.name}.{meta.etag[:16]}.part")
        for stale in target.parent.glob(f".{target.name}.*.part"):  # of a version the hub no longer serves
            if stale != part:
                stale.unlink(missing_ok=True)
        headers = build_hf_headers()
        if _host(meta.location) != _host(url):  # a CDN's signed URL: the token stays with the hub
            headers.pop("authorization", None)
        with part.open("ab") as out:
            done = out.tell()
            if meta.size is not None and done > meta.size:  # not a part of this file: start over
                out.truncate(0)
                done = 0
            log.warning("kb: downloading %s%s into %s%s", spec, f" ({size(meta.size)})" if meta.size else "",
                        target.parent, f", resuming at {size(done)}" if done else "")
            if meta.size is None or done < meta.size:
                http_get(meta.location, out, resume_size=done, headers=headers, expected_size=meta.size,
                         displayed_filename=target.name)
    except (GatedRepoError, RepositoryNotFoundError) as e:
        raise ConfigError(f"cannot download {spec}: the repository {hub_file.repo} is not on the hub at "
                          f"{_host(url)}, or it is private or gated (a token: HF_TOKEN)") from e
    except (EntryNotFoundError, RevisionNotFoundError) as e:
        raise ConfigError(f"cannot download {spec}: the repository {hub_file.repo} has no file "
                          f"{hub_file.filename}") from e
    except HfHubHTTPError as e:
        raise LLMError(f"cannot download {spec}: {_why(e)}; run it again to go on where it stopped") from e
    except OSError:
        raise
    except Exception as e:  # httpx's errors and huggingface_hub's own: the network failed, not kb
        raise LLMError(f"cannot download {spec}: {_why(e)}; run it again to go on where it stopped") from e
    _check(part, meta.etag, spec)
    os.replace(part, target)


def _check(path: Path, etag: str, spec: str) -> None:
    """`LLMError` (and the download deleted) unless `path` hashes to `etag`: an LFS file's sha256, or a
    git blob's sha1; an ETag that is neither is not a checksum, said once."""
    if _SHA256.fullmatch(etag):
        digest, algorithm = _hash(path, hashlib.sha256()), "sha256"
    elif _GIT_SHA1.fullmatch(etag):
        digest, algorithm = _hash(path, hashlib.sha1(f"blob {path.stat().st_size}\0".encode())), "git sha1"
    else:
        log.warning("kb: %s: the hub's ETag %s is no checksum: the download is not verified", spec, etag)
        return
    if digest != etag:
        path.unlink(missing_ok=True)
        raise LLMError(f"the download of {spec} does not match the hub's checksum ({algorithm} {digest[:12]}..., "
                       f"expected {etag[:12]}...): deleted it; run it again to download it anew")


def _hash(path: Path, h: Any) -> str:
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return str(h.hexdigest())


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Held while `target` is downloaded: a second kb process waits, then finds the file there."""
    fd = os.open(target.with_name(f".{target.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _why(e: BaseException) -> str:
    """A download's failure in a few words: the HTTP status and the server's first line, or the
    network's error."""
    response = getattr(e, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"HTTP {response.status_code} from {_host(str(response.request.url))}"
    return one_line(e, 160)
