"""Training on several processes with PyTorch's own engine: ``torchrun`` starts the processes,
``torch.distributed`` connects them (gloo on CPUs, NCCL on GPUs) and
:class:`~torch.nn.parallel.DistributedDataParallel` (DDP) averages the gradients. Nothing here is a home-made
engine: this module only says who a process is and how the :class:`~mtl_utils.training.trainer.Trainer` shares
the work.

How a step is shared (taught in notebook 06): every process draws the *same* task and the same global
mini-batch (the samplers are seeded alike), and computes the loss of its own contiguous share of it
(:func:`shard`). Its loss is the *sum* over its share divided by the global batch size, times the number of
processes, so DDP's average of the gradients is exactly the gradient of the global batch's mean loss, even
when the shares differ in size. One process started without ``torchrun`` is a world of one: nothing changes.

Launch (2 processes on this machine; ``--nnodes``/``--rdzv-endpoint`` for several machines)::

    torchrun --nproc-per-node 2 -m mtl_utils.training.launch --tasks topic sentiment
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..core import runtime


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
    """Join the process group ``torchrun`` set up (a no-op when not launched, or already joined) and pin a
    GPU process to its own GPU (``cuda:$LOCAL_RANK``). Returns :func:`world`."""
    if not launched() or dist.is_initialized():
        return world()
    dev = runtime.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend(dev))
    return world()


def own_dropout(seed: int, where: World | None = None) -> None:
    """Give every process but the main one its own stream of random numbers (dropout masks), derived from
    ``seed``; the main process keeps the stream a single process has."""
    where = where or world()
    if where.rank:
        torch.manual_seed(seed + 1_000_003 * where.rank)


def shard(indices: np.ndarray, where: World | None = None) -> np.ndarray:
    """This process's contiguous share of a global mini-batch (sizes differ by at most one; empty when the
    batch has fewer rows than there are processes)."""
    where = where or world()
    return indices if where.size == 1 else np.array_split(indices, where.size)[where.rank]


def share(indices: np.ndarray, where: World | None = None) -> tuple[np.ndarray, float]:
    """This process's rows of a global mini-batch and the weight that turns the sum of their losses into their
    part of the global mean (``processes / global batch size``). A process left without rows (a last batch
    smaller than the world) gets one row at weight 0, so every process still makes the same collective calls."""
    where = where or world()
    mine = shard(indices, where)
    if not len(mine):
        return indices[:1], 0.0
    return mine, where.size / len(indices)


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
