"""Notebook 06's timing harness: the inference variants (:mod:`mtl_utils.serving.variants`) timed and scored.

* :func:`speed_table` times variants against each other (alternating runs, one process), :func:`latency_table`
  their single-sentence requests;
* :func:`quality_table` scores them on full test sets, paired against the fp32 model (McNemar), with the
  cosine of their sentence vectors to fp32's;
* :func:`one_vs_two` compares one multi-task model with two single-task models (parameters, memory,
  latency, throughput);
* :func:`measure_variants`: all of notebook 06's measurements of every variant in one call, so that they can
  be cached and replayed (:func:`series.records.timings`).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtl_utils.core import runtime
from mtl_utils.data.tasks import Task
from mtl_utils.evaluation.metrics import classification_scores
from mtl_utils.modeling import anatomy
from mtl_utils.modeling.encoder import Tokenized
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.serving import static_int8, variants
from mtl_utils.serving.variants import AllOutputs, Variant, torch_int8_variant, torch_variant
from series.statistics import excludes_beyond, mcnemar, paired_interval


BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # the CPU flags of bf16 product instructions


def has_bf16_units(flags: Sequence[str] | None = None) -> bool:
    """Whether the CPU has bf16 product instructions (AMX bf16 tiles, or AVX-512's bf16 dot products), where
    bf16 pays. Without either, oneDNN emulates bf16 and it runs slower than fp32: notebook 06 § 3c measures
    both cases on one machine by capping its instruction sets. ``flags``: a recorded CPU's (default: this
    one's)."""
    flags = runtime.cpu()["flags"] if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)


def inference_variants(model: MultiTaskModel, folder: Path, calibration: Sequence[str]
                       ) -> list[variants.Variant]:
    """Every variant notebook 06 compares, PyTorch fp32 first: PyTorch dynamic int8, ONNX Runtime
    fp32 / dynamic int8 (fused graph) / static int8, OpenVINO fp32 / static int8 (NNCF, calibrated
    on ``calibration``), and where the CPU has bf16 instructions (:func:`has_bf16_units`) PyTorch autocast
    bf16 and OpenVINO bf16.
    Exports go to ``folder``."""
    fused = variants.export_onnx(model, folder / "model.onnx")
    raw = static_int8.unfused(fused)
    batches = static_int8.calibration_batches(model, calibration)
    ov_int8 = static_int8.openvino_int8(raw, batches, folder / "openvino-int8.xml")
    ort_static = static_int8.onnx_static_int8(raw, batches)
    chosen = [variants.torch_variant(model), variants.torch_int8_variant(model),
              variants.onnx_variant(model, fused, "ONNX Runtime fp32 (fused)"),
              variants.onnx_variant(model, variants.quantize_onnx(fused), INT8),
              variants.onnx_variant(model, ort_static, "ONNX Runtime static int8"),
              static_int8.openvino_variant(model, raw, "OpenVINO fp32"),
              static_int8.openvino_variant(model, ov_int8, "OpenVINO static int8")]
    if has_bf16_units():
        chosen += [variants.torch_variant(model, autocast=torch.bfloat16),
                   static_int8.openvino_variant(model, raw, "OpenVINO bf16", precision="bf16")]
    return chosen


#: The name of ONNX Runtime's dynamic int8 variant (the series' int8 before static int8).
INT8 = "ONNX Runtime int8 (fused)"


