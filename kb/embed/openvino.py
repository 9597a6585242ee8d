"""The OpenVINO backend of the `Embedder` seam (`openvino`, the `openvino` extra): the model's fp32 ONNX
graph (the `onnx` backend's export) run by OpenVINO in bf16 where the CPU has bf16 units (AMX, AVX-512
BF16), in fp32 elsewhere. On a Xeon with AMX it embeds 3.2x as fast as ONNX Runtime's fp32 and a little
faster than `onnx-int8`, with vectors within 0.9999 cosine of fp32's where int8's are within 0.98
(benchmarks/PERFORMANCE.md). Texts go in length-sorted batches, one batch per core at once, each on
one thread (as `onnx-int8` runs its texts): faster than one batch on every core.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kb.embed.onnx import OnnxEmbedder
from kb.embed.onnx_export import FP32_FILE, pool
from kb.errors import DependencyError, EmbedderError, install_command

if TYPE_CHECKING:
    import numpy as np

# Texts per batch: on AMX, batches of 8 run 20% faster than texts alone, and larger ones no faster
# (benchmarks/runtimes.py); a small batch also pads little once sorted by length.
_BATCH = 8


class OpenVinoEmbedder(OnnxEmbedder):
    """Sentence embeddings of the fp32 export, run by OpenVINO on the CPU."""

    def __init__(self, model: str, *, batch_size: int = 0, threads: int = 0,
                 cache_dir: str | os.PathLike[str] | None = None):
        super().__init__(model, quantize=False, batch_size=batch_size, threads=threads, device="cpu",
                         cache_dir=cache_dir)
        self.backend = "openvino" + self.backend.removeprefix("onnx")  # keeps "+w8": from int8 weights
        self._local = threading.local()  # each thread's infer request
        self._compiling = threading.Lock()
        self._compiled: Any = None

    @classmethod
    def create(cls, model: str, *, device: str = "cpu", batch_size: int = 0) -> OpenVinoEmbedder:
        """The `openvino` backend."""
        if device.strip().lower().startswith("cuda"):
            raise EmbedderError("the openvino backend runs on the CPU: leave --device out, or use --backend torch")
        try:
            # lazy: OpenVINO loads with the model, not with kb (kb --help stays instant)
            import openvino  # noqa: F401
        except ImportError as e:
            raise DependencyError(f"the openvino backend needs OpenVINO: {install_command('openvino')}") from e
        return cls(model, batch_size=batch_size)

    @property
    def batch_size(self) -> int:  # type: ignore[override]  # read-only here
        return self.requested_batch_size or _BATCH

    @cached_property
    def precision(self) -> str:
        """"bf16" where OpenVINO finds bf16 units on this CPU, else "f32"."""
        return "bf16" if "BF16" in self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"

    @cached_property
    def _core(self) -> Any:
        # lazy: OpenVINO loads with the model, not with kb (kb --help stays instant)
        import openvino as ov

        return ov.Core()

    @property
    def session(self) -> Any:
        """The compiled model: one stream per core, a thread each, so that batches run side by side."""
        if self._compiled is None:
            with self._compiling:
                if self._compiled is None:
                    self._compiled = self._compile()
        return self._compiled

    def _compile(self) -> Any:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        path = self.export_dir / FP32_FILE
        try:
            compiled = self._core.compile_model(str(path), "CPU", {
                "INFERENCE_PRECISION_HINT": self.precision, "NUM_STREAMS": self.cores,
                "INFERENCE_NUM_THREADS": self.cores, "ENABLE_CPU_PINNING": False,  # parsers share the cores
            })
            # One inference before any other: OpenVINO's Python binding sets up its tensor types on first
            # use, and two threads doing that at once deadlocked (one holding the GIL, one that setup).
            row = np.ones((1, 2), dtype=np.int64)
            names = {i.get_any_name() for i in compiled.inputs}
            np.array(compiled.create_infer_request().infer({name: row for name in names})[0], dtype=np.float32)
            return compiled
        except Exception as e:
            raise EmbedderError(f"OpenVINO cannot load {path} (delete {self.export_dir} to export it again): "
                                f"{' '.join(str(e).split())[:300]}") from e

    @cached_property
    def _inputs(self) -> set[str]:
        return {i.get_any_name() for i in self.session.inputs}

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        request = getattr(self._local, "request", None)
        if request is None:  # an infer request serves one thread at a time
            request = self._local.request = self.session.create_infer_request()
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        try:
            return np.array(request.infer(feed)[0], dtype=np.float32)
        except Exception as e:
            raise EmbedderError(f"OpenVINO failed on a batch: {' '.join(str(e).split())[:300]}") from e

    def _batched(self, encodings: list[Any], out: np.ndarray) -> None:
        """Length-sorted batches, each on a core of its own, into `out`'s rows."""
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        groups = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

        def run(rows: np.ndarray) -> None:
            longest = int(lengths[rows[0]])
            ids = np.zeros((len(rows), longest), dtype=np.int64)
            mask = np.zeros((len(rows), longest), dtype=np.int64)
            for r, i in enumerate(rows):
                n = int(lengths[i])
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            out[rows] = pool(self._run(ids, mask), mask, self.meta["pooling"])

        if len(groups) == 1:
            run(groups[0])
        else:
            list(self._runs.map(run, groups))
