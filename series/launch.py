"""Train one run of the series' protocol from the command line, on one process or on several.

One process::

    python -m series.launch --tasks topic sentiment --seed 0

Two processes on this machine (gloo between CPUs, one thread each), the same run::

    torchrun --nproc-per-node 2 -m series.launch --tasks topic sentiment

Eight GPUs on each of two machines (NCCL; run on both, ``host0`` being the first)::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint host0:29500 \\
        -m series.launch --tasks topic sentiment --batch-size 64

``--batch-size`` is the *global* mini-batch: every step, each process computes its share of it and
DistributedDataParallel averages the gradients (:mod:`mtl_utils.training.distributed`), so a run on several
processes trains what one process trains: weight for weight up to floating-point rounding with dropout off,
in distribution with it on (every process draws its own masks). A larger global batch needs its learning
rate (``--lr``, ``--head-lr``) checked on the validation set. Each process uses its share of the machine's
cores unless ``MTL_THREADS`` says otherwise. The main process writes the run cache, the summary (``--out``)
and prints the test scores. Taught in notebook 07.

Every flag is checked before any work (tasks of the series, sizes and budgets of at least one, rates, seeds,
a model folder that exists, an ``--out`` that can be written): a bad one ends with a one-line
``launch: error: ...`` and exit status 2. A run that fails later (a model that does not load, a diverged run)
ends with a one-line error and exit status 1.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from mtl_utils.core import runtime
from mtl_utils.core.digests import write_atomic, write_text_atomic
from mtl_utils.data.tasks import Task
from mtl_utils.training import distributed
from mtl_utils.training.config import SAMPLING_STRATEGIES, TrainConfig
from mtl_utils.training.trainer import TrainResult, train
from series import protocol
from series.corpora import LABELS, LOADERS
from series.runs import train_or_load

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")  # "name" or "owner/name"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``launch: error: ...``, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"launch: error: {' '.join(message.split())} (see --help)\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` lists it), every flag checked (:func:`check_args`)."""
    cli = _Parser(prog="python -m series.launch", description=__doc__.split("\n")[0],
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--tasks", nargs="+", default=["topic", "sentiment"],
                     help=f"tasks to train, of {', '.join(LOADERS)} (default: topic sentiment)")
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--model", default=None, help="model id or folder (default: the bundled all-MiniLM-L6-v2)")
    cli.add_argument("--quick", action="store_true", help="the protocol's quick budget and data")
    cli.add_argument("--examples", type=int, default=None, help="training examples in all (default: protocol)")
    cli.add_argument("--batch-size", type=int, default=protocol.BATCH_SIZE, help="the global mini-batch")
    cli.add_argument("--sampling", default="uniform", choices=SAMPLING_STRATEGIES,
                     help="task sampling (default: uniform, i.e. round-robin)")
    cli.add_argument("--frozen-layers", type=int, default=0, help="freeze embeddings and the bottom k layers")
    cli.add_argument("--gradual-unfreezing", action="store_true", help="unfreeze one layer per round, top down")
    cli.add_argument("--rounds", type=int, default=1, help="validations (the best round is kept)")
    cli.add_argument("--lr", type=float, default=protocol.LR, help="the encoder's peak learning rate")
    cli.add_argument("--head-lr", type=float, default=protocol.HEAD_LR, help="the heads' peak learning rate")
    cli.add_argument("--warmup-ratio", type=float, default=0.1, help="share of the steps spent warming up")
    cli.add_argument("--dropout", type=float, default=None, help="heads' dropout (default: protocol's 0.1)")
    cli.add_argument("--train-size", type=int, default=None, help="a stratified subset of each training set")
    cli.add_argument("--eval-size", type=int, default=None, help="... and of each validation and test set")
    cli.add_argument("--no-cache", action="store_true", help="train without reading or writing the run cache")
    cli.add_argument("--force", action="store_true", help="retrain even if the run is cached")
    cli.add_argument("--out", type=Path, default=None,
                     help="folder for summary.json and the final weights (weights.pt), written by the main process")
    args = cli.parse_args(argv)
    problem = check_args(args)
    if problem:
        cli.error(problem)
    return args


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with ``args`` (one line naming the flag and what it accepts), or ``None``; reads nothing
    but the file system's view of ``--model`` and ``--out``."""
    unknown = [t for t in args.tasks if t not in LOADERS]
    if unknown:
        return f"--tasks: unknown task {unknown[0]!r}; the series' tasks are {', '.join(LOADERS)}"
    if len(set(args.tasks)) != len(args.tasks):
        return f"--tasks {' '.join(args.tasks)}: a task is named twice; name each once"
    classes = max(len(LABELS[t]) for t in args.tasks)  # a stratified subset keeps one example per class
    for flag, value, low, high in (
            ("--seed", args.seed, 0, 2 ** 32 - 1), ("--examples", args.examples, 1, None),
            ("--batch-size", args.batch_size, 1, None), ("--rounds", args.rounds, 1, None),
            ("--frozen-layers", args.frozen_layers, 0, None), ("--train-size", args.train_size, classes, None),
            ("--eval-size", args.eval_size, classes, None)):
        if value is not None and not (low <= value and (high is None or value <= high)):
            wanted = f"in {low}..{high}" if high is not None else f"of at least {low}"
            per_class = " (one example per class of every task)" if flag.endswith("-size") else ""
            return f"{flag} must be an integer {wanted}{per_class}, got {value}"
    for flag, value, low, high, closed in (
            ("--lr", args.lr, 0, math.inf, False), ("--head-lr", args.head_lr, 0, math.inf, False),
            ("--warmup-ratio", args.warmup_ratio, 0, 1, True), ("--dropout", args.dropout, 0, 1, True)):
        if value is not None and not (math.isfinite(value) and (value >= low if closed else value > low)
                                      and (value < high if flag == "--dropout" else value <= high)):
            wanted = {"--warmup-ratio": "in 0..1", "--dropout": "at least 0 and below 1"}.get(flag, "above 0")
            return f"{flag} must be a finite number {wanted}, got {value}"
    return _check_model(args.model) or _check_out(args.out) or _check_config(args)


