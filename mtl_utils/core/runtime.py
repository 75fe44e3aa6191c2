"""Where the series computes, recorded with every run: :func:`device` (a CUDA GPU when there is one, else the CPU;
``MTL_DEVICE`` or an argument overrides it), :func:`set_threads` (PyTorch's intra-op threads, ``MTL_THREADS`` or every
core), :func:`cpu` (the CPU's model and the instruction sets that decide int8 and bf16 speed)."""
from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

import torch

DEVICE_ENV = "MTL_DEVICE"
THREADS_ENV = "MTL_THREADS"


def device(name: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``name``, else ``$MTL_DEVICE``, else ``cuda`` if available, else ``cpu`` (a
    ``torchrun`` process: its own ``cuda:$LOCAL_RANK``); a missing GPU is an error, never a silent fall-back."""
    choice = name or os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(choice)
    except RuntimeError as err:
        raise ValueError(f"unknown device {choice!r}: use 'cpu', 'cuda' or 'cuda:N' ({err})") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was asked for, but PyTorch sees no CUDA GPU here "
                         f"(torch {torch.__version__}); use 'cpu' or unset {DEVICE_ENV}")
    if chosen.type == "cuda" and chosen.index is None and "LOCAL_RANK" in os.environ:
        chosen = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # one GPU per launched process
        if chosen.index >= torch.cuda.device_count():
            raise ValueError(f"process LOCAL_RANK={chosen.index} has no GPU of its own: PyTorch sees "
                             f"{torch.cuda.device_count()}; launch at most that many processes per machine (if "
                             f"each process sees only its own GPU, set {DEVICE_ENV}=cuda:0)")
    return chosen


def set_threads(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads (``threads``, ``$MTL_THREADS`` or cores / ``$LOCAL_WORLD_SIZE``); return it."""
    cores = os.cpu_count() or 1
    value = threads or os.environ.get(THREADS_ENV) or max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}") from None
    if count < 1:
        raise ValueError(f"threads must be a positive integer, got {count}")
    torch.set_num_threads(count)
    return count


def describe(dev: torch.device | None = None) -> dict[str, str | int]:
    """The device and threads as they are now: what a notebook prints and stores with its numbers."""
    dev = dev or device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    return {"device": str(dev), "device name": name, "torch threads": torch.get_num_threads()}


SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16")


@cache
def cpu() -> dict[str, object]:
    """``{"model": ..., "flags": [...]}``: the CPU's model name and which :data:`SPEED_FLAGS` it reports."""
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {"model": model, "flags": [f for f in SPEED_FLAGS if f in flags]}
