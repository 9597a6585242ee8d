"""The llama.cpp build that llama-cpp-python brings, and its CPU kernels where they are picked at run time.

kb's install line builds llama.cpp with `GGML_BACKEND_DL` and `GGML_CPU_ALL_VARIANTS`: its CPU kernels
are a set of libraries, one per x86-64 generation (`libggml-cpu-haswell.so`, `-skylakex`, `-zen4`,
`-sapphirerapids`...), and the best one this CPU can run is loaded when the model server starts. One
build is then safe on any x86-64 CPU (no instruction the CPU lacks) and fast on each (AVX-512, VNNI,
BF16 where the CPU has them; not ggml's AMX kernels, see `UNSAFE`). llama-cpp-python does not load
them itself (its issue #2069): without `load_backends()`, such a build has no CPU backend and no
model loads.

A build with its kernels inside (plain pip's native build, the portable `-DGGML_NATIVE=OFF` one) has
no such libraries, and `load_backends()` does nothing.
"""

from __future__ import annotations

import _ctypes
import ctypes
import re
import threading
from functools import lru_cache
from pathlib import Path

from kb.errors import LLAMA_CMAKE_ARGS, DependencyError

VARIANT = "libggml-cpu-*.so"
# Left out: ggml's AMX matrix kernels, in its only variant with AMX, died with SIGILL (`tilezero`, in
# `ggml_backend_amx_mul_mat`) on a 2-vCPU Xeon VM whose CPU and kernel both report AMX (2026-12-07; the
# class: llama.cpp issue #28328). The next variant down keeps every AVX-512, VNNI and BF16 kernel.
UNSAFE = frozenset({"sapphirerapids"})
REBUILD = f'CMAKE_ARGS="{LLAMA_CMAKE_ARGS}" pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python'
_loading = threading.Lock()


def _package() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    return Path(spec.origin).parent if spec and spec.origin else None


def variants_dir() -> Path | None:
    """The folder holding a run-time dispatch build's CPU kernels, or None for a build with them inside.
    llama-cpp-python's wheel puts them in `bin/` beside the package (site-packages/bin), as CMake
    installs them; a build may also leave them in the package's `lib/`."""
    package = _package()
    if package is None:
        return None
    for folder in (package.parent / "bin", package / "lib"):
        if any(folder.glob(VARIANT)):
            return folder
    return None


@lru_cache(maxsize=1)
def _load(folder: str) -> str:
    package = _package()
    assert package is not None
    # the libggml that llama-cpp-python's libllama loaded (by its soname): a second copy of the library
    # (the wheel holds libggml.so and libggml.so.0 as two files) would keep its own list of backends
    for name in ("libggml.so.0", "libggml.so"):
        try:
            ggml = ctypes.CDLL(str(package / "lib" / name))
            load = ggml.ggml_backend_load
            break
        except (OSError, AttributeError):
            continue
    else:
        raise DependencyError(f"llama.cpp's CPU kernels in {folder} cannot be loaded: no libggml with "
                              f"ggml_backend_load in {package / 'lib'}; rebuild it: {REBUILD}")
    load.argtypes, load.restype = [ctypes.c_char_p], ctypes.c_void_p
    best = best_variant(Path(folder))
    if best is None or not load(str(best).encode()):
        raise DependencyError(f"none of llama.cpp's CPU kernels in {folder} loads on this CPU; rebuild it: {REBUILD}")
    for other in sorted(Path(folder).glob("libggml-*.so")):  # a GPU backend built beside them, if any
        if not other.match(VARIANT) and not other.name.startswith("libggml-base"):
            load(str(other).encode())
    return loaded_variant() or variant_name(best)


def variant_name(library: Path) -> str:
    return library.name.removeprefix("libggml-cpu-").removesuffix(".so")


def best_variant(folder: Path) -> Path | None:
    """The CPU kernel library of the highest score this CPU runs (each library's own
    `ggml_backend_score`, 0 for one it cannot run: ggml's own choice), leaving out `UNSAFE`."""
    best, top = None, 0
    for library in sorted(folder.glob(VARIANT)):
        if variant_name(library) in UNSAFE:
            continue
        try:
            handle = ctypes.CDLL(str(library))
            score = handle.ggml_backend_score
        except (OSError, AttributeError):
            continue
        score.restype = ctypes.c_int
        found = score()
        _ctypes.dlclose(handle._handle)  # unloaded again: /proc/self/maps names only the one in use
        if found > top:
            best, top = library, found
    return best


def load_backends() -> str | None:
    """Load the best CPU kernels for this CPU from a run-time dispatch build (once per process), before
    any model loads; their name ("zen4", "skylakex", "haswell", "x64"), or None for a build with its
    kernels inside (nothing to load). `DependencyError` where none loads."""
    folder = variants_dir()
    if folder is None:
        return None
    import llama_cpp  # noqa: F401  # lazy, heavy: its libllama loads the libggml whose backends are filled

    with _loading:
        return _load(str(folder))


def loaded_variant() -> str | None:
    """The CPU kernels this process loaded, by their library's name (Linux: from /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = re.search(r"libggml-cpu-([\w-]+)\.so", maps)
    return found.group(1) if found else None
