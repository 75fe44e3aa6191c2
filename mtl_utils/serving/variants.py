"""Serving the multi-task model: one encoder pass answers every task, and faster variants of that pass.

A :class:`Variant` turns tokenised texts into sentence vectors and every task's logits. The variants:

* :func:`torch_variant`: the model as it is, in PyTorch (fp32), optionally under ``torch.autocast`` (bf16);
* :func:`torch_int8_variant`: PyTorch's dynamic int8 quantisation of the ``nn.Linear`` layers (weights int8,
  activations quantised on the fly), optionally keeping some layers in fp32;
* :func:`onnx_variant`: the model exported to ONNX, its graph fused by ONNX Runtime's transformer optimiser
  (attention, LayerNorm, GELU), run by ONNX Runtime in fp32 or with ONNX Runtime's own dynamic int8
  quantisation (per-channel weights);
* static int8 (activation ranges calibrated once) with OpenVINO (NNCF) and ONNX Runtime:
  :mod:`~mtl_utils.serving.static_int8`; all of them measured in one call by
  :func:`~mtl_utils.serving.measure.measure_variants`.

:func:`speed_table` times variants against each other (alternating runs, one process), :func:`latency_table`
their single-sentence requests;
:func:`quality_table` scores them on full test sets, paired against the fp32 model (McNemar), with the cosine
of their sentence vectors to fp32's; :func:`one_vs_two` compares one multi-task model with two single-task
models (parameters, memory, latency, throughput).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.batching import length_sorted_batches
from ..data.tasks import Task
from ..evaluation.comparisons import excludes_beyond
from ..evaluation.metrics import classification_scores, mcnemar, paired_interval
from ..modeling import anatomy
from ..modeling.encoder import Tokenized
from ..modeling.model import MultiTaskModel

Outputs = tuple[torch.Tensor, dict[str, np.ndarray]]


@dataclass
class Variant:
    """A way to run the model: ``run(tokenized, batch_size)`` returns sentence vectors ``[n, dim]`` and
    ``{task: logits [n, labels]}`` in input order."""

    name: str
    run: Callable[[Tokenized, int], Outputs]
    description: str = ""


class _Both(nn.Module):
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
    both = _Both(model).eval()

    def forward(ids, mask):
        context = torch.autocast(model.encoder.device.type, dtype=autocast) if autocast else contextlib.nullcontext()
        with torch.inference_mode(), context:
            return tuple(t.float().cpu().numpy() for t in both(ids, mask))

    label = name or ("PyTorch fp32" if autocast is None else f"PyTorch autocast {str(autocast).split('.')[-1]}")
    return Variant(label, lambda tok, bs: batched(model, forward, tok, bs), "eager PyTorch, length-sorted batches")


def on_cpu(model: MultiTaskModel) -> MultiTaskModel:
    """``model`` itself if it is on the CPU, else a copy moved there: serving is measured on the CPU on purpose
    (int8 kernels are CPU kernels, and fp32 on a GPU against ONNX Runtime on the CPU would compare machines)."""
    if model.encoder.device.type == "cpu":
        return model
    return deepcopy(model).to("cpu").eval()


def check_keep_fp32(model: MultiTaskModel, keep_fp32: Sequence[str | int]) -> tuple[str, ...]:
    """Module-name prefixes to keep in fp32: names as in ``model.named_modules()``, or encoder layer indices
    (``0`` is the bottom layer). A bare string, another type, an index out of range or a name that matches no
    module raises ``ValueError`` (a silent miss would quantise everything under an "fp32 kept" label)."""
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


def torch_int8_variant(model: MultiTaskModel, keep_fp32: Sequence[str | int] = (), name: str | None = None
                       ) -> Variant:
    """PyTorch dynamic int8 quantisation of every ``nn.Linear`` of the model, on the CPU, except the modules
    named in ``keep_fp32`` (see :func:`check_keep_fp32`) and their children. The original model is not changed."""
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
    """Export the model (sentence vectors and every head) to ONNX with dynamic batch and length, using eager
    attention so that ONNX Runtime's optimiser recognises and fuses BERT's attention; the fused graph is saved
    beside it (``*.opt.onnx``) and returned. With ``fuse=False`` the
    plain export is returned (what OpenVINO and NNCF read), without running the optimiser."""
    from onnxruntime.transformers import optimizer

    path.parent.mkdir(parents=True, exist_ok=True)
    transformer = model.encoder.transformer
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    both = _Both(model).eval()
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
    """ONNX Runtime's dynamic int8 quantisation (per-channel weights) of an ONNX model; nodes whose names
    contain one of ``exclude`` stay fp32."""
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


def speed_table(variants: Sequence[Variant], tokenized: Tokenized, batch_size: int = 32, repeats: int = 3,
                baseline: str | None = None) -> pd.DataFrame:
    """Sentences per second of each variant over ``tokenized``: one warm-up, then ``repeats`` rounds in which
    the variants alternate (so they share the machine's state); best and median, and the ratio of the best to
    the baseline's best (default: the first variant)."""
    for variant in variants:
        variant.run(Tokenized(tokenized.ids[:batch_size], tokenized.lengths[:batch_size], 0), batch_size)
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for _ in range(repeats):
        for variant in variants:
            start = time.perf_counter()
            variant.run(tokenized, batch_size)
            times[variant.name].append(time.perf_counter() - start)
    base = baseline or variants[0].name
    rows = [{"variant": v.name, "sentences/s (best)": len(tokenized) / min(times[v.name]),
             "sentences/s (median)": len(tokenized) / float(np.median(times[v.name])),
             "× baseline": min(times[base]) / min(times[v.name]), "how": v.description} for v in variants]
    return pd.DataFrame(rows).set_index("variant")


def quality_table(variants: Sequence[Variant], data: Mapping[str, Task], tokens: Mapping[str, Tokenized],
                  batch_size: int = 64) -> pd.DataFrame:
    """Each variant on the full test set of every task, against the first variant (the fp32 reference):
    accuracy, agreement of predictions, the paired accuracy difference with its exact interval and McNemar's
    p, and the cosine of the sentence vectors to the reference's (minimum and 1st percentile)."""
    outputs = {v.name: {task: v.run(tokens[task], batch_size) for task in tokens} for v in variants}
    reference = variants[0].name
    rows = []
    for variant in variants:
        for task, tok in tokens.items():
            vectors, logits = outputs[variant.name][task]
            ref_vectors, ref_logits = outputs[reference][task]
            labels = data[task]["test"]["label"].to_numpy()
            ours = classification_scores(labels, logits[task], data[task].num_labels)
            theirs = classification_scores(labels, ref_logits[task], data[task].num_labels)
            interval = paired_interval(ours["correct"], theirs["correct"])
            cosine = nn.functional.cosine_similarity(vectors, ref_vectors, dim=1).numpy()
            rows.append({"variant": variant.name, "task": task, "accuracy": ours["accuracy"],
                         "agreement with fp32": float(np.mean(ours["predictions"] == theirs["predictions"])),
                         "− fp32": interval["difference"], "low": interval["low"], "high": interval["high"],
                         "McNemar p": mcnemar(ours["correct"], theirs["correct"]).p_value,
                         "excludes beyond": excludes_beyond(interval),
                         "cosine min": float(cosine.min()), "cosine 1st percentile": float(np.quantile(cosine, 0.01))})
    return pd.DataFrame(rows)


@contextlib.contextmanager
def silent_stderr():
    """Discard what C++ code writes to the process's stderr (the profiler's start/stop notices)."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def matmul_share(variant: Variant, tokenized: Tokenized, batch_size: int = 32) -> float:
    """Share of a PyTorch variant's CPU time spent in matrix products (``mm``, ``addmm``, ``bmm``, ``linear``,
    ``matmul``: PyTorch's profiler, self time), over ``tokenized``."""
    with silent_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        variant.run(tokenized, batch_size)
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in events)
    matmul = sum(t for key, t in events if any(op in key.lower() for op in ("addmm", "mm", "matmul", "linear")))
    return float(matmul / total) if total else float("nan")


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model`` (what loading it puts in memory)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def latency(model: MultiTaskModel, texts: Sequence[str], tasks: Sequence[str] | None = None) -> np.ndarray:
    """Seconds per single-sentence request (batch 1), one per text: tokenise, encode once, every head."""
    both = _Both(model).eval()
    seconds = []
    with torch.inference_mode():
        for text in texts:
            start = time.perf_counter()
            batch = model.encoder.tokenize([text])
            both(batch["input_ids"], batch["attention_mask"])
            seconds.append(time.perf_counter() - start)
    return np.array(seconds)


