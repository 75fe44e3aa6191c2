"""Seconds per training epoch with and without the frozen-layer cache (mtl_utils.frozen_cache).

For k = 0, 3, 4, 5 frozen encoder layers (embeddings frozen whenever k > 0) and heads-only (the whole
backbone frozen: k = 6 of 6 for the bundled all-MiniLM-L6-v2), the same multi-task run (same real data,
batches, seed and steps) is trained through ``mtl_utils.training.train`` twice: once running the frozen
layers on every step, once on their cached outputs. Per-epoch times are the training loop alone (no
validation); building the cache is a one-off cost reported beside them.

Goals (issue "Notebook 03"): heads-only at least 20x faster per epoch than full fine-tuning (k = 0); k = 4
at least 1.5x faster with the cache than the same freezing without it.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/freezing_cache.py [--train 128] [--epochs 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd
import torch

from mtl_utils import frozen_cache, load_tasks, training
from mtl_utils.frozen_cache import clear_shared
from mtl_utils.training import TrainConfig, train


class _CpuClock:
    """Stands in for the ``time`` module inside mtl_utils' training loop and cache builder so that their
    timings are this process's CPU seconds: on a shared machine wall-clock time mostly measures the other
    processes; with one thread, CPU seconds are what the run itself costs (and match wall time when idle)."""

    perf_counter = staticmethod(time.process_time)


def epoch_seconds(config: TrainConfig, data) -> tuple[list[float], float]:
    """Training seconds of each epoch (the loop's own timing, validation excluded) and the one-off cache
    seconds (train, validation and test caches of this run)."""
    clear_shared()  # every run builds its own cache: no reuse across runs in this benchmark
    result = train(config, data, progress=False)
    history = result.history.drop_duplicates("epoch")
    cache = float(history["cache seconds"].sum()) if "cache seconds" in history else 0.0
    return list(history["train seconds"]), cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=128, help="training texts per task")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per setting and mode")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this process's CPU seconds (robust on a shared machine); wall: elapsed time")
    args = parser.parse_args()
    if args.clock == "cpu":
        training.time = frozen_cache.time = _CpuClock()

    data = load_tasks(sizes={"train": args.train, "validation": 16, "test": 16})
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length, seed=0,
                       warmup_ratio=0.0)
    settings = {"k=0 (full fine-tuning)": 0, "k=3": 3, "k=4": 4, "k=5": 5, "heads only (k=6, backbone frozen)": 6}
    rows = []
    start = time.time()
    for name, k in settings.items():
        modes = {"without cache": dataclasses.replace(base, frozen_layers=k, frozen_cache=False)}
        if k > 0:  # k = 0 has nothing frozen, nothing to cache
            modes["with cache"] = dataclasses.replace(base, frozen_layers=k)
        epochs: dict[str, list[float]] = {mode: [] for mode in modes}
        builds = []
        for _ in range(args.repeats):  # the modes alternate, so both see the same machine state
            for mode, config in modes.items():
                seconds, cache = epoch_seconds(config, data)
                epochs[mode] += seconds
                builds += [cache] if mode == "with cache" else []
        row = {"setting": name, "k": k}
        for mode in ("without cache", "with cache"):
            times = epochs.get(mode) or epochs["without cache"]
            row[f"s/epoch {mode} (best)"] = min(times)
            row[f"s/epoch {mode} (median)"] = float(np.median(times))
        row["cache build s"] = float(np.median(builds)) if builds else 0.0
        rows.append(row)
        print(f"  {name}: best {row['s/epoch without cache (best)']:.2f} s/epoch without cache, "
              f"{row['s/epoch with cache (best)']:.3f} with (cache built in {row['cache build s']:.1f} s)", flush=True)
    table = pd.DataFrame(rows).set_index("setting")
    full = table["s/epoch without cache (best)"].iloc[0]
    table["cache speed-up (same k)"] = table["s/epoch without cache (best)"] / table["s/epoch with cache (best)"]
    table["cache speed-up (median)"] = table["s/epoch without cache (median)"] / table["s/epoch with cache (median)"]
    table["speed-up vs full fine-tuning"] = full / table["s/epoch with cache (best)"]
    steps = int(np.ceil(args.train / args.batch_size)) * 2
    print(f"\n{2 * args.train} real training texts ({args.train} per task), {steps} steps of batch {args.batch_size} "
          f"per epoch, max_length {args.max_length}, {args.epochs} epochs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); {args.clock} seconds; best and median of {args.repeats} alternating runs x {args.epochs} "
          f"epochs; total {time.time() - start:.0f} s wall")
    print(table.drop(columns="k").T.to_string(float_format="{:.3f}".format))
    heads = table["speed-up vs full fine-tuning"].iloc[-1]
    k4 = table.loc["k=4", "cache speed-up (same k)"]
    print(f"\nheads-only vs full fine-tuning: {heads:.0f}x per epoch (best) (goal >= 20x): {'met' if heads >= 20 else 'NOT met'}")
    print(f"k=4 with vs without the cache: {k4:.2f}x per epoch (best;"
          f" median {table.loc['k=4', 'cache speed-up (median)']:.2f}x) (goal >= 1.5x): {'met' if k4 >= 1.5 else 'NOT met'}")
    amortised = (table.loc["k=4", "s/epoch without cache (median)"] * args.epochs
                 / (table.loc["k=4", "s/epoch with cache (median)"] * args.epochs + table.loc["k=4", "cache build s"]))
    print(f"k=4 over {args.epochs} epochs including the one-off cache build: {amortised:.2f}x")


if __name__ == "__main__":
    main()
