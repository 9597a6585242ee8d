"""The OpenVINO backend of the `Embedder` seam (`openvino`, the `openvino` extra): the model's fp32 ONNX
graph (the `onnx` backend's export) run by OpenVINO on the CPU, in bf16 where the CPU has bf16 units
(AMX, AVX-512 BF16), in fp32 elsewhere. On a Xeon with AMX it embeds 3.3x as fast as ONNX Runtime's
fp32 and a little faster than `onnx-int8`, with vectors within 0.9999 cosine of the `onnx` backend's
(one vector format: `kb.embed.same_format`) where int8's are within 0.98 (benchmarks/PERFORMANCE.md).
Texts go in length-sorted batches, one batch per core at once, each on one thread (as `onnx-int8`
runs its texts): faster than one batch on every core.
"""

from __future__ import annotations

import os
import queue
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kb.embed.onnx import OnnxEmbedder
from kb.embed.onnx_export import FP32_FILE
from kb.errors import DependencyError, EmbedderError, install_command

if TYPE_CHECKING:
    import numpy as np

# Texts per batch: on AMX, batches of 8 run 20% faster than texts alone, and larger ones no faster
# (benchmarks/runtimes.py); a small batch also pads little once sorted by length.
_BATCH = 8
# OpenVINO's Python binding sets up its tensor types on a process's first inference; two threads doing
# that at once deadlocked (one holding the GIL, the other that setup). The first one runs alone.
_FIRST = threading.Lock()
_warm = False


class OpenVinoEmbedder(OnnxEmbedder):
    """Sentence embeddings of the fp32 export, run by OpenVINO on the CPU."""

    def __init__(self, model: str, *, batch_size: int = 0, threads: int = 0,
                 cache_dir: str | os.PathLike[str] | None = None):
        super().__init__(model, quantize=False, batch_size=batch_size, threads=threads, device="cpu",
                         cache_dir=cache_dir)
        self.backend = "openvino" + self.backend.removeprefix("onnx")  # keeps "+w8": from int8 weights
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()  # infer requests: one per run at once
        self._compiling = threading.Lock()
        self._compiled: Any = None

    @classmethod
    def create(cls, model: str, *, device: str = "cpu", batch_size: int = 0) -> OpenVinoEmbedder:
        """The `openvino` backend: on the CPU whatever `device` says (as `onnx` without a CUDA build),
        so that an index of its vectors reads on a machine with a GPU too."""
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

        global _warm
        path = self.export_dir / FP32_FILE
        try:
            compiled = self._core.compile_model(str(path), "CPU", {
                "INFERENCE_PRECISION_HINT": self.precision, "NUM_STREAMS": self.cores,
                "INFERENCE_NUM_THREADS": self.cores, "ENABLE_CPU_PINNING": False,  # parsers share the cores
            })
            with _FIRST:
                if not _warm:
                    row = np.ones((1, 2), dtype=np.int64)
                    request = compiled.create_infer_request()
                    np.array(request.infer({name: row for name in self._inputs})[0], dtype=np.float32)
                    _warm = True
            return compiled
        except Exception as e:
            raise EmbedderError(f"OpenVINO cannot load {path} (delete {self.export_dir} to export it again): "
                                f"{' '.join(str(e).split())[:300]}") from e

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        try:  # an infer request serves one run at a time: as many are made as runs ever ran at once
            request = self._idle.get_nowait()
        except queue.Empty:
            request = None
        try:
            request = request or self.session.create_infer_request()
            return np.array(request.infer(feed)[0], dtype=np.float32)
        except Exception as e:
            raise EmbedderError(f"OpenVINO failed on a batch: {' '.join(str(e).split())[:300]}") from e
        finally:
            if request is not None:
                self._idle.put(request)

    def _batched(self, encodings: list[Any], out: np.ndarray) -> None:
        """Length-sorted batches, each on a core of its own, into `out`'s rows."""
        batches = self._batches(encodings)
        if len(batches) == 1:
            self._embed_rows(encodings, batches[0], out)
        else:
            list(self._runs.map(lambda rows: self._embed_rows(encodings, rows, out), batches))
