"""Notebook 06's measurements of the inference variants in one call, so that they can be cached and replayed.

Taught in notebook 06, sections 3 and 4.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core import runtime
from ..data.tasks import Task
from ..modeling import anatomy
from ..modeling.model import MultiTaskModel
from . import static_int8, variants


def has_bf16_units() -> bool:
    """Whether the CPU reports AMX bf16 tiles, where bf16 products pay. Elsewhere they are slower than
    fp32: notebook 06 § 3c measures it, and on the Xeon of its committed run capped to AVX-512's bf16
    instructions without AMX, bf16 autocast ran at 0.72× fp32 (measured while building this)."""
    return "amx_bf16" in runtime.cpu()["flags"]


def inference_variants(model: MultiTaskModel, folder: Path, calibration: Sequence[str]
                       ) -> list[variants.Variant]:
    """Every variant notebook 06 compares, PyTorch fp32 first: PyTorch dynamic int8, ONNX Runtime
    fp32 / dynamic int8 (fused graph) / static int8, OpenVINO fp32 / static int8 (NNCF, calibrated
    on ``calibration``), and where the CPU has AMX bf16 units PyTorch autocast bf16 and OpenVINO bf16.
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
    ``requests`` of them) and ``quality`` (full test sets, paired against fp32); ``sensitivity`` of
    each layer to int8; ``mixed``: speed and accuracy of PyTorch int8 with the two most sensitive
    layers kept in fp32, beside plain int8; ``matmul``: the share of fp32's CPU time in matrix
    products. Everything runs on the CPU (:func:`~mtl_utils.serving.variants.on_cpu`)."""
    model = variants.on_cpu(model)
    chosen = inference_variants(model, folder, calibration)
    fp32, torch_int8, ort_int8 = chosen[0], chosen[1], chosen[3]
    tokenized = model.encoder.token_ids(texts)
    tokens = {task: model.encoder.token_ids(list(data[task]["test"]["text"])) for task in data}
    speed = variants.speed_table(chosen, tokenized, batch_size=32, repeats=repeats)
    speed = speed.join(variants.latency_table(chosen, tokenized, requests))
    sample = model.encoder.token_ids(texts[:sensitivity_texts])
    sensitivity = variants.layer_sensitivity(model, sample, fp32.run(sample, 32)[0])
    hurt = np.argsort(sensitivity["cosine 1st percentile"].to_numpy(), kind="stable")[:2]
    prefix = anatomy.module_name(model, anatomy.layer_stack(model))
    mixed_variant = variants.torch_int8_variant(
        model, keep_fp32=[f"{prefix}.{i}" for i in hurt],
        name=f"PyTorch int8, {' and '.join(sensitivity.index[hurt])} fp32")
    final = [fp32, torch_int8, mixed_variant, ort_int8]
    scored = variants.quality_table([*chosen, mixed_variant], data, tokens)  # each variant once
    quality = scored[scored["variant"] != mixed_variant.name].reset_index(drop=True)
    changes = scored.pivot(index="variant", columns="task", values="− fp32")
    mixed = variants.speed_table(final, tokenized, batch_size=32, repeats=repeats)[["× baseline"]]
    mixed = mixed.join(changes.add_prefix("accuracy − fp32: "), how="left")
    share = variants.matmul_share(fp32, model.encoder.token_ids(texts[:256]))
    return {"speed": speed, "quality": quality, "sensitivity": sensitivity,
            "mixed": mixed.loc[[v.name for v in final]],
            "matmul": pd.DataFrame({"share of fp32 CPU time in matrix products": [share]})}