def _check_model(model: str | None) -> str | None:
    """A ``--model`` that names a local folder (a path, not a hub id) must be one."""
    if not model:
        return None
    path = Path(model)
    if path.is_dir():
        return None
    if path.exists():
        return f"--model {model}: a file, not a model folder (a folder with config.json, or a hub id)"
    if not _HUB_ID.match(model) or ".." in model:  # a path ("./x", "/x", "a/b/c", "~/x"), not "owner/name"
        return f"--model {model}: no such model folder (a local folder, or a hub id such as owner/name)"
    return None


def _check_out(out: Path | None) -> str | None:
    """``--out`` must be a folder this process can make or write into."""
    if out is None:
        return None
    if out.exists() and not out.is_dir():
        return f"--out {out}: a file is there; --out is a folder (for summary.json and weights.pt)"
    ancestor = out.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"--out {out}: {ancestor} is a file, so the folder cannot be made"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"--out {out}: {ancestor} is not writable"
    return None


def _check_config(args: argparse.Namespace) -> str | None:
    """The run's configuration must validate, and have at least a step per round."""
    try:
        config = config_from(args)
    except ValueError as err:
        return str(err)
    steps = config.steps({})  # the protocol always sets examples: no data needed
    if config.rounds > steps:
        return (f"--rounds {config.rounds} is more than the run's {steps} steps: choose at most {steps} rounds or "
                "more --examples")
    return None


def tasks_from(args: argparse.Namespace) -> dict[str, Task]:
    """The tasks ``args`` name, cut to ``--train-size`` / ``--eval-size`` (stratified) when given."""
    sizes = {split: size for split, size in (("train", args.train_size), ("validation", args.eval_size),
                                             ("test", args.eval_size)) if size}
    return {name: LOADERS[name](quick=args.quick, sizes=sizes) for name in args.tasks}


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The protocol's run for ``args`` (:func:`series.protocol.config` with its changes)."""
    changes = {"batch_size": args.batch_size, "sampling": args.sampling, "seed": args.seed,
               "frozen_layers": args.frozen_layers, "gradual_unfreezing": args.gradual_unfreezing,
               "rounds": args.rounds, "lr": args.lr, "head_lr": args.head_lr, "warmup_ratio": args.warmup_ratio}
    if args.examples:
        changes["examples"] = args.examples
    if args.dropout is not None:
        changes["dropout"] = args.dropout
    return protocol.config(tuple(args.tasks), quick=args.quick, model=args.model, **changes)


def run(args: argparse.Namespace) -> tuple[TrainResult, dict]:
    """Train (or load) the run ``args`` describe on this process's part of the world; its summary."""
    where = distributed.init()
    runtime.set_threads()
    tasks, config = tasks_from(args), config_from(args)
    start = time.perf_counter()
    if args.no_cache:
        result = train(config, tasks, progress_bar=where.main)
    else:
        result = train_or_load(config, tasks, force=args.force, progress_bar=where.main)
    seconds = time.perf_counter() - start
    steps = config.steps(tasks)
    summary = {"processes": where.size, "threads per process": torch.get_num_threads(),
               "backend": dist.get_backend() if where.size > 1 else None, "device": str(result.model.encoder.device),
               "global batch": config.batch_size, "steps": steps, "cached": result.cached,
               "trainable parameters": sum(p.numel() for p in result.model.parameters() if p.requires_grad),
               "train seconds": result.train_seconds, "seconds": round(seconds, 3),
               "steps per second": round(steps / result.train_seconds, 3) if result.train_seconds else None,
               "all-reduce seconds": allreduce_seconds(result.model) if where.size > 1 else 0.0,
               "losses": result.steps.to_dict(orient="list"), "best round": result.best_round,
               "test answers": {t: hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest()[:16]
                                for t, p in result.predictions.items()},
               "test": result.test[["task", "accuracy", "macro-F1"]].to_dict(orient="records")}
    return result, summary


def allreduce_seconds(model: torch.nn.Module, repeats: int = 5) -> float:
    """Median seconds of one all-reduce of a float32 buffer as large as the trainable parameters (what DDP
    sends every step, in buckets that overlap the backward pass)."""
    numel = sum(p.numel() for p in model.parameters() if p.requires_grad)
    device = next(model.parameters()).device
    buffer = torch.zeros(numel, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)  # NCCL returns at once
    times = []
    for _ in range(repeats):
        dist.barrier()
        sync(device)
        start = time.perf_counter()
        dist.all_reduce(buffer)
        sync(device)
        times.append(time.perf_counter() - start)
    return round(sorted(times)[len(times) // 2], 4)


def write(result: TrainResult, summary: dict, out: Path) -> None:
    """``out/summary.json`` and ``out/weights.pt`` (the model's final state dict, on the CPU)."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    write_atomic(out / "weights.pt", lambda tmp: torch.save(state, tmp))
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``; the exit status (a bad flag exits with 2 before any work)."""
    args = parse_args(argv)
    try:
        result, summary = run(args)
        if distributed.world().main:
            if args.out:
                write(result, summary, args.out)
            print(result.test.to_string(index=False))
            print(f"{summary['processes']} process(es), {summary['steps']} steps, "
                  f"{summary['train seconds']} s training")
    except (ValueError, KeyError, OSError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"launch: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
