"""Serving tables: one multi-task model against two single-task models, and faster inference variants of the
multi-task model (speed against PyTorch fp32, and accuracy on both full test sets paired against it).

The models are the protocol's runs with seed 0, loaded from the run cache (trained if missing: run notebook 02
first to have them). Timings alternate in one process; best of ``--repeats``.

    HF_HUB_OFFLINE=1 python benchmarks/serving.py [--sentences 1500] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mtl_utils import load_tasks, protocol, records, runtime
from mtl_utils.serving import variants as serving
from mtl_utils.notebook.report import markdown_table
from mtl_utils.training.runs import train_or_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runtime.set_threads()
    tasks = load_tasks()
    models = {name: train_or_load(protocol.config(names), tasks, progress_bar=False).model
              for name, names in (("multi", ("topic", "sentiment")), ("topic", ("topic",)),
                                  ("sentiment", ("sentiment",)))}
    multi = models["multi"]
    mixed = list(tasks["topic"]["test"]["text"]) + list(tasks["sentiment"]["test"]["text"])
    order = np.random.default_rng(0).permutation(len(mixed))
    texts = [mixed[i] for i in order[:args.sentences]]
    systems = serving.one_vs_two(multi, {"topic": models["topic"], "sentiment": models["sentiment"]}, texts[:300],
                                 texts, repeats=args.repeats)
    print(systems.round(2).to_string())
    setting = f"{args.sentences} test sentences, batch 32, best of {args.repeats}, {torch.get_num_threads()} threads"
    records.save_benchmark("serving_one_vs_two", "Serving: one multi-task model against two single-task models",
                           "python benchmarks/serving.py", setting, markdown_table(systems.reset_index()))
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = serving.export_onnx(multi, Path(folder) / "model.onnx")
        variants = [serving.torch_variant(multi), serving.torch_int8_variant(multi),
                    serving.onnx_variant(multi, onnx_path, "ONNX Runtime fp32 (fused)"),
                    serving.onnx_variant(multi, serving.quantize_onnx(onnx_path), "ONNX Runtime int8 (fused)")]
        speed = serving.speed_table(variants, multi.encoder.token_ids(texts), repeats=args.repeats)
        tokens = {t: multi.encoder.token_ids(list(tasks[t]["test"]["text"])) for t in tasks}
        quality = serving.quality_table(variants, tasks, tokens)
    changes = quality.pivot(index="variant", columns="task", values="− fp32").add_prefix("accuracy − fp32, ")
    table = speed[["sentences/s (best)", "× baseline"]].join(changes).reset_index()
    print(table.round(4).to_string(index=False))
    records.save_benchmark("serving_variants", "Serving: inference variants of the multi-task model",
                           "python benchmarks/serving.py", setting + "; accuracy on the full test sets",
                           markdown_table(table, digits=3))


if __name__ == "__main__":
    main()
