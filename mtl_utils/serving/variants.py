"""Serving the multi-task model: one encoder pass answers every task, and faster variants of that pass. A
:class:`Variant` turns tokenised texts into sentence vectors and every task's logits (timed by
:func:`series.serving_measurements.measure_variants`): :func:`torch_variant` (fp32 or ``torch.autocast``),
:func:`torch_int8_variant` (dynamic int8 ``nn.Linear``), :func:`onnx_variant` (ONNX Runtime, fp32 or dynamic int8)."""
from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtl_utils.core.batching import length_sorted_batches
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.encoder import Tokenized
from mtl_utils.modeling.model import MultiTaskModel

Outputs = tuple[torch.Tensor, dict[str, np.ndarray]]


@dataclass
class Variant:
    """A way to run the model: ``run(tokenized, batch_size)``: vectors ``[n, dim]``, ``{task: logits}``, input order."""

    name: str
    run: Callable[[Tokenized, int], Outputs]
    description: str = ""


class AllOutputs(nn.Module):
    """The model as one function of token ids and mask: sentence vectors and every head's logits."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model, self.tasks = model, model.task_names

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        vectors = self.model.encoder(input_ids, attention_mask)
        return (vectors, *(self.model.heads[t](vectors) for t in self.tasks))


def batched(model: MultiTaskModel, forward: Callable, tokenized: Tokenized, batch_size: int) -> Outputs:
    """Run ``forward(input_ids, attention_mask) -> (vectors, *logits)`` over length-sorted batches."""
    n, tasks = len(tokenized), model.task_names
    vectors = torch.empty((n, model.encoder.dim))
    logits = {t: np.empty((n, len(model.task_labels[t])), dtype=np.float32) for t in tasks}
    for idx in length_sorted_batches(tokenized.lengths, batch_size):
        batch = model.encoder.collate([tokenized.ids[i] for i in idx])
        out = forward(batch["input_ids"], batch["attention_mask"])
        vectors[torch.from_numpy(idx)] = torch.as_tensor(np.asarray(out[0], dtype=np.float32))
        for t, value in zip(tasks, out[1:]):
            logits[t][idx] = np.asarray(value, dtype=np.float32)
    return vectors, logits


def torch_variant(model: MultiTaskModel, autocast: torch.dtype | None = None, name: str | None = None) -> Variant:
    """The model in PyTorch, eval mode, ``torch.inference_mode()``, optionally under ``torch.autocast``."""
    both = AllOutputs(model).eval()

    def forward(ids, mask):
        context = torch.autocast(model.encoder.device.type, dtype=autocast) if autocast else contextlib.nullcontext()
        with torch.inference_mode(), context:
            return tuple(t.float().cpu().numpy() for t in both(ids, mask))
    label = name or ("PyTorch fp32" if autocast is None else f"PyTorch autocast {str(autocast).split('.')[-1]}")
    return Variant(label, lambda tok, bs: batched(model, forward, tok, bs), "eager PyTorch, length-sorted batches")


def on_cpu(model: MultiTaskModel) -> MultiTaskModel:
    """``model`` itself on the CPU, else a CPU copy: serving is measured on the CPU (int8 kernels are CPU kernels)."""
    if model.encoder.device.type == "cpu":
        return model
    return deepcopy(model).to("cpu").eval()


def check_keep_fp32(model: MultiTaskModel, keep_fp32: Sequence[str | int]) -> tuple[str, ...]:
    """Module-name prefixes kept in fp32: names as in ``model.named_modules()``, or layer indices (``0``: the bottom).
    Anything else, or a name matching no module, is a ``ValueError`` (a silent miss would mislabel "fp32 kept")."""
    if isinstance(keep_fp32, (str, bytes)):
        raise ValueError(f"keep_fp32 must be a list of layer names or indices, e.g. [{keep_fp32!r}], not a string")
    layers = anatomy.layer_stack(model)
    prefix = anatomy.module_name(model, layers)
    names = {n for n, _ in model.named_modules()}
    out = []
    for item in keep_fp32:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= item < len(layers):
                raise ValueError(f"keep_fp32: layer {item} is outside 0..{len(layers) - 1}")
            item = f"{prefix}.{int(item)}"
        if not isinstance(item, str) or not item or not any(n == item or n.startswith(item + ".") for n in names):
            raise ValueError(f"keep_fp32: {item!r} is not a layer index or a module of the model (e.g. {prefix}.5)")
        out.append(item)
    return tuple(out)


def torch_int8_variant(model: MultiTaskModel, keep_fp32: Sequence[str | int] = (), name: str | None = None) -> Variant:
    """PyTorch dynamic int8 of each ``nn.Linear`` (CPU, on a copy) but under ``keep_fp32`` (:func:`check_keep_fp32`)."""
    keep_fp32 = check_keep_fp32(model, keep_fp32)
    copy = deepcopy(model).to("cpu").eval()
    targets = {n for n, m in copy.named_modules()
               if isinstance(m, nn.Linear) and not any(n == k or n.startswith(k + ".") for k in keep_fp32)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that eager quantisation moves to torchao
        quantized = torch.ao.quantization.quantize_dynamic(copy, targets, dtype=torch.qint8)
    variant = torch_variant(quantized, name=name or "PyTorch dynamic int8")
    variant.description = f"int8 weights in {len(targets)} linear layers" + (
        f", fp32 kept in {', '.join(keep_fp32)}" if keep_fp32 else "")
    return variant


def export_onnx(model: MultiTaskModel, path: Path, fuse: bool = True) -> Path:
    """ONNX export (vectors, every head; eager attention) to ``path``; returns it fused (``*.opt.onnx``) or as is."""
    from onnxruntime.transformers import optimizer
    path.parent.mkdir(parents=True, exist_ok=True)
    transformer = model.encoder.transformer
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    both = AllOutputs(model).eval()
    example = model.encoder.tokenize(["A short example.", "A second, slightly longer example sentence."])
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            **{name: {0: "batch"} for name in ["vectors", *model.task_names]}}
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(both, (example["input_ids"], example["attention_mask"]), str(path), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["vectors", *model.task_names],
                              dynamic_axes=axes, opset_version=17)
    finally:
        transformer.set_attn_implementation(previous)
    if not fuse:
        return path
    config = transformer.config
    fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size, opt_level=1)
    optimized = path.with_suffix(".opt.onnx")
    fused.save_model_to_file(str(optimized))
    return optimized


def quantize_onnx(path: Path, exclude: Sequence[str] = ()) -> Path:
    """ONNX Runtime's dynamic int8 (per-channel weights) of an ONNX model; nodes named with an ``exclude`` stay fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    names = [n.name for n in onnx.load(str(path)).graph.node if any(x in n.name for x in exclude)] if exclude else None
    target = path.with_suffix(".int8.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process applies to static quantisation
    try:
        quantize_dynamic(str(path), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=names, extra_options={"DefaultTensorType": 1})
    finally:
        root.setLevel(level)
    return target


def onnx_variant(model: MultiTaskModel, path: Path, name: str, threads: int | None = None) -> Variant:
    """Run an exported model (:func:`export_onnx`, :func:`quantize_onnx`) with ONNX Runtime on the CPU."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = ["vectors", *model.task_names]

    def forward(ids, mask):
        return session.run(outputs, {"input_ids": ids.cpu().numpy(), "attention_mask": mask.cpu().numpy()})
    return Variant(name, lambda tok, bs: batched(model, forward, tok, bs), f"ONNX Runtime, {Path(path).name}")
