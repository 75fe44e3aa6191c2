"""The parts of a model, found once: embeddings, encoder layers, heads, and depth (steps below the top layer: heads and
top layer 0, the embeddings ``L``); freezing, layer-wise rates, the frozen-layer cache and the weight-change measures
all ask this one finder. What lies *below* layer ``k`` (:func:`bottom_parameters`) is measured: what layer ``k``'s input
depends on in the model's own forward (autograd on four tokens, once per model): for BERT, the embeddings and layers
``1..k``, plus parts shared with every layer (MPNet's position bias, DeBERTa's relative embeddings) or after the
embeddings (ELECTRA's projection). ALBERT reuses one layer at every depth: no bottom ``k`` nor a rate per depth."""
from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

HEAD_PREFIX = "heads."
# Where encoders keep their layer stack: BERT/RoBERTa/MiniLM, DistilBERT, generic ``layers`` (e.g. ModernBERT).
LAYER_PATHS: tuple[str, ...] = ("encoder.layer", "transformer.layer", "layers")


def transformer_of(model: nn.Module) -> nn.Module:
    """The transformer in ``model``: a MultiTaskModel's or SentenceEncoder's, ``model`` if it has ``embeddings``."""
    encoder = getattr(model, "encoder", None)
    if isinstance(getattr(encoder, "transformer", None), nn.Module):
        return encoder.transformer
    if isinstance(getattr(model, "transformer", None), nn.Module) and hasattr(model, "pool_tokens"):
        return model.transformer
    if isinstance(getattr(model, "embeddings", None), nn.Module):
        return model
    children = [m for m in model.children() if isinstance(getattr(m, "embeddings", None), nn.Module)]
    return children[0] if len(children) == 1 else model


def _attr_path(module: nn.Module, path: str) -> nn.Module | None:
    for attr in path.split("."):
        module = getattr(module, attr, None)
        if module is None:
            return None
    return module


def shares_layers(model: nn.Module) -> bool:
    """Whether the transformer reuses one set of layer weights at several depths (ALBERT)."""
    return _attr_path(transformer_of(model), "encoder.albert_layer_groups") is not None


def layer_stack(model: nn.Module) -> nn.ModuleList:
    """The transformer's stack of encoder layers (6 for all-MiniLM-L6-v2), found by :data:`LAYER_PATHS`."""
    transformer = transformer_of(model)
    for path in LAYER_PATHS:
        module = _attr_path(transformer, path)
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return module
    if shares_layers(model):
        raise ValueError(f"{type(transformer).__name__} (ALBERT) reuses one set of layer weights at all "
                         f"{num_layers(model)} depths: freezing its bottom k layers (0 < k < all), the frozen-layer "
                         "cache below the top and layer-wise rates do not exist for it; train it whole "
                         "(frozen_layers=0, layer_decay=None) or freeze the whole backbone")
    raise ValueError(f"{type(transformer).__name__} has no encoder layer list (looked for {', '.join(LAYER_PATHS)}): "
                     "freezing by layer and layer-wise rates need a BERT-like encoder")


def embeddings(model: nn.Module) -> nn.Module:
    """The transformer's input embeddings block (word + position + type embeddings and their LayerNorm)."""
    transformer = transformer_of(model)
    module = getattr(transformer, "embeddings", None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"{type(transformer).__name__} has no .embeddings module: a BERT-like encoder is needed")
    return module


def num_layers(model: nn.Module) -> int:
    """Number of encoder layers (for ALBERT: how many times its shared layer runs)."""
    if shares_layers(model):
        return int(transformer_of(model).config.num_hidden_layers)
    return len(layer_stack(model))


def hidden_argument(args: tuple, kwargs: dict) -> torch.Tensor:
    """The token vectors an encoder layer was called with (first positional argument, or ``hidden_states``)."""
    return args[0] if args else kwargs["hidden_states"]


def with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    """A layer call's arguments with its token vectors replaced by ``hidden``."""
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


@dataclass(frozen=True)
class LayerFlow:
    """A forward pass's view of the layers: ``feeds[k]``, the parameter names layer ``k``'s input depends on (``k = L``:
    the output); ``output``, what each layer returns (``0`` a tensor, ``n`` a tuple of ``n``, ``-1`` anything else)."""

    feeds: tuple[frozenset[str], ...]
    output: tuple[int, ...]


_FLOWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _output_form(out) -> int:
    if isinstance(out, torch.Tensor):
        return 0
    if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor) and all(x is None for x in out[1:]):
        return len(out)
    return -1


def _graph_leaves(tensor: torch.Tensor) -> set[int]:
    """``id`` of each parameter ``tensor``'s autograd graph accumulates a gradient into (walked, none computed)."""
    found, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def layer_flow(model: nn.Module) -> LayerFlow:
    """``model``'s :class:`LayerFlow`, measured once (four tokens, eval mode, no gradient or randomness) and cached."""
    transformer = transformer_of(model)
    if transformer in _FLOWS:
        return _FLOWS[transformer]
    stack = layer_stack(model)
    inputs: list[torch.Tensor | None] = [None] * len(stack)
    forms = [-1] * len(stack)
    hooks = []
    for i, layer in enumerate(stack):
        hooks.append(layer.register_forward_pre_hook(
            lambda _m, args, kwargs, i=i: inputs.__setitem__(i, hidden_argument(args, kwargs)), with_kwargs=True))
        hooks.append(layer.register_forward_hook(lambda _m, _a, out, i=i: forms.__setitem__(i, _output_form(out))))
    params = dict(transformer.named_parameters())
    was_trainable = {name: p.requires_grad for name, p in params.items()}
    modes = [(module, module.training) for module in transformer.modules()]
    device = next(transformer.parameters()).device
    try:
        transformer.eval()
        for p in params.values():
            p.requires_grad_(True)
        with torch.inference_mode(False), torch.enable_grad():
            ids = (torch.arange(1, 5, device=device) % int(transformer.config.vocab_size))[None, :]
            last = transformer(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            name_of = {id(p): n for n, p in params.items()}
            feeds = [frozenset(name_of[i] for i in _graph_leaves(target) if i in name_of) for target in [*inputs, last]]
    finally:
        for hook in hooks:
            hook.remove()
        for name, p in params.items():
            p.requires_grad_(was_trainable[name])
        for module, training in modes:
            module.training = training
    flow = _FLOWS[transformer] = LayerFlow(tuple(feeds), tuple(forms))
    return flow


def bottom_parameters(model: nn.Module, k: int) -> list[tuple[str, nn.Parameter]]:
    """``(name in model, parameter)`` of all below layer ``k``'s input: what freezing the bottom ``k`` freezes."""
    transformer = transformer_of(model)
    prefix = module_name(model, transformer)
    prefix = f"{prefix}." if prefix else ""
    if k == 0:
        return []
    if k == num_layers(model):
        wanted = None
    else:
        wanted = layer_flow(model).feeds[k]
    return [(prefix + n, p) for n, p in transformer.named_parameters() if wanted is None or n in wanted]


def module_name(root: nn.Module, module: nn.Module) -> str:
    """The qualified name of ``module`` inside ``root`` (``""`` for the root itself)."""
    for name, candidate in root.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not part of {type(root).__name__}")


@dataclass
class DepthUnit:
    """A block of parameters sharing one depth (one rate under layer-wise decay): ``kind`` ``"head"``, ``"top"`` (above
    the layers: a projection, a pooler), ``"layer"`` or ``"embeddings"``; ``params``: ``(name, parameter)``."""

    name: str
    kind: str
    depth: int
    modules: list[str] = field(default_factory=list)
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)