def one_vs_two(multi: MultiTaskModel, singles: Mapping[str, MultiTaskModel], texts: Sequence[str],
               batch_texts: Sequence[str], repeats: int = 3) -> pd.DataFrame:
    """One multi-task model against one single-task model per task, serving every task for every text:
    parameters, weights in memory, batch-1 latency (median and 95th percentile over ``texts``; the
    single-task setup answers with each model in turn) and batch-32 throughput over ``batch_texts``; on the CPU."""
    multi, singles = on_cpu(multi), {task: on_cpu(m) for task, m in singles.items()}
    systems = {"one multi-task model": [multi], "two single-task models": list(singles.values())}
    tokenized = multi.encoder.token_ids(batch_texts)
    rows = []
    for name, models in systems.items():
        latencies = sum(latency(m, texts) for m in models)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for m in models:
                torch_variant(m).run(tokenized, 32)
            times.append(time.perf_counter() - start)
        rows.append({"system": name, "models": len(models), "parameters": sum(sum(p.numel() for p in m.parameters())
                                                                              for m in models),
                     "weights in memory (MB)": sum(parameter_bytes(m) for m in models) / 1e6,
                     "batch-1 latency median (ms)": 1000 * float(np.median(latencies)),
                     "batch-1 latency p95 (ms)": 1000 * float(np.quantile(latencies, 0.95)),
                     "batch-32 sentences/s (best)": len(batch_texts) / min(times)})
    table = pd.DataFrame(rows).set_index("system")
    table["throughput × two models"] = table["batch-32 sentences/s (best)"] / table.loc["two single-task models",
                                                                                         "batch-32 sentences/s (best)"]
    return table


