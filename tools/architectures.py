"""Which encoder architectures the series trains, and how exactly: a table measured on tiny random models.

    python -m tools.architectures           # print the table (Markdown)
    python -m tools.architectures --write   # put it into README.md between the architectures markers

Each architecture is built here, randomly initialised (3 layers, hidden size 32, the bundled MiniLM tokenizer;
nothing is downloaded), and taken through what the series does with a model. A cell says ``exact`` when the
result equals an independent computation, ``works`` when the path runs and its checks hold, ``refused`` when
the library stops before any work with an error naming the architecture, and ``wrong`` otherwise (there should
be none: ``tests/test_architectures.py`` fails on one, and on a README that differs from this table).

* encode: ``SentenceEncoder.encode`` against the transformer's own output, mean-pooled here;
* two tasks: a multi-task run (both heads trained, every weight finite, the encoder moved);
* freeze k=1: after training with ``frozen_layers=1``, the input of layer 2 is what it was before (the
  bottom computes a fixed function), and ``frozen_bottom`` reports 1;
* cache k=1 / cache k=L: a run with the frozen-layer cache against the same run without it: every weight
  and every test prediction equal (k=L: the whole backbone frozen, only the heads train);
* layer-wise rates: a run with ``layer_decay=0.8``: each parameter in one group, each layer at lr·ξ^depth;
* save/load: the reloaded checkpoint gives the same logits;
* predict: the command line on the checkpoint answers what the model answers.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import transformers as hf

from mtl_utils.core import assets, paths

README = paths.REPO_ROOT / "README.md"
SENTENCES = ["A dull, lifeless film.", "Shares in the carmaker rose sharply after the results.",
             "United won 2-0 on Saturday.", "The minister resigned on Tuesday amid a row over funding."]
TOLERANCE = 1e-5  # largest weight difference after a few steps still called exact (float32 summation order)

# name -> (config class, model class, settings beyond the common ones)
ARCHITECTURES: dict[str, tuple[type, type, dict]] = {
    "BERT": (hf.BertConfig, hf.BertModel, {}),
    "DistilBERT": (hf.DistilBertConfig, hf.DistilBertModel, {"dim": 32, "n_layers": 3, "n_heads": 2,
                                                              "hidden_dim": 64}),
    "RoBERTa": (hf.RobertaConfig, hf.RobertaModel, {}),
    "XLM-R": (hf.XLMRobertaConfig, hf.XLMRobertaModel, {}),
    "DeBERTa-v2": (hf.DebertaV2Config, hf.DebertaV2Model, {
        "embedding_size": 16, "relative_attention": True, "position_buckets": 16, "pos_att_type": ["p2c", "c2p"],
        "conv_kernel_size": 3, "max_relative_positions": -1, "position_biased_input": False,
        "norm_rel_ebd": "layer_norm", "share_att_key": True}),
    "ELECTRA": (hf.ElectraConfig, hf.ElectraModel, {"embedding_size": 16}),
    "MPNet": (hf.MPNetConfig, hf.MPNetModel, {}),
    "ModernBERT": (hf.ModernBertConfig, hf.ModernBertModel, {"global_attn_every_n_layers": 2,
                                                             "local_attention": 8}),
    "ALBERT": (hf.AlbertConfig, hf.AlbertModel, {"embedding_size": 16}),
}
COLUMNS = ("encode", "two tasks", "freeze k=1", "cache k=1", "cache k=L", "layer-wise rates", "save/load",
           "predict")


def build(name: str, folder: str | Path) -> str:
    """Save a randomly initialised ``name`` (3 layers, hidden 32) with the bundled MiniLM tokenizer."""
    config_class, model_class, extra = ARCHITECTURES[name]
    tokenizer = hf.AutoTokenizer.from_pretrained(assets.bundled_model_dir())
    ids = {"pad_token_id": tokenizer.pad_token_id, "cls_token_id": tokenizer.cls_token_id,
           "sep_token_id": tokenizer.sep_token_id, "bos_token_id": tokenizer.cls_token_id,
           "eos_token_id": tokenizer.sep_token_id}
    common = {"vocab_size": tokenizer.vocab_size, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 128}
    if name == "DistilBERT":
        common = {"vocab_size": tokenizer.vocab_size, "max_position_embeddings": 128}
    settings = {**common, **{k: v for k, v in ids.items() if k in config_class().to_dict() or k == "pad_token_id"},
                **extra}
    torch.manual_seed(0)
    with contextlib.redirect_stderr(io.StringIO()):
        model_class(config_class(**settings)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _cell(check: Callable[[], str]) -> str:
    """Run one check: its verdict, ``refused: ...`` for a ValueError naming the architecture's limit, else
    ``wrong: ...``."""
    try:
        return check()
    except ValueError as err:
        message = str(err).splitlines()[0]
        return f"refused: {message}" if "ALBERT" in message else f"wrong: {type(err).__name__}: {message[:120]}"
    except Exception as err:  # noqa: BLE001 - any other failure is a wrong cell, named
        return f"wrong: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)


def input_of_layer(model, k: int) -> torch.Tensor:
    """What layer ``k + 1`` receives for :data:`SENTENCES`, read with a hook of its own (not the cache's code)."""
    from mtl_utils.modeling import anatomy

    seen = []
    hook = anatomy.layer_stack(model)[k].register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).clone()),
        with_kwargs=True)
    try:
        with torch.no_grad():
            model.encoder(**model.encoder.tokenize(SENTENCES))
    finally:
        hook.remove()
    return seen[0]