def measure_variants(model: MultiTaskModel, data: Mapping[str, Task], texts: Sequence[str],
                     folder: Path, calibration: Sequence[str], repeats: int = 3,
                     sensitivity_texts: int = 600, requests: int = 200) -> dict[str, pd.DataFrame]:
    """Notebook 06's measurements of the :func:`inference_variants`, in one call (so they can be
    cached and replayed): ``speed`` (batch-32 throughput over ``texts``, batch-1 latency over
    ``requests`` of them), ``latency`` (each of those requests' time) and ``quality`` (full test sets,
    paired against fp32); ``sensitivity`` of each layer to int8; ``mixed``: speed and accuracy of PyTorch
    int8 with the two most sensitive layers kept in fp32, beside plain int8; ``matmul``: the share of
    fp32's CPU time in matrix products. Everything runs on the CPU (:func:`~mtl_utils.serving.variants.on_cpu`)."""
    model = variants.on_cpu(model)
    chosen = inference_variants(model, folder, calibration)
    fp32, torch_int8, ort_int8 = chosen[0], chosen[1], chosen[3]
    tokenized = model.encoder.token_ids(texts)
    tokens = {task: model.encoder.token_ids(list(data[task]["test"]["text"])) for task in data}
    speed = speed_table(chosen, tokenized, batch_size=32, repeats=repeats)
    latencies = latency_samples(chosen, tokenized, requests)
    speed = speed.join(latency_summary(latencies))
    sample = model.encoder.token_ids(texts[:sensitivity_texts])
    sensitivity = layer_sensitivity(model, sample, fp32.run(sample, 32)[0])
    hurt = np.argsort(sensitivity["cosine 1st percentile"].to_numpy(), kind="stable")[:2]
    prefix = anatomy.module_name(model, anatomy.layer_stack(model))
    mixed_variant = variants.torch_int8_variant(
        model, keep_fp32=[f"{prefix}.{i}" for i in hurt],
        name=f"PyTorch int8, {' and '.join(sensitivity.index[hurt])} fp32")
    final = [fp32, torch_int8, mixed_variant, ort_int8]
    scored = quality_table([*chosen, mixed_variant], data, tokens)  # each variant once
    quality = scored[scored["variant"] != mixed_variant.name].reset_index(drop=True)
    changes = scored.pivot(index="variant", columns="task", values="− fp32")
    mixed = speed_table(final, tokenized, batch_size=32, repeats=repeats)[["× baseline"]]
    mixed = mixed.join(changes.add_prefix("accuracy − fp32: "), how="left")
    share = matmul_share(fp32, model.encoder.token_ids(texts[:256]))
    return {"speed": speed, "quality": quality, "sensitivity": sensitivity,
            "mixed": mixed.loc[[v.name for v in final]], "latency": latencies,
            "matmul": pd.DataFrame({"share of fp32 CPU time in matrix products": [share]})}


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
    both = AllOutputs(model).eval()
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
    multi, singles = variants.on_cpu(multi), {task: variants.on_cpu(m) for task, m in singles.items()}
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


def latency_samples(variants: Sequence[Variant], tokenized: Tokenized, requests: int = 200,
                    rounds: int = 2) -> pd.DataFrame:
    """Batch-1 latency of each variant, one row per timed request (``variant``, ``ms``): ``requests`` single
    sentences (tokenised already, the same for every variant), one after another; the variants take turns
    by block, ``rounds`` times (each block warmed by one request).

    Blocks, not one request each in turn: an engine's worker threads keep spinning for a while after
    a call (OpenMP, TBB), and a request of another engine in that window pays for it; interleaving
    single requests of PyTorch and OpenVINO doubled OpenVINO's median when this was built."""
    rows = []
    singles = [Tokenized([tokenized.ids[i]], [tokenized.lengths[i]], 0)
               for i in range(min(requests, len(tokenized)))]
    for _ in range(rounds):
        for variant in variants:
            variant.run(singles[0], 1)  # warm-up
            for single in singles:
                start = time.perf_counter()
                variant.run(single, 1)
                rows.append({"variant": variant.name, "ms": 1000 * (time.perf_counter() - start)})
    return pd.DataFrame(rows)


def latency_summary(samples: pd.DataFrame) -> pd.DataFrame:
    """Median and 95th percentile in ms of :func:`latency_samples`, per variant (in their order)."""
    by = samples.groupby("variant", sort=False)["ms"]
    return pd.DataFrame({"batch-1 median (ms)": by.median(), "batch-1 p95 (ms)": by.quantile(0.95)})


def latency_table(variants: Sequence[Variant], tokenized: Tokenized, requests: int = 200,
                  rounds: int = 2) -> pd.DataFrame:
    """Batch-1 latency of each variant (:func:`latency_samples`): median and 95th percentile in ms over every
    timed request."""
    return latency_summary(latency_samples(variants, tokenized, requests, rounds))