def layer_sensitivity(model: MultiTaskModel, tokenized: Tokenized, reference: torch.Tensor,
                      batch_size: int = 32) -> pd.DataFrame:
    """Dynamic int8 applied to **one** encoder layer at a time (its linear maps; everything else fp32): how far
    the sentence vectors move from ``reference`` (fp32's), as the minimum and 1st-percentile cosine."""
    prefix = anatomy.module_name(model, anatomy.layer_stack(model))
    layer_names = [f"{prefix}.{i}" for i in range(anatomy.num_layers(model))]
    rows = []
    for i in range(len(layer_names)):
        keep = [name for j, name in enumerate(layer_names) if j != i] + ["heads"]
        vectors, _ = torch_int8_variant(model, keep_fp32=keep).run(tokenized, batch_size)
        cosine = nn.functional.cosine_similarity(vectors, reference, dim=1).numpy()
        rows.append({"only this layer int8": f"layer {i + 1}",
                     "cosine 1st percentile": float(np.quantile(cosine, 0.01)), "cosine min": float(cosine.min())})
    return pd.DataFrame(rows).set_index("only this layer int8")


def latency_table(variants: Sequence[Variant], tokenized: Tokenized, requests: int = 200,
                  rounds: int = 2) -> pd.DataFrame:
    """Batch-1 latency of each variant: ``requests`` single sentences (tokenised already, the same
    for every variant), one after another; the variants take turns by block, ``rounds`` times (each
    block warmed by one request). Median and 95th percentile in ms over every timed request.

    Blocks, not one request each in turn: an engine's worker threads keep spinning for a while after
    a call (OpenMP, TBB), and a request of another engine in that window pays for it; interleaving
    single requests of PyTorch and OpenVINO doubled OpenVINO's median when this was built."""
    seconds: dict[str, list[float]] = {v.name: [] for v in variants}
    singles = [Tokenized([tokenized.ids[i]], [tokenized.lengths[i]], 0)
               for i in range(min(requests, len(tokenized)))]
    for _ in range(rounds):
        for variant in variants:
            variant.run(singles[0], 1)  # warm-up
            for single in singles:
                start = time.perf_counter()
                variant.run(single, 1)
                seconds[variant.name].append(time.perf_counter() - start)
    rows = [{"variant": name, "batch-1 median (ms)": 1000 * float(np.median(s)),
             "batch-1 p95 (ms)": 1000 * float(np.quantile(s, 0.95))} for name, s in seconds.items()]
    return pd.DataFrame(rows).set_index("variant")
