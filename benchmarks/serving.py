"""Serving tables: one multi-task model against two single-task models, and faster inference variants of the
multi-task model (batch-32 throughput and batch-1 latency against PyTorch fp32, and accuracy on both full test
sets paired against it), on this machine's CPU (its model and instruction sets are recorded with the table).

The models are the protocol's runs with seed 0, loaded from the run cache (trained if missing: run notebook 03
first to have them). Test sentences in their natural lengths, dynamic shapes; timings alternate the variants in
one process; best of ``--repeats``. Static int8 is calibrated on training sentences of both tasks.

    HF_HUB_OFFLINE=1 python benchmarks/serving.py [--sentences 1500] [--repeats 3] [--calibration 300]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mtl_utils import runtime
from mtl_utils.serving import variants as serving
from series import protocol, records
from series import serving_measurements as measure
from series.corpora import load_tasks
from series.report import markdown_table
from series.runs import train_or_load


def mixed_sentences(tasks, split: str, n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of ``split`` drawn from every task, shuffled (seeded)."""
    pooled = [text for task in tasks.values() for text in task[split]["text"]]
    order = np.random.default_rng(seed).permutation(len(pooled))
    return [pooled[i] for i in order[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=300, help="training sentences for static int8")
    parser.add_argument("--requests", type=int, default=200, help="single-sentence requests for latency")
    args = parser.parse_args()
    runtime.set_threads()
    tasks = load_tasks()
    models = {name: train_or_load(protocol.config(names), tasks, progress_bar=False).model
              for name, names in (("multi", ("topic", "sentiment")), ("topic", ("topic",)),
                                  ("sentiment", ("sentiment",)))}
    multi = serving.on_cpu(models["multi"])
    texts = mixed_sentences(tasks, "test", args.sentences)
    cpu = runtime.cpu()
    machine = f"CPU {cpu['model']} ({' '.join(cpu['flags']) or 'none of ' + ', '.join(runtime.SPEED_FLAGS)})"
    systems = measure.one_vs_two(multi, {"topic": models["topic"], "sentiment": models["sentiment"]}, texts[:300],
                                 texts, repeats=args.repeats)
    print(systems.round(2).to_string())
    setting = (f"{args.sentences} test sentences, batch 32, best of {args.repeats}, {torch.get_num_threads()} "
               f"threads, {machine}")
    records.save_benchmark("serving_one_vs_two", "Serving: one multi-task model against two single-task models",
                           "python benchmarks/serving.py", setting, markdown_table(systems.reset_index()))
    with tempfile.TemporaryDirectory() as folder:
        variants = measure.inference_variants(multi, Path(folder),
                                              mixed_sentences(tasks, "train", args.calibration))
        tokenized = multi.encoder.token_ids(texts)
        speed = measure.speed_table(variants, tokenized, repeats=args.repeats)
        latency = measure.latency_table(variants, tokenized, args.requests)
        tokens = {t: multi.encoder.token_ids(list(tasks[t]["test"]["text"])) for t in tasks}
        quality = measure.quality_table(variants, tasks, tokens)
    changes = quality.pivot(index="variant", columns="task", values="− fp32").add_prefix("accuracy − fp32, ")
    table = speed[["sentences/s (best)", "× baseline"]].join(latency).join(changes)
    table = table.loc[[v.name for v in variants]].reset_index()
    print(table.round(4).to_string(index=False))
    records.save_benchmark("serving_variants", "Serving: inference variants of the multi-task model",
                           "python benchmarks/serving.py",
                           f"{setting}; batch-1 latency over {args.requests} of them; static int8 calibrated on "
                           f"{args.calibration} training sentences; accuracy on the full test sets",
                           markdown_table(table, digits=3))


if __name__ == "__main__":
    main()
