"""Training seconds with and without the frozen-layer cache (mtl_utils.training.frozen_cache).

For k = 3, 4, 5 frozen encoder layers (embeddings frozen too) and heads-only (k = 6 of 6, the backbone frozen),
the same multi-task run (same real data, batches, seed and steps) is trained twice: once running the frozen
layers on every step, once on their cached outputs; full fine-tuning (k = 0) is the reference. Times are the
training loop alone (CPU seconds of this process by default, robust on a shared machine); building the cache is a
one-off cost reported beside them. The modes alternate, best of ``--repeats``.

    HF_HUB_OFFLINE=1 python benchmarks/freezing_cache.py [--train 128] [--repeats 2]
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from mtl_utils import TrainConfig, frozen_cache, train
from mtl_utils.training import trainer as training
from series import records
from series.corpora import load_tasks
from series.report import markdown_table


class _CpuClock:
    """Stands in for the ``time`` module inside the training loop and the cache builder, so their timings are
    this process's CPU seconds."""

    perf_counter = staticmethod(time.process_time)


def seconds(config: TrainConfig, data) -> tuple[float, float]:
    """Training-loop seconds and one-off cache seconds of one run (no cache reused across runs)."""
    frozen_cache.clear_shared()
    history = train(config, data, progress_bar=False).history.drop_duplicates("round")
    return float(history["train seconds"].sum()), float(history["cache seconds"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=128, help="training texts per task")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    if args.clock == "cpu":
        training.time = frozen_cache.time = _CpuClock()
    data = load_tasks(sizes={"train": args.train, "validation": 16, "test": 16})
    base = TrainConfig(examples=4 * args.train, batch_size=8, seed=0, warmup_ratio=0.0)
    rows = []
    full = min(seconds(base, data)[0] for _ in range(args.repeats))
    rows.append({"frozen": "nothing (k = 0, full fine-tuning)", "without cache (s)": full, "with cache (s)": None,
                 "cache build (s)": None, "cache speed-up": None, "× full fine-tuning": 1.0})
    for k, name in ((3, "embeddings + 3 layers"), (4, "embeddings + 4 layers"), (5, "embeddings + 5 layers"),
                    (6, "whole backbone (heads only)")):
        runs = {"without": [], "with": [], "build": []}
        for _ in range(args.repeats):
            runs["without"].append(seconds(base.replace(frozen_layers=k, frozen_cache=False), data)[0])
            train_s, build_s = seconds(base.replace(frozen_layers=k), data)
            runs["with"].append(train_s)
            runs["build"].append(build_s)
        without, with_cache = min(runs["without"]), min(runs["with"])
        rows.append({"frozen": f"{name} (k = {k})", "without cache (s)": without, "with cache (s)": with_cache,
                     "cache build (s)": min(runs["build"]), "cache speed-up": without / with_cache,
                     "× full fine-tuning": full / with_cache})
    table = pd.DataFrame(rows)
    setting = (f"{2 * args.train} real texts ({args.train} per task), {base.steps(data)} steps of batch 8, "
               f"{args.clock} seconds, best of {args.repeats}, torch {torch.__version__}, "
               f"{torch.get_num_threads()} thread(s)")
    print(setting)
    print(table.to_string(index=False))
    records.save_benchmark("freezing_cache", "Freezing: training with the frozen bottom computed once",
                           "python benchmarks/freezing_cache.py", setting,
                           markdown_table(table.astype(object).fillna("–")))


if __name__ == "__main__":
    main()
