"""Optimizer parameter groups (uniform or layer-wise by depth) and the learning-rate schedule.

Layer-wise learning-rate decay (the ELECTRA / ULMFiT convention): the task heads train at ``head_lr``,
the top transformer layer (and anything above it, such as a projection) at the base rate ``lr``, each
layer below at ``xi`` times the rate of the layer above it, and the embeddings lowest::

    heads        head_lr (default lr)
    layer L      lr            (and parameters above the layers, e.g. a projection)
    layer L-1    lr * xi
    ...
    layer 1      lr * xi ** (L - 1)
    embeddings   lr * xi ** L

The layers are found from the model (its largest ``nn.ModuleList`` of blocks), so any BERT-like encoder
works, whatever its depth.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

NO_DECAY_HINTS = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
HEAD_PREFIX = "heads."


def no_weight_decay(name: str) -> bool:
    """Biases and LayerNorm weights are not decayed (the BERT convention)."""
    return any(hint in name for hint in NO_DECAY_HINTS)


def check_layer_decay(layer_decay: float | None) -> None:
    """``layer_decay`` (xi) must be ``None`` (uniform) or in (0, 1]: 1 is uniform, smaller slows lower layers."""
    if layer_decay is None:
        return
    if isinstance(layer_decay, bool) or not isinstance(layer_decay, (int, float)):
        raise TypeError(f"layer_decay must be a number in (0, 1] or None, got {type(layer_decay).__name__}")
    if not 0.0 < float(layer_decay) <= 1.0:
        raise ValueError(
            f"layer_decay must be in (0, 1], got {layer_decay}: 1 is a uniform rate, 0.8 multiplies each layer's "
            "rate by 0.8 going down; 0 would freeze every layer below the top (freeze them instead), and a value "
            "above 1 would make lower layers learn faster than upper ones"
        )


@dataclass
class DepthUnit:
    """A block of parameters that shares one learning rate under layer-wise decay.

    ``depth`` counts steps below the top layer: heads and the top layer are 0, the layer below 1, ...,
    the embeddings ``L`` (the number of layers). Heads have ``kind="head"`` and take ``head_lr``.
    """

    name: str
    kind: str  # "head", "top", "layer" or "embeddings"
    depth: int
    modules: list[str] = field(default_factory=list)
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)


def find_layer_list(model: nn.Module, head_prefix: str = HEAD_PREFIX) -> tuple[str, nn.ModuleList]:
    """The transformer's stack of layers: the ``nn.ModuleList`` (outside the heads) with most parameters.

    For the series' model that is ``encoder.transformer.encoder.layer``; for a bare ``BertModel``
    ``encoder.layer``; it finds GPT-2's ``h`` or T5's ``block`` the same way. Raises ``ValueError`` when the
    model has no such list.
    """
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0 or (name + ".").startswith(head_prefix):
            continue
        size = sum(p.numel() for p in module.parameters())
        if best is None or size > best[0]:
            best = (size, name, module)
    if best is None:
        raise ValueError(
            f"found no stack of layers (an nn.ModuleList) in {type(model).__name__}: layer-wise learning rates "
            "need a layered encoder"
        )
    return best[1], best[2]


def depth_units(model: nn.Module, head_prefix: str = HEAD_PREFIX) -> list[DepthUnit]:
    """All parameters (trainable or not) sorted into units from the top down: each head, the parameters
    above the layers (if any), the layers from last to first, the embeddings.

    A parameter belongs to a layer if it lives in the layer list; outside it, to the embeddings if it comes
    before the layers in the model's parameter order and to "above the layers" if it comes after (a
    projection, a pooler, a final LayerNorm). Heads are the parameters whose names start with ``head_prefix``.
    """
    prefix, layers = find_layer_list(model, head_prefix)
    n = len(layers)
    heads: dict[str, DepthUnit] = {}
    layer_units = [DepthUnit(f"layer {i + 1}", "layer", n - 1 - i, [f"{prefix}.{i}"]) for i in range(n)]
    below = DepthUnit("embeddings", "embeddings", n)
    above = DepthUnit("above the layers", "top", 0)
    seen_layers = False
    for name, param in model.named_parameters():
        if name.startswith(head_prefix):
            head = name[len(head_prefix):].split(".")[0]
            unit = heads.setdefault(head, DepthUnit(f"head: {head}", "head", 0, [f"{head_prefix}{head}"]))
        elif name.startswith(prefix + "."):
            seen_layers = True
            unit = layer_units[int(name[len(prefix) + 1:].split(".")[0])]
        else:
            unit = above if seen_layers else below
            module = name.rsplit(".", 1)[0] if "." in name else ""
            if module not in unit.modules:
                unit.modules.append(module)
        unit.params.append((name, param))
    for unit in (above, below):
        unit.modules = _compress(unit.modules)
    units = list(heads.values()) + ([above] if above.params else []) + layer_units[::-1] + ([below] if below.params else [])
    return units


def _compress(modules: list[str]) -> list[str]:
    """Up to three module paths as they are; more as their common parent (e.g. ``...transformer.embeddings``)."""
    if len(modules) <= 3:
        return modules
    parts = [m.split(".") for m in modules]
    common = []
    for pieces in zip(*parts):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    return [".".join(common) or "(model root)"]


def _head_rate(unit: DepthUnit, lr: float, head_lr: float | Mapping[str, float] | None) -> float:
    if head_lr is None:
        return lr
    if isinstance(head_lr, Mapping):
        task = unit.name.removeprefix("head: ")
        return float(head_lr.get(task, lr))
    return float(head_lr)


def param_groups(model: nn.Module, lr: float, weight_decay: float, head_lr: float | Mapping[str, float] | None = None,
                 layer_decay: float | None = None, head_prefix: str = HEAD_PREFIX) -> list[dict]:
    """AdamW parameter groups.

    * ``layer_decay=None``: encoder at ``lr``, heads at ``head_lr`` (groups ``encoder``, ``heads``).
    * ``layer_decay=xi`` in (0, 1]: one group per depth unit (see :func:`depth_units`): heads at ``head_lr``,
      the top layer and anything above it at ``lr``, layer ``k`` below the top at ``lr * xi ** k``, the
      embeddings at ``lr * xi ** L``. ``xi=1`` gives the uniform rates, split per layer.

    ``head_lr`` is the heads' rate (default ``lr``), or ``{task: rate}`` for a different rate per head (heads
    not named take ``lr``). Biases and LayerNorm weights go to ``... (no decay)`` groups with
    ``weight_decay=0``; frozen parameters (``requires_grad=False``) are left out; empty groups are dropped.
    Every group also carries ``scale`` (its rate over ``lr``) and ``depth`` (for tables and plots).
    Raises ``ValueError`` for ``xi`` outside (0, 1] and if any trainable parameter would not land in
    exactly one group.
    """
    check_layer_decay(layer_decay)
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    groups: dict[tuple[str, bool], dict] = {}

    def add(label: str, rate: float, depth: int, name: str, param: nn.Parameter) -> None:
        decay = not no_weight_decay(name)
        group = groups.setdefault((label, decay), {
            "name": f"{label}{'' if decay else ' (no decay)'}",
            "params": [],
            "lr": rate,
            "weight_decay": weight_decay if decay else 0.0,
            "scale": rate / lr,
            "depth": depth,
        })
        group["params"].append(param)

    if layer_decay is None:  # uniform: no need to find layers, any model works
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            if name.startswith(head_prefix):
                head = DepthUnit(f"head: {name[len(head_prefix):].split('.')[0]}", "head", 0)
                label = head.name if isinstance(head_lr, Mapping) else "heads"
                add(label, _head_rate(head, lr, head_lr), 0, name, param)
            else:
                add("encoder", lr, 0, name, param)
    else:
        for unit in depth_units(model, head_prefix):
            rate = _head_rate(unit, lr, head_lr) if unit.kind == "head" else lr * float(layer_decay) ** unit.depth
            for name, param in unit.params:
                if param.requires_grad:
                    add(unit.name, rate, unit.depth, name, param)
    result = [g for g in groups.values() if g["params"]]
    check_coverage(model, result, strict=True)
    return result


def check_coverage(model: nn.Module, groups: list[dict], strict: bool = False) -> dict:
    """How the groups cover the model's parameters: counts of trainable tensors, grouped tensors, missing
    trainable ones, ones in more than one group, and frozen ones that slipped into a group.

    With ``strict`` a ``ValueError`` names the offending parameters when any count but the first two is non-zero.
    """
    trainable = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {id(p): n for n, p in model.named_parameters() if not p.requires_grad}
    counts: dict[int, int] = {}
    for group in groups:
        for p in group["params"]:
            counts[id(p)] = counts.get(id(p), 0) + 1
    missing = [n for i, n in trainable.items() if i not in counts]
    duplicated = [trainable.get(i, frozen.get(i, "?")) for i, c in counts.items() if c > 1]
    frozen_in = [n for i, n in frozen.items() if i in counts]
    report = {
        "trainable tensors": len(trainable),
        "grouped tensors": sum(counts.values()),
        "trainable parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "grouped parameters": int(sum(p.numel() for g in groups for p in g["params"])),
        "missing": missing,
        "duplicated": duplicated,
        "frozen in a group": frozen_in,
    }
    if strict and (missing or duplicated or frozen_in):
        raise ValueError(f"parameter groups do not cover the trainable parameters exactly once: missing "
                         f"{missing[:5]}, duplicated {duplicated[:5]}, frozen in a group {frozen_in[:5]}")
    return report


def lr_table(model: nn.Module, groups: list[dict], head_prefix: str = HEAD_PREFIX) -> pd.DataFrame:
    """One row per depth unit, top down: group, the modules it holds, depth below the top layer, learning
    rate (0 where every parameter is frozen), the rate relative to the top layer's, parameters, trainable.

    The rates are read from ``groups`` (what the optimizer will get), not recomputed.
    """
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    top_rate = None
    rows = []
    for unit in depth_units(model, head_prefix):
        rates = sorted({rate_of[id(p)] for _, p in unit.params if id(p) in rate_of})
        if len(rates) > 1:
            raise ValueError(f"{unit.name} has parameters at several rates {rates}")
        rate = rates[0] if rates else 0.0
        if unit.kind in ("top", "layer") and top_rate is None:
            top_rate = rate
        rows.append({
            "group": unit.name + ("" if rates else " (frozen)"),
            "modules": ", ".join(unit.modules),
            "depth": unit.depth,
            "learning rate": rate,
            "parameters": sum(p.numel() for _, p in unit.params),
            "trainable": sum(p.numel() for _, p in unit.params if p.requires_grad),
        })
    table = pd.DataFrame(rows)
    table.insert(4, "relative to top layer", table["learning rate"] / top_rate if top_rate else float("nan"))
    return table


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 to each group's rate, then linear decay to 0; every group scales alike
    (one factor for all groups, so the layer-wise ratios hold at every step)."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lr_schedule(groups: list[dict], warmup_steps: int, total_steps: int) -> pd.DataFrame:
    """The rate of every group at every step under :func:`linear_warmup_decay` (a long table: step, group,
    learning rate), simulated on stand-in parameters so the model is untouched. Groups already handed to a
    scheduled optimizer are read at their peak (``initial_lr``)."""
    dummy = [{"params": [torch.zeros(1, requires_grad=True)], "lr": g.get("initial_lr", g["lr"]), "name": g["name"]}
             for g in groups]
    optimizer = torch.optim.SGD(dummy, lr=groups[0]["lr"] if groups else 0.0)
    scheduler = linear_warmup_decay(optimizer, warmup_steps, total_steps)
    rows = []
    for step in range(total_steps):
        for g in optimizer.param_groups:
            rows.append({"step": step + 1, "group": g["name"], "learning rate": g["lr"]})
        optimizer.step()
        scheduler.step()
    return pd.DataFrame(rows)
