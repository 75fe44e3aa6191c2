"""What notebook 07 runs: the launch command on one process or several, and the comparison of what they
trained. The training itself is :mod:`series.launch` under ``torchrun``; this module only starts
it (a fresh process per run, as a reader would from a shell) and reads back what its main process wrote.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from mtl_utils.core import paths
from mtl_utils.modeling.backbone import resolve_model

DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


def without_dropout(model: str | None, folder: str | Path) -> Path:
    """A copy of ``model``'s folder whose configuration turns the encoder's dropout off (the weights are
    linked, not copied): with dropout on, two runs draw different masks, so they can only agree in
    distribution, never weight for weight."""
    source, folder = Path(resolve_model(model)), Path(folder)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source} has no config.json: pass a local model folder (or None for the default)")
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = folder / item.name
        if item.name == "config.json" or target.exists():
            continue
        target.symlink_to(item.resolve(), target_is_directory=item.is_dir())
    config = json.loads((source / "config.json").read_text())
    config.update({name: 0.0 for name in DROPOUT_FIELDS if name in config})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(args: Sequence[str], processes: int = 1) -> list[str]:
    """The command line of one run: the launch module alone, or under ``torchrun`` with ``processes``."""
    launch = ["-m", "series.launch", *args]
    if processes == 1:
        return [sys.executable, *launch]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *launch]


def launch(args: Sequence[str], out: str | Path, processes: int = 1, threads: int = 1,
           timeout: float = 1800) -> dict:
    """Run the launch command with ``processes`` processes of ``threads`` threads each, writing into
    ``out`` (emptied first); return the summary its main process wrote. A failed run raises
    ``RuntimeError`` with the end of its output."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "MTL_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = command([*args, "--out", str(out)], processes)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          start_new_session=True) as child:  # its own group: a timeout stops every worker
        try:
            output, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise RuntimeError(f"the run took longer than {timeout:.0f} s and was stopped: {' '.join(cmd)}") from None
    if child.returncode != 0 or not (out / "summary.json").is_file():
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise RuntimeError(f"the run failed (exit {child.returncode}): {' '.join(cmd)}\n{tail}")
    return {**json.loads((out / "summary.json").read_text()), "folder": str(out)}


def weights(summary: dict) -> dict[str, torch.Tensor]:
    """The final weights a run wrote (its state dict, on the CPU)."""
    return torch.load(Path(summary["folder"]) / "weights.pt", map_location="cpu", weights_only=True)


def weight_difference(a: dict, b: dict) -> dict[str, float]:
    """How far apart two runs' final weights are: the largest absolute difference of any weight."""
    wa, wb = weights(a), weights(b)
    if wa.keys() != wb.keys():
        raise ValueError(f"the runs trained different models: {sorted(wa.keys() ^ wb.keys())[:5]}")
    return {"max |difference|": max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)}


def loss_curve(summary: dict) -> pd.DataFrame:
    """A run's per-step losses (step, task, loss)."""
    return pd.DataFrame(summary["losses"])[["step", "task", "loss"]]


ARMS = {  # name: (processes, threads per process, global batch factor)
    "1 process × 1 thread": (1, 1, 1),
    "2 processes × 1 thread": (2, 1, 1),
    "1 process × 2 threads": (1, 2, 1),
    "1 process × 1 thread, half batch": (1, 1, 0.5),
}
PAIRS = {  # what each comparison asks: (arm A, arm B)
    "2 processes vs 1 (same global batch)": ("2 processes × 1 thread", "1 process × 1 thread"),
    "2 threads vs 1 (one process)": ("1 process × 2 threads", "1 process × 1 thread"),
    "half batch vs full (yardstick)": ("1 process × 1 thread, half batch", "1 process × 1 thread"),
}


def compare_processes(args: Sequence[str], batch_size: int, folder: str | Path) -> dict[str, pd.DataFrame]:
    """Train the run ``args`` describe in every arm of :data:`ARMS`, one after the other (nothing else on
    the cores); tables ``runs`` (speed, test accuracy), ``agreement`` (:data:`PAIRS`: final weights and
    losses) and ``losses`` (per step, per arm)."""
    summaries = {}
    for name, (processes, threads, factor) in ARMS.items():
        run_args = [*args, "--batch-size", str(max(1, round(batch_size * factor))), "--no-cache"]
        summaries[name] = launch(run_args, Path(folder) / f"arm{len(summaries)}", processes, threads)
    runs = pd.DataFrame([_run_row(name, s) for name, s in summaries.items()]).set_index("run")
    agreement = []
    for pair, (a, b) in PAIRS.items():
        la, lb = loss_curve(summaries[a])["loss"], loss_curve(summaries[b])["loss"]
        same_steps = len(la) == len(lb)  # the half batch takes twice the steps: no step-by-step loss pairs
        agreement.append({"comparison": pair, **weight_difference(summaries[a], summaries[b]),
                          "max |loss difference|": float((la - lb).abs().max()) if same_steps else float("nan"),
                          "same test answers": summaries[a]["test answers"] == summaries[b]["test answers"]})
    losses = pd.concat([loss_curve(s).assign(run=name) for name, s in summaries.items()], ignore_index=True)
    return {"runs": runs, "agreement": pd.DataFrame(agreement).set_index("comparison"), "losses": losses}


def _run_row(name: str, summary: dict) -> dict:
    per_step = summary["train seconds"] / summary["steps"]
    row = {"run": name, "processes": summary["processes"], "threads": summary["threads per process"],
           "global batch": summary["global batch"], "steps": summary["steps"], "s per step": per_step,
           "all-reduce s": summary["all-reduce seconds"], "trainable parameters": summary["trainable parameters"]}
    return {**row, **{f"{r['task']} accuracy": r["accuracy"] for r in summary["test"]}}
