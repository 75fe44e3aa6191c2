"""Optimizer parameter groups and the learning-rate schedule."""
from __future__ import annotations

import torch
from torch import nn

NO_DECAY_HINTS = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def no_weight_decay(name: str) -> bool:
    """Biases and LayerNorm weights are not decayed (the BERT convention)."""
    return any(hint in name for hint in NO_DECAY_HINTS)


def param_groups(model: nn.Module, lr: float, weight_decay: float, head_lr: float | None = None,
                 layer_decay: float | None = None) -> list[dict]:
    """AdamW groups: encoder at ``lr``, heads at ``head_lr`` (default ``lr``); no decay for biases and
    LayerNorm weights; frozen parameters (``requires_grad=False``) left out. Empty groups are dropped."""
    if layer_decay is not None:
        raise NotImplementedError("layer-wise learning-rate decay arrives with notebook 04")
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "heads" if name.startswith("heads.") else "encoder"
        decay = not no_weight_decay(name)
        group = groups.setdefault((part, decay), {
            "name": f"{part}{'' if decay else ' (no decay)'}",
            "params": [],
            "lr": (head_lr or lr) if part == "heads" else lr,
            "weight_decay": weight_decay if decay else 0.0,
        })
        group["params"].append(param)
    return list(groups.values())


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 to each group's rate, then linear decay to 0; every group scales alike."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
