"""The ONNX Runtime backend of the `Embedder` seam: fp32 (`onnx`) or int8-quantized (`onnx-int8`).

The model is exported once (`kb.embed.onnx_export`, without torch for BERT models); then texts are
tokenized with `tokenizers`, run through ONNX Runtime, pooled as the model's own pooling config says,
L2-normalised. fp32: sorted by length into batches (little padding). int8: each text alone (its
activations quantized with a scale of its own, so a text always gets the same vector), the texts
spread over one single-threaded run per core: as fast as batches of 8 on two threads, and the same
vector bit for bit whatever the batch or the thread count (benchmarks/PERFORMANCE.md).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.embed.base import Embedder, canonical_model_id, resolve_model
from kb.embed.onnx_export import (
    EXPORT_VERSION,
    FP32_FILE,
    INT8_FILE,
    META_FILE,
    SLOW_FUSIONS,
    WEIGHTS_REF,
    cache_root,
    ensure_export,
    hold,
    pool,
)
from kb.embed.prompts import Prompts, read_prompts
from kb.errors import DependencyError, EmbedderError

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

_MAX_BATCH_TOKENS = 16384  # CPU: padded tokens per batch; long texts get smaller batches


class OnnxEmbedder(Embedder):
    """Sentence embeddings with ONNX Runtime; `quantize=True` runs the int8 graph."""

    thread_safe = True  # one InferenceSession serves concurrent runs; `tokenizers` encoders are shared freely

    def __init__(self, model: str, *, quantize: bool = True, batch_size: int = 0, threads: int = 0,
                 device: str = "cpu", cache_dir: str | os.PathLike[str] | None = None):
        self.model_id = canonical_model_id(model)
        self.name = model
        self.quantize = quantize
        self.backend = "onnx-int8" if quantize else "onnx"
        if (Path(resolve_model(model, int8=quantize)) / WEIGHTS_REF).is_file():
            # Built from int8 source weights: vectors within 0.99 cosine of the fp32 weights' graph, not
            # equal, so the index records which (an ingest into an index of the other kind says so).
            self.backend += "+w8"
        # int8: each kernel's rounding moves the quantized activations, so a newer graph's vectors differ a
        # little (0.996 cosine at worst from 1 to 2); fp32 ones only in the last bits
        self.graph = str(EXPORT_VERSION) if quantize else ""
        self.requested_batch_size = batch_size
        self.threads = threads
        self.requested_device = device
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "onnx"

    @classmethod
    def int8(cls, model: str, *, device: str = "cpu", batch_size: int = 0) -> OnnxEmbedder:
        """The `onnx-int8` backend."""
        return cls._checked(model, quantize=True, device=device, batch_size=batch_size)

    @classmethod
    def fp32(cls, model: str, *, device: str = "cpu", batch_size: int = 0) -> OnnxEmbedder:
        """The `onnx` backend."""
        return cls._checked(model, quantize=False, device=device, batch_size=batch_size)

    @classmethod
    def _checked(cls, model: str, **options: Any) -> OnnxEmbedder:
        try:
            # lazy: ONNX Runtime and onnx load with the model, not with kb (kb --help stays instant)
            import onnxruntime  # noqa: F401
        except ImportError as e:
            backend = "onnx-int8" if options.get("quantize") else "onnx"
            raise DependencyError(f"the {backend} backend needs onnxruntime: pip install onnxruntime") from e
        return cls(model, **options)

    # --- the model folder and its export ------------------------------------------------------
    @cached_property
    def location(self) -> str:  # type: ignore[override]  # read-only here: the export's folder
        where = resolve_model(self.name, int8=self.quantize)
        if Path(where).is_dir():
            return where
        try:  # a hub id: the local snapshot (downloaded once, as sentence-transformers would)
            # lazy: the torch extra is optional, and heavy
            from huggingface_hub import snapshot_download

            try:
                return snapshot_download(where, local_files_only=True)
            except Exception:
                return snapshot_download(where)
        except Exception as e:
            raise EmbedderError(f"cannot find embedding model {self.model_id!r}: {' '.join(str(e).split())[:300]}") from e

    def model_prompts(self) -> Prompts:
        prompts = read_prompts(Path(self.location), self.model_id)
        if prompts.any and not _pools_prompt(Path(self.location)):
            raise EmbedderError(f"{self.model_id} leaves its prompt out of pooling (include_prompt: false), which the "
                                "ONNX backends do not do: use --backend torch")
        return prompts

    @cached_property
    def export_dir(self) -> Path:
        """The cached export of this model (made now if missing), held for this embedder's life: a
        newer kb's cleaning of the cache (`kb.embed.onnx_export.prune`) leaves it alone meanwhile."""
        folder = ensure_export(self.location, self.model_id, self.cache_dir, fp32=not self.quantize)
        self._held = hold(folder)
        return folder

    @cached_property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.export_dir / META_FILE).read_text())

    @property
    def dimensions(self) -> int:
        return int(self.meta["dimensions"])

    @property
    def max_seq_length(self) -> int:
        return int(self.meta["max_seq_length"])

    @property
    def batch_size(self) -> int:  # type: ignore[override]  # read-only here: it follows the provider
        return self.requested_batch_size or (256 if self.providers[0] == "CUDAExecutionProvider" else 32)

    def tokenizer(self) -> Tokenizer:
        # lazy: the tokenizer loads with the model, not with kb (kb --help stays instant)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.export_dir / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return tok

    @cached_property
    def _encoder(self) -> Tokenizer:
        tok = self.tokenizer()
        tok.enable_truncation(self.max_seq_length)
        return tok

    @cached_property
    def providers(self) -> list[str]:
        # lazy: ONNX Runtime and onnx load with the model, not with kb (kb --help stays instant)
        import onnxruntime as ort

        available = ort.get_available_providers()
        if self.requested_device.startswith("cuda") and "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    @cached_property
    def session(self) -> Any:
        try:
            # lazy: ONNX Runtime and onnx load with the model, not with kb (kb --help stays instant)
            import onnxruntime as ort
        except ImportError as e:
            raise DependencyError("onnxruntime is not installed: pip install onnxruntime") from e
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # int8 runs one text per run, a run per core at once (`_runs`): each run takes one thread.
        opts.intra_op_num_threads = 1 if self.quantize else self.cores
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Spinning threads burn the cores that parser processes need while ingesting.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = self.export_dir / (INT8_FILE if self.quantize else FP32_FILE)
        try:
            return ort.InferenceSession(str(path), opts, providers=self.providers, disabled_optimizers=SLOW_FUSIONS)
        except Exception as e:
            raise EmbedderError(f"cannot load {path} (delete {self.export_dir} to export it again): "
                                f"{' '.join(str(e).split())[:300]}") from e

    @property
    def cores(self) -> int:
        """The threads embedding uses: the cores this process may run on, unless told otherwise."""
        return self.threads or _cpu_count()

    @cached_property
    def _runs(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.cores, thread_name_prefix="kb-embed")

    # --- embedding ------------------------------------------------------------------------------
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = self._encoder.encode_batch(texts)
        if self.quantize:
            # The int8 graph quantizes a run's activations with one scale for the whole run, so a text
            # batched with others came out up to 0.03 cosine away from itself alone (as a query is
            # embedded): each text runs alone, and the same text always gets the same vector. Runs
            # with one thread each, one per core, are the fastest way to do that (a 1-thread run of
            # 8 texts is slower than 8 runs of one).
            ids = [e.ids for e in encodings]
            out[:] = list(self._runs.map(self._alone, ids)) if len(ids) > 1 else [self._alone(ids[0])]
        else:
            self._batched(encodings, out)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _alone(self, ids: list[int]) -> np.ndarray:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        row = np.array([ids], dtype=np.int64)
        mask = np.ones_like(row)
        return pool(self._run(row, mask), mask, self.meta["pooling"])[0]

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        try:
            return self.session.run(None, feed)[0]
        except Exception as e:
            raise EmbedderError(f"ONNX Runtime failed on a batch: {' '.join(str(e).split())[:300]}") from e

    @cached_property
    def _inputs(self) -> set[str]:
        return set(self.meta["inputs"])  # the graph's inputs, as its export recorded them

    def _batched(self, encodings: list[Any], out: np.ndarray) -> None:
        """fp32: length-sorted batches of `batch_size` texts (fewer when long), into `out`'s rows."""
        for rows in self._batches(encodings):
            self._embed_rows(encodings, rows, out)

    def _batches(self, encodings: list[Any]) -> list[np.ndarray]:
        """The texts' indexes in length-sorted batches of `batch_size` (fewer when long), longest first:
        the biggest batch fails first."""
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        lengths = [len(e.ids) for e in encodings]
        order = np.argsort(-np.array(lengths, dtype=np.int64), kind="stable")
        batches, start = [], 0
        while start < len(order):
            size = max(1, min(self.batch_size, _MAX_BATCH_TOKENS // max(lengths[order[start]], 1)))
            batches.append(order[start : start + size])
            start += size
        return batches

    def _embed_rows(self, encodings: list[Any], rows: np.ndarray, out: np.ndarray) -> None:
        """One batch, the texts `rows` (longest first), padded to the longest, into `out`'s rows."""
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        longest = len(encodings[rows[0]].ids)
        ids = np.zeros((len(rows), longest), dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for r, i in enumerate(rows):
            n = len(encodings[i].ids)
            ids[r, :n] = encodings[i].ids
            mask[r, :n] = 1
        out[rows] = pool(self._run(ids, mask), mask, self.meta["pooling"])


def _pools_prompt(location: Path) -> bool:
    """Whether the model's Pooling module averages the prompt's tokens too (sentence-transformers'
    `include_prompt`, true but for INSTRUCTOR-style models)."""
    try:
        modules = json.loads((location / "modules.json").read_text())
        folder = next((m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Pooling")), "1_Pooling")
        return json.loads((location / folder / "config.json").read_text()).get("include_prompt", True) is not False
    except (OSError, ValueError, AttributeError, TypeError):
        return True


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1
