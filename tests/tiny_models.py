"""Tiny random-weight models built here, for the plumbing of other models than MiniLM (no download):
sentence-transformers encoders of the BERT, XLM-RoBERTa and MPNet families, and a BERT cross-encoder.

2 layers, hidden size 32, a tokenizer of a few hundred pieces learnt from `TEXTS`: they embed and score
nonsense, quickly; what is tested with them is that kb runs them as their own libraries do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TEXTS = [
    "The north pump station was shut down for maintenance after the inspection in March.",
    "Risk: the schedule depends on parts that arrive from one supplier, and delays move every later step.",
    "Net sales by category rose in the third quarter; services grew faster than products.",
    "The pilot reported a loss of engine power shortly after takeoff and returned to the airport.",
    "Participants were randomised to the treatment or the placebo group for twelve weeks.",
    "Refunds above 500 euros need the approval of the finance team.",
]
_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 514}  # as XLM-RoBERTa (positions start after the padding id)


def _tokenizer(family: str) -> Any:
    """A `tokenizers.Tokenizer` of the family's kind, with its special tokens and pair template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if family == "bert":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        cls, sep, unk = "[CLS]", "[SEP]", "[UNK]"
    else:
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        cls, sep, unk = "<s>", "</s>", "<unk>"
    if family == "xlm-roberta":  # sentencepiece-style: a Unigram model over Metaspace pieces
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer: Any = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token=unk)
    else:
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    tok.train_from_iterator(TEXTS * 4, trainer)
    ids = {t: tok.token_to_id(t) for t in (cls, sep)}
    pair = f"{cls} $A {sep} $B:1 {sep}:1" if family == "bert" else f"{cls} $A {sep} {sep} $B {sep}"
    tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=pair,
                                                       special_tokens=list(ids.items()))
    return tok


def _save_tokenizer(family: str, folder: Path) -> int:
    """tokenizer.json and its transformers config into `folder`; the vocabulary's size."""
    from transformers import PreTrainedTokenizerFast

    tok = _tokenizer(family)
    names = ({"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
              "mask_token": "[MASK]"} if family == "bert" else
             {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "pad_token": "<pad>",
              "unk_token": "<unk>", "mask_token": "<mask>"})
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if family == "bert" else ["input_ids", "attention_mask"]
    PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=128,
                            model_input_names=inputs, **names).save_pretrained(str(folder))
    return int(tok.get_vocab_size())


def _config(family: str, vocab: int, **extra: Any) -> Any:
    import transformers

    cls = {"bert": transformers.BertConfig, "xlm-roberta": transformers.XLMRobertaConfig,
           "mpnet": transformers.MPNetConfig}[family]
    specials = {} if family == "bert" else {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
    return cls(vocab_size=vocab, **_SIZE, **specials, **extra)


def tiny_encoder(folder: Path, family: str = "bert", *, prompts: dict[str, str] | None = None,
                 default_prompt_name: str | None = None, seed: int = 0) -> Path:
    """A sentence-transformers model (Transformer + mean Pooling + Normalize) of `family` in `folder`."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    torch.manual_seed(seed)
    body = folder / "body"
    body.mkdir(parents=True)
    vocab = _save_tokenizer(family, body)
    transformers.AutoModel.from_config(_config(family, vocab)).save_pretrained(str(body))
    modules = [Transformer(str(body), max_seq_length=64), Pooling(_SIZE["hidden_size"], "mean"), Normalize()]
    model = SentenceTransformer(modules=modules, device="cpu", prompts=prompts, default_prompt_name=default_prompt_name)
    out = folder / "model"
    model.save(str(out))
    return out


def tiny_cross_encoder(folder: Path, *, seed: int = 0, onnx_file: bool = False) -> Path:
    """A BERT cross-encoder (sequence classification, one label) in `folder`; `onnx_file`: with the
    `onnx/model.onnx` that Hub cross-encoders often carry (exported here with torch)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    vocab = _save_tokenizer("bert", folder)
    # Wider weights than BERT's 0.02: scores that differ from pair to pair, so that an order can be wrong.
    config = _config("bert", vocab, num_labels=1, initializer_range=0.3)
    transformers.BertForSequenceClassification(config).save_pretrained(str(folder))
    if onnx_file:
        model = transformers.BertForSequenceClassification.from_pretrained(str(folder), attn_implementation="eager")
        (folder / "onnx").mkdir()
        names = ["input_ids", "attention_mask", "token_type_ids"]
        # A padded row in the example: with a mask of ones only, transformers drops the mask from the trace.
        mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
        example = (torch.full((2, 8), 7), mask, torch.zeros((2, 8), dtype=torch.int64))
        inner = model.eval()

        class ByName(torch.nn.Module):  # keyword call: forward's positional order differs across transformers
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *args: Any) -> Any:
                return self.inner(**dict(zip(names, args))).logits

        torch.onnx.export(ByName(), example, str(folder / "onnx" / "model.onnx"), input_names=names,
                          output_names=["logits"], dynamic_axes={n: {0: "b", 1: "s"} for n in names},
                          opset_version=17, dynamo=False)
    config = json.loads((folder / "config.json").read_text())
    assert config.get("num_labels", 1) == 1 or len(config.get("id2label", {0: 0})) == 1
    return folder