def measure(name: str, folder: str, data) -> dict[str, str]:
    """Every column's cell for the architecture ``name`` saved in ``folder``."""
    from mtl_utils.modeling import anatomy
    from mtl_utils.modeling.encoder import SentenceEncoder
    from mtl_utils.modeling.model import MultiTaskModel
    from mtl_utils.serving import predict
    from mtl_utils.training import freezing
    from mtl_utils.training.config import TrainConfig
    from mtl_utils.training.optim import param_groups
    from mtl_utils.training.trainer import Trainer, build_model

    config = TrainConfig(model=folder, examples=32, batch_size=8, max_length=32, lr=1e-3, head_lr=1e-2)
    runs: dict = {}

    def run(key: str, **changes):
        if key not in runs:
            trainer = Trainer(config.replace(**changes), data, progress_bar=False)
            runs[key] = (trainer, trainer.fit())
        return runs[key][1]

    def encode() -> str:
        encoder = SentenceEncoder(folder, max_length=32)
        got = encoder.encode(SENTENCES, convert_to_tensor=True)
        inputs = encoder.tokenizer(SENTENCES, padding=True, truncation=True, max_length=32, return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder.transformer(input_ids=inputs["input_ids"],
                                         attention_mask=inputs["attention_mask"]).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        expected = (hidden * mask).sum(1) / mask.sum(1)
        diff = float((got - expected).abs().max())
        return "exact" if diff <= 1e-5 else f"wrong: encode differs by {diff:.1e}"

    def two_tasks() -> str:
        start = build_model(config, data)
        result = run("plain")
        finite = all(torch.isfinite(p).all() for p in result.model.parameters())
        moved = _max_diff(start.encoder, result.model.encoder) > 0
        ok = finite and moved and set(result.test["task"]) == set(config.tasks)
        return "works" if ok else "wrong: the run did not train every part"

    def freeze() -> str:
        before = build_model(config, data).eval()
        expected = input_of_layer(before, 1)
        model = run("k1 plain", frozen_layers=1, frozen_cache=False).model.eval()
        got = input_of_layer(model, 1)
        diff = float((got - expected).abs().max())
        if freezing.frozen_bottom(model) != 1:
            return f"wrong: frozen_bottom reports {freezing.frozen_bottom(model)}"
        return "exact" if diff == 0 else f"wrong: layer 2's input moved by {diff:.1e}"

    def cache(k: str, **changes) -> Callable[[], str]:
        def check() -> str:
            plain = run(f"{k} plain", frozen_cache=False, **changes)
            cached = run(f"{k} cached", frozen_cache=True, **changes)
            diff = _max_diff(plain.model, cached.model)
            same = all(np.array_equal(plain.predictions[t], cached.predictions[t]) for t in config.tasks)
            return "exact" if diff <= TOLERANCE and same else f"wrong: weights differ by {diff:.1e}"
        return check

    def layerwise() -> str:
        result = run("llrd", layer_decay=0.8)
        groups = param_groups(result.model, 1e-3, 0.01, None, 0.8)  # raises unless each parameter is in one group
        units = {u.name: u.depth for u in anatomy.depth_units(result.model)}
        rates = {g["name"].removesuffix(" (no decay)"): g["lr"] for g in groups}
        ok = all(abs(rates[n] - 1e-3 * 0.8 ** units[n]) < 1e-12 for n in rates if n.startswith("layer"))
        return "works" if ok else "wrong: a layer's rate is not lr·ξ^depth"

    def save_load() -> str:
        model = run("plain").model
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "ckpt")
            again = MultiTaskModel.load(Path(tmp) / "ckpt")
            same = all(np.array_equal(a, b) for a, b in zip(model.logits(SENTENCES).values(),
                                                            again.logits(SENTENCES).values()))
        return "exact" if same else "wrong: the reloaded model answers differently"

    def predicts() -> str:
        model = run("plain").model
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "ckpt")
            out = io.StringIO()
            code = predict.main([str(Path(tmp) / "ckpt"), *SENTENCES, "--format", "json"], stdout=out)
        expected = model.predict(SENTENCES)
        rows = json.loads(out.getvalue()) if code == 0 else []
        ok = code == 0 and all(row[t] == expected[t].iloc[i] for i, row in enumerate(rows) for t in config.tasks)
        return "works" if ok and len(rows) == len(SENTENCES) else "wrong: predict answered differently"

    checks = {"encode": encode, "two tasks": two_tasks, "freeze k=1": freeze,
              "cache k=1": cache("k1", frozen_layers=1), "cache k=L": cache("kL", frozen_layers=3),
              "layer-wise rates": layerwise, "save/load": save_load, "predict": predicts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {column: _cell(checks[column]) for column in COLUMNS}


def table() -> dict[str, dict[str, str]]:
    """``{architecture: {column: cell}}`` for every architecture, built and measured in a temporary folder."""
    from series import corpora as data

    tasks = data.load_tasks(sizes={"train": 32, "validation": 16, "test": 16})
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ARCHITECTURES:
            out[name] = measure(name, build(name, Path(tmp) / name), tasks)
    return out


def _short(cell: str) -> str:
    if cell.startswith("refused"):
        return "refused¹"
    return cell


def markdown(cells: dict[str, dict[str, str]]) -> str:
    """The table as Markdown, with the refusals' reason as a footnote."""
    lines = ["| architecture | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in cells.items():
        lines.append(f"| {name} | " + " | ".join(_short(row[c]) for c in COLUMNS) + " |")
    reasons = sorted({row[c].removeprefix("refused: ") for row in cells.values() for c in COLUMNS
                      if row[c].startswith("refused")})
    if reasons:
        lines += ["", "¹ " + " ".join(reasons)]
    return "\n".join(lines)


def render(text: str, section: str) -> str:
    """``text`` (the README) with its architectures section replaced by ``section``."""
    pattern = re.compile(r"(<!-- architectures:start -->\n)(?:.*?\n)?(<!-- architectures:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError("README.md has no <!-- architectures:start --> ... <!-- architectures:end --> section")
    return pattern.sub(lambda m: m.group(1) + section + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)
    section = markdown(table())
    if args.write:
        README.write_text(render(README.read_text(), section))
        print(f"updated {paths.relative(README)}")
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
