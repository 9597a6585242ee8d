"""The ONNX Runtime backend of the `Reranker` seam: a cross-encoder (a BERT-family model for sequence
classification, one label) scored without torch.

The graph is the model folder's own `onnx/model.onnx` when it has one (many Hub cross-encoders do),
else exported once with torch and cached beside the embedding models' exports (`kb.embed.onnx_export`),
keyed by the model's file hashes. Pairs are tokenized with `tokenizers` as the model's tokenizer does
(longest-first truncation to its maximum length) and scored as sentence-transformers' `CrossEncoder`
scores them: the logits through the model's activation (sigmoid for one label, by default).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import warnings
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.embed.onnx_export import OPSET, cache_root, model_fingerprint
from kb.embed.prompts import local_folder
from kb.errors import DependencyError, EmbedderError, install_command
from kb.query.rerank_base import Reranker

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

GRAPH_FILE = "model.onnx"
META_FILE = "meta.json"
_BATCH = 32  # pairs per run: a page of candidates in a few runs
_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "identity"}  # sentence-transformers' names, last part


class OnnxCrossEncoderReranker(Reranker):
    """A cross-encoder run by ONNX Runtime: `model` is a local folder or a Hub id already downloaded."""

    def __init__(self, model: str, *, cache_dir: str | os.PathLike[str] | None = None, threads: int = 0):
        self.name = model
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "onnx-rerank"
        self.threads = threads

    @cached_property
    def location(self) -> Path:
        folder = local_folder(self.name)
        if folder is None and not Path(self.name).expanduser().exists():
            folder = _download(self.name)
        if folder is None or not (folder / "config.json").is_file():
            raise EmbedderError(f"cannot find reranking model {self.name!r}: give its folder or its Hub id")
        return folder

    @cached_property
    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.location / "config.json").read_text()))

    @cached_property
    def graph(self) -> Path:
        """The model's own ONNX file, else kb's export of it (made now if missing)."""
        own = self.location / "onnx" / GRAPH_FILE
        return own if own.is_file() else export_cross_encoder(self.location, self.name, self.cache_dir) / GRAPH_FILE

    @cached_property
    def session(self) -> Any:
        try:
            # lazy: ONNX Runtime loads with the model, not with kb (kb --help stays instant)
            import onnxruntime as ort
        except ImportError as e:
            raise DependencyError("ONNX reranking needs onnxruntime: pip install onnxruntime") from e
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = self.threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.graph), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise EmbedderError(f"cannot load {self.graph}: {' '.join(str(e).split())[:300]}") from e

    @cached_property
    def tokenizer(self) -> Tokenizer:
        # lazy: the tokenizer loads with the model, not with kb (kb --help stays instant)
        from tokenizers import Tokenizer

        path = next((p for p in (self.location / "tokenizer.json", self.graph.parent / "tokenizer.json") if p.is_file()),
                    None)
        if path is None:
            raise EmbedderError(f"reranking model {self.name!r} has no tokenizer.json (kb's ONNX path reads that file)")
        tok = Tokenizer.from_file(str(path))
        tok.no_padding()
        tok.enable_truncation(self.max_length, strategy="longest_first")
        return tok

    @cached_property
    def max_length(self) -> int:
        """Tokens per pair, as sentence-transformers takes it: its config's, else the tokenizer's, within
        the model's positions."""
        found: Any = None
        for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
            path = self.location / name
            if found is None and path.is_file():
                value = json.loads(path.read_text()).get(key)
                found = value if isinstance(value, int) and value < 100_000 else None  # "no limit" is 1e30
        positions = int(self.config.get("max_position_embeddings", 512))
        if self.config.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
            positions -= int(self.config.get("pad_token_id", 1)) + 1  # positions start after the padding's
        return min(int(found or positions), positions)

    @cached_property
    def activation(self) -> str:
        st = self.config.get("sentence_transformers") or {}
        path = st.get("activation_fn") or self.config.get("sbert_ce_default_activation_function")
        if path:
            kind = _ACTIVATIONS.get(str(path).rsplit(".", 1)[-1])
            if kind is None:
                raise EmbedderError(f"reranking model {self.name!r} scores through {path}, which kb's ONNX path does "
                                    "not apply: use the torch backend")
            return kind
        return "sigmoid" if len(self.config.get("id2label") or {0: ""}) == 1 else "identity"

    def score(self, query: str, texts: list[str]) -> list[float]:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        if not texts:
            return []
        wanted = {i.name for i in self.session.get_inputs()}
        scores: list[float] = []
        for start in range(0, len(texts), _BATCH):
            enc = self.tokenizer.encode_batch([(query, t) for t in texts[start : start + _BATCH]])
            width = max(len(e.ids) for e in enc)
            feed = {name: np.zeros((len(enc), width), dtype=np.int64) for name in
                    ("input_ids", "attention_mask", "token_type_ids") if name in wanted}
            for r, e in enumerate(enc):
                n = len(e.ids)
                feed["input_ids"][r, :n] = e.ids
                feed["attention_mask"][r, :n] = 1
                if "token_type_ids" in feed:
                    feed["token_type_ids"][r, :n] = e.type_ids
            try:
                logits = np.asarray(self.session.run(None, feed)[0], dtype=np.float64)
            except Exception as e:
                raise EmbedderError(f"ONNX Runtime failed on reranking: {' '.join(str(e).split())[:300]}") from e
            last = logits.reshape(len(enc), -1)[:, -1]  # several labels: the last is "relevant"
            scores += (1 / (1 + np.exp(-last)) if self.activation == "sigmoid" else last).tolist()
        return scores


