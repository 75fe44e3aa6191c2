"""Training on several processes: ``torchrun`` starts them, ``torch.distributed`` connects them (gloo on CPUs, NCCL on
GPUs), :class:`~torch.nn.parallel.DistributedDataParallel` (DDP) averages the gradients; :func:`processes` gives the
Trainer a :class:`OneProcess` or :class:`ManyProcesses`. Taught in notebook 07: every process draws the *same* task and
global mini-batch and divides the *summed* loss of its share (:func:`shard`) by ``global batch size / processes``: DDP
averages to the global mean loss's gradient; dropout differs per process (:func:`own_dropout`). Launch (one machine)::

    torchrun --nproc-per-node 2 -m series.launch --tasks topic sentiment
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from mtl_utils.core import runtime


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: ``rank`` of ``size`` (0 of 1 when alone)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes (run cache, checkpoints, records) and reports."""
        return self.rank == 0


def world() -> World:
    """This process's :class:`World`: from the initialised process group, else a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launched() -> bool:
    """Whether ``torchrun`` (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def backend(device: torch.device) -> str:
    """The collective backend for ``device``: NCCL between GPUs, gloo between CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def init(device: str | None = None) -> World:
    """Join ``torchrun``'s process group (no-op if not launched or joined); a GPU process gets ``cuda:$LOCAL_RANK``."""
    if not launched() or dist.is_initialized():
        return world()
    dev = runtime.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend(dev))
    return world()


def own_dropout(seed: int, where: World | None = None) -> None:
    """Give every process but the main one its own random stream (dropout masks), derived from ``seed``."""
    where = where or world()
    if where.rank:
        torch.manual_seed(seed + 1_000_003 * where.rank)


def shard(indices: np.ndarray, where: World | None = None) -> np.ndarray:
    """This process's contiguous share of a global mini-batch (sizes differ by at most one; may be empty)."""
    where = where or world()
    return indices if where.size == 1 else np.array_split(indices, where.size)[where.rank]


def share(indices: np.ndarray, where: World | None = None) -> tuple[np.ndarray, float]:
    """This process's rows of a global mini-batch and their loss divisor (``global batch size / processes``); a process
    left without rows gets one row and divisor ``inf`` (weight 0), so all make the same collective calls."""
    where = where or world()
    mine = shard(indices, where)
    if not len(mine):
        return indices[:1], math.inf
    return mine, len(indices) / where.size


def collective_device() -> torch.device:
    """Where a tensor for a collective call must live: the process's GPU under NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over every process (a copy; the tensor itself when alone)."""
    if world().size == 1:
        return values
    total = values.detach().clone()
    dist.all_reduce(total)
    return total


def broadcast(value, where: World | None = None):
    """The main process's ``value``, on every process (any picklable object)."""
    if (where or world()).size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every process gets here (a no-op when alone)."""
    if world().size > 1:
        dist.barrier()


def _stacked(losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The tasks' losses, detached, as one float tensor (one collective call carries them all)."""
    return torch.stack([v.detach().float() for v in losses.values()])


class OneProcess:
    """One process trains: every row of a step's batch is its own, each task's loss is the batch's mean."""

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, float]:
        """All of the batch, and its size: the divisor that makes the summed loss the batch's mean."""
        return indices, float(len(indices))

    def loss_values(self, losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Each task's loss as a number."""
        return dict(zip(losses, _stacked(losses).tolist()))

    def wrap(self, step_loss: nn.Module, sampling: str, tasks: tuple[str, ...],
             current: nn.Module | None = None) -> nn.Module:
        """The step's loss module as it is."""
        return step_loss


class ManyProcesses(OneProcess):
    """Several processes (``torchrun``): each its share (:func:`share`), losses summed, DDP averaging the gradients."""

    def __init__(self, where: World) -> None:
        self.world = where

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, float]:
        """This process's rows and their divisor (:func:`share`)."""
        return share(indices, self.world)

    def loss_values(self, losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Each task's loss on the whole (global) batch, from every process's weighted share of it."""
        local = _stacked(losses) / self.world.size
        return dict(zip(losses, sum_over_processes(local).tolist()))

    def wrap(self, step_loss: nn.Module, sampling: str, tasks: tuple[str, ...],
             current: nn.Module | None = None) -> nn.Module:
        """``step_loss`` in DDP, which fixes the trainable parameters when it wraps (``current`` kept while they stay
        the same); unless every step trains every head (summed, or one task), it looks for unused parameters."""
        model = step_loss.model
        trainable = frozenset(name for name, p in model.named_parameters() if p.requires_grad)
        if current is not None and getattr(current, "trainable", None) == trainable:
            return current
        heads = {t for t, head in model.heads.items() if any(p.requires_grad for p in head.parameters())}
        every_step_all = (sampling == "summed" or len(tasks) == 1) and heads <= set(tasks)
        device = model.encoder.device
        wrapped = nn.parallel.DistributedDataParallel(
            step_loss, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=not every_step_all, forward_sync_buffers=False)
        wrapped.trainable = trainable
        return wrapped


def processes(where: World | None = None) -> OneProcess:
    """:class:`OneProcess` when this process trains alone, else :class:`ManyProcesses`."""
    where = where or world()
    return ManyProcesses(where) if where.size > 1 else OneProcess()