def depth_units(model: nn.Module, head_prefix: str = HEAD_PREFIX) -> list[DepthUnit]:
    """Every parameter in units, top down: heads, above the layers, layers last to first, embeddings. Other parameters
    go by what they feed (:func:`layer_flow`): the embeddings if layer 1 or 2 needs them, layer ``j`` if layer ``j + 1``
    is the first that does, else above: freezing the bottom ``k`` freezes exactly the units of embeddings, ``1..k``."""
    stack = layer_stack(model)
    prefix = module_name(model, stack)
    transformer = transformer_of(model)
    root = module_name(model, transformer)
    root = f"{root}." if root else ""
    feeds = layer_flow(model).feeds
    n = len(stack)
    heads: dict[str, DepthUnit] = {}
    layers = [DepthUnit(f"layer {i + 1}", "layer", n - 1 - i, [f"{prefix}.{i}"]) for i in range(n)]
    below, above = DepthUnit("embeddings", "embeddings", n), DepthUnit("above the layers", "top", 0)

    def outside_unit(name: str) -> DepthUnit:
        inner = name[len(root):] if name.startswith(root) else None
        first = next((j for j in range(n) if inner in feeds[j]), None) if inner is not None else None
        if first is None:
            return above
        return below if first <= 1 else layers[first - 1]

    for name, param in model.named_parameters():
        if name.startswith(head_prefix):
            head = name[len(head_prefix):].split(".")[0]
            unit = heads.setdefault(head, DepthUnit(f"head: {head}", "head", 0, [f"{head_prefix}{head}"]))
        elif name.startswith(prefix + "."):
            unit = layers[int(name[len(prefix) + 1:].split(".")[0])]
        else:
            unit = outside_unit(name)
            module = name.rsplit(".", 1)[0] if "." in name else ""
            if unit.kind != "layer" and module not in unit.modules:
                unit.modules.append(module)
        unit.params.append((name, param))
    for unit in (above, below):
        unit.modules = _common_parent(unit.modules)
    return list(heads.values()) + ([above] if above.params else []) + layers[::-1] + ([below] if below.params else [])


def _common_parent(modules: list[str]) -> list[str]:
    """Up to three module paths as they are; more as their common parent."""
    if len(modules) <= 3:
        return modules
    common = []
    for pieces in zip(*(m.split(".") for m in modules)):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    return [".".join(common) or "(model root)"]


def parts(model: nn.Module) -> dict[str, nn.Module]:
    """The model's parts from the bottom up: embeddings, each encoder layer, a projection (if any), each head."""
    out: dict[str, nn.Module] = {"embeddings": embeddings(model)}
    for i, layer in enumerate(layer_stack(model)):
        out[f"encoder layer {i + 1}"] = layer
    projection = getattr(getattr(model, "encoder", None), "projection", None)
    if projection is not None:
        out["projection"] = projection
    for name, head in getattr(model, "heads", {}).items():
        out[f"head: {name}"] = head
    return out


def parameter_table(model: nn.Module) -> pd.DataFrame:
    """Parameters per part (embeddings, layers, projection, heads; ``other``: the rest), trainable, state, total."""
    found = parts(model)
    listed = {id(p) for module in found.values() for p in module.parameters()}
    rows = []
    for part, module in found.items():
        total = sum(p.numel() for p in module.parameters())
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append({"part": part, "parameters": total, "trainable": trainable,
                     "state": "trainable" if trainable == total else "frozen" if trainable == 0 else "partly frozen"})
    rest = [p for p in model.parameters() if id(p) not in listed]
    if rest:
        rows.append({"part": "other", "parameters": sum(p.numel() for p in rest),
                     "trainable": sum(p.numel() for p in rest if p.requires_grad), "state": ""})
    table = pd.DataFrame(rows)
    table.loc[len(table)] = {"part": "total", "parameters": int(table["parameters"].sum()),
                             "trainable": int(table["trainable"].sum()), "state": ""}
    table["share of total"] = (table["parameters"] / table["parameters"].iloc[-1]).map("{:.2%}".format)
    return table


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad=True``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every parameter, by name."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}


def relative_change(before: Mapping[str, torch.Tensor], after: nn.Module,
                    head_prefix: str = HEAD_PREFIX) -> pd.DataFrame:
    """How far each depth unit moved: ``||after - before|| / ||before||`` over its parameters, absolute change, size
    (``before``: a :func:`snapshot`); small for the embeddings by construction (most rows never occur in training)."""
    rows = []
    for unit in depth_units(after, head_prefix):
        delta_sq, base_sq = 0.0, 0.0
        for name, param in unit.params:
            if name not in before:
                raise KeyError(f"parameter '{name}' is missing from the 'before' snapshot")
            old, new = before[name].float(), param.detach().float().cpu()
            if old.shape != new.shape:
                raise ValueError(f"'{name}': shape {tuple(old.shape)} before, {tuple(new.shape)} after")
            delta_sq += float(((new - old) ** 2).sum())
            base_sq += float((old ** 2).sum())
        rows.append({"unit": unit.name, "kind": unit.kind, "depth": unit.depth,
                     "parameters": sum(p.numel() for _, p in unit.params), "absolute change": float(np.sqrt(delta_sq)),
                     "relative change": float(np.sqrt(delta_sq / base_sq)) if base_sq else float("nan")})
    return pd.DataFrame(rows)