def _download(model: str) -> Path:
    """A Hub cross-encoder's files that the ONNX path reads: its configs, tokenizer and `onnx/model.onnx`;
    its weights too only where it has no such file (to export one), not the repository's other graphs."""
    try:
        # lazy: huggingface_hub comes with the model backends, not with kb's import
        from huggingface_hub import snapshot_download

        small = ["*.json", "vocab.txt", "*.model", f"onnx/{GRAPH_FILE}"]
        folder = Path(snapshot_download(model, allow_patterns=small))
        if not (folder / "onnx" / GRAPH_FILE).is_file():
            folder = Path(snapshot_download(model, allow_patterns=[*small, "model.safetensors"]))
        return folder
    except Exception as e:  # offline, no such repository, not installed
        raise EmbedderError(f"cannot find reranking model {model!r}: {' '.join(str(e).split())[:300]}") from e


# --- the export, once per model ------------------------------------------------------------------
def export_cross_encoder(location: Path, model_id: str, cache_dir: Path) -> Path:
    """The cached ONNX graph of the cross-encoder in `location` (exported with torch now if missing,
    under a lock: a second process waits, then finds it)."""
    key = model_fingerprint(str(location), model_id, cache_dir)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id.rstrip("/").split("/")[-1])[:48]
    final = cache_dir / f"{slug}-{key[:16]}"
    if (final / META_FILE).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(final.with_name(f".{final.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / META_FILE).is_file():
            tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                _export(location, model_id, tmp)
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _export(location: Path, model_id: str, out: Path) -> None:
    started = time.perf_counter()
    try:
        # lazy: the torch extra is optional, and heavy
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as e:
        raise DependencyError(f"reranking model {model_id!r} has no onnx/model.onnx; exporting one needs torch and "
                              f"transformers: {install_command('torch')}") from e
    log.warning("kb: building %s's ONNX graph (once; cached in %s)", model_id, out.parent)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(location), attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(str(location))
    except Exception as e:
        raise EmbedderError(f"cannot load reranking model {model_id!r} for ONNX export: "
                            f"{' '.join(str(e).split())[:300]}") from e
    if not (location / "tokenizer.json").is_file():
        tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    sample = tokenizer(["which pump was shut down?", "net sales"], ["The north pump station was shut down for "
                       "maintenance after the inspection in March.", "Short one."], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:  # keyword call: positional order differs across models
            return self.inner(**dict(zip(names, args)), return_dict=True).logits

    wrapped = Logits(model)
    inputs = tuple(sample[n] for n in names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        expected = wrapped(*inputs).numpy()
        try:
            torch.onnx.export(wrapped, inputs, str(out / GRAPH_FILE), input_names=names, output_names=["logits"],
                              dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "logits"]},
                              opset_version=OPSET, dynamo=False)
        except Exception as e:
            raise EmbedderError(f"ONNX export of {model_id!r} failed: {' '.join(str(e).split())[:300]}") from e
    import numpy as np
    import onnxruntime as ort

    got = ort.InferenceSession(str(out / GRAPH_FILE), providers=["CPUExecutionProvider"]).run(
        None, {n: sample[n].numpy() for n in names})[0]
    if not np.allclose(got, expected, atol=1e-4, rtol=1e-4):  # a bad trace fails here, not in rankings
        raise EmbedderError(f"the ONNX export of {model_id!r} does not match the model "
                            f"(logits differ by {float(np.abs(got - expected).max()):.2g})")
    meta = {"model_id": model_id, "source": str(location), "inputs": names, "opset": OPSET,
            "exported_by": f"torch {torch.__version__}", "seconds": round(time.perf_counter() - started, 1)}
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
