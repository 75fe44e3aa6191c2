"""Freezing by intent: :func:`freeze_all`, :func:`freeze_backbone` (only heads learn: a probe), :func:`freeze_bottom`
(embeddings, bottom ``k`` layers, what their output depends on), :func:`freeze_head`; :func:`unfreeze_all` resets. A
frozen block runs in eval mode (no dropout) after ``model.train()`` (:func:`set_frozen_eval`): a fixed function."""
from __future__ import annotations

from torch import nn

from mtl_utils.modeling import anatomy
from mtl_utils.modeling.model import MultiTaskModel

FREEZE_PARTS: tuple[str, ...] = ("all", "backbone", "bottom", "head")


def check_k(model: nn.Module, k: int) -> int:
    """Validate a count of bottom encoder layers: an integer in ``0..num_layers``."""
    n = anatomy.num_layers(model)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"k (frozen encoder layers) must be an integer in 0..{n} for this model, got {k!r}")
    return k


def _set(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)


def unfreeze_all(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again."""
    _set(model, True)
    return model


def freeze_all(model: nn.Module) -> nn.Module:
    """Freeze every parameter: nothing learns."""
    _set(model, False)
    return model


def freeze_bottom(model: MultiTaskModel, k: int) -> MultiTaskModel:
    """Freeze all below layer ``k``'s output (:func:`~mtl_utils.modeling.anatomy.bottom_parameters`): the embeddings,
    the bottom ``k`` layers and what they share with the rest; ``k=0``: nothing, ``k=L``: all (ALBERT: only these)."""
    check_k(model, k)
    for _, param in anatomy.bottom_parameters(model, k):
        param.requires_grad_(False)
    return model


def freeze_backbone(model: MultiTaskModel) -> MultiTaskModel:
    """Freeze the embeddings and all encoder layers (heads, projection train): with mean pooling, a linear probe."""
    return freeze_bottom(model, anatomy.num_layers(model))


def freeze_head(model: MultiTaskModel, task: str) -> MultiTaskModel:
    """Freeze one task's head (``KeyError`` naming the known tasks for an unknown one)."""
    model.check_tasks([task])
    _set(model.heads[task], False)
    return model


def freeze(model: MultiTaskModel, part: str, k: int | None = None, task: str | None = None) -> MultiTaskModel:
    """Freeze ``part``: ``"all"``, ``"backbone"``, ``"bottom"`` (with ``k``) or ``"head"`` (with ``task``)."""
    if part == "all":
        return freeze_all(model)
    if part == "backbone":
        return freeze_backbone(model)
    if part == "bottom":
        if k is None:
            raise ValueError("freeze(model, 'bottom') needs k, the number of bottom encoder layers to freeze")
        return freeze_bottom(model, k)
    if part == "head":
        if task is None:
            raise ValueError("freeze(model, 'head') needs task, the name of the head to freeze")
        return freeze_head(model, task)
    raise ValueError(f"unknown part '{part}' to freeze; choose one of {FREEZE_PARTS}")


def _all_frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def frozen_bottom(model: MultiTaskModel) -> int:
    """The largest ``k`` whose whole bottom (:func:`freeze_bottom`) is frozen: 0 if the embeddings train."""
    n = anatomy.num_layers(model)
    if not any(p.requires_grad for p in anatomy.transformer_of(model).parameters()):
        return n
    if anatomy.shares_layers(model):
        return 0
    k = 0
    while k < n and not any(p.requires_grad for _, p in anatomy.bottom_parameters(model, k + 1)):
        k += 1
    return k


def encoder_frozen(model: MultiTaskModel) -> bool:
    """True when no parameter of the shared encoder (transformer and projection) trains."""
    return not any(p.requires_grad for p in model.encoder.parameters())


def set_frozen_eval(model: MultiTaskModel) -> MultiTaskModel:
    """Eval mode (no dropout) for every fully frozen transformer module and frozen head; call after ``.train()``."""
    for block in [*anatomy.transformer_of(model).modules(), *model.heads.values()]:
        if _all_frozen(block):
            block.eval()
    return model


def unfreezing_schedule(n_layers: int, rounds: int, final_frozen: int = 0) -> list[int]:
    """Frozen bottom layers per round of gradual unfreezing (ULMFiT): all, one fewer each round, to ``final_frozen``."""
    if not 0 <= final_frozen <= n_layers:
        raise ValueError(f"final_frozen must be in 0..{n_layers}, got {final_frozen}")
    return [max(final_frozen, n_layers - r) for r in range(rounds)]
