"""Parameter groups by depth (layer-wise learning rates), their table, the schedule, and weight change."""
import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from mtl_utils import TrainConfig, anatomy, build_model, optim, train
from mtl_utils.modeling.anatomy import relative_change, snapshot
from series import protocol

LR = 1e-4


@pytest.fixture()
def model():
    """A fresh multi-task model with a 6-layer random BERT (hidden 32), so freezing cannot leak."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    return SixLayerMultiTask(config)


class SixLayerMultiTask(nn.Module):
    """The series' naming (encoder.transformer, heads) around a small 6-layer BERT, without a tokenizer."""

    def __init__(self, config) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.transformer = BertModel(config, add_pooling_layer=False)
        self.encoder.pool_tokens = None
        self.heads = nn.ModuleDict({"topic": nn.Linear(32, 5), "sentiment": nn.Linear(32, 2)})


class SmallMultiTask(nn.Module):
    """A differently sized BERT-like encoder (3 layers, hidden 64, with its pooler) under the same names."""

    def __init__(self) -> None:
        super().__init__()
        config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=32)
        self.encoder = BertModel(config)
        self.heads = nn.ModuleDict({"a": nn.Linear(64, 3), "b": nn.Linear(64, 2)})


def rates_by_group(groups):
    return {g["name"]: g["lr"] for g in groups}


def assert_exactly_once(model, groups):
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter sits in two groups"
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("xi", [None, 1.0, 0.95, 0.8, 0.65])
def test_every_trainable_parameter_in_exactly_one_group(model, xi):
    groups = optim.param_groups(model, LR, 0.01, head_lr=1e-3, layer_decay=xi)
    assert_exactly_once(model, groups)
    report = optim.check_coverage(model, groups)
    assert report["grouped parameters"] == report["trainable parameters"] == sum(p.numel() for p in model.parameters())
    assert not report["missing"] and not report["duplicated"]


def test_rates_by_depth(model):
    xi = 0.8
    rates = rates_by_group(optim.param_groups(model, LR, 0.01, head_lr=1e-3, layer_decay=xi))
    assert rates["head: topic"] == rates["head: sentiment (no decay)"] == 1e-3
    for layer in range(1, 7):  # layer 6 is the top: lr; layer 1 is 5 below it
        assert math.isclose(rates[f"layer {layer}"], LR * xi ** (6 - layer))
        assert rates[f"layer {layer}"] == rates[f"layer {layer} (no decay)"]
    assert math.isclose(rates["embeddings"], LR * xi ** 6)
    ordered = [rates[f"layer {k}"] for k in range(6, 0, -1)] + [rates["embeddings"]]
    assert all(a > b for a, b in zip(ordered, ordered[1:])), "rates must strictly decrease with depth"


def test_weight_decay_only_on_weights(model):
    for group in optim.param_groups(model, LR, 0.01, layer_decay=0.8):
        names = {id(p): n for n, p in model.named_parameters()}
        params = [names[id(p)] for p in group["params"]]
        if group["name"].endswith("(no decay)"):
            assert group["weight_decay"] == 0.0
            assert all(n.endswith("bias") or "LayerNorm" in n for n in params)
        else:
            assert group["weight_decay"] == 0.01
            assert not any(n.endswith("bias") or "LayerNorm" in n for n in params)


def test_layers_are_found_from_the_model_not_hard_coded():
    small = SmallMultiTask()
    layers = anatomy.layer_stack(small)
    assert anatomy.module_name(small, layers) == "encoder.encoder.layer" and len(layers) == 3
    xi = 0.5
    groups = optim.param_groups(small, LR, 0.01, layer_decay=xi)
    assert_exactly_once(small, groups)
    rates = rates_by_group(groups)
    assert [rates[f"layer {k}"] for k in (3, 2, 1)] == pytest.approx([LR, LR * xi, LR * xi ** 2])
    assert rates["embeddings"] == pytest.approx(LR * xi ** 3)
    assert rates["above the layers"] == LR  # BERT's pooler sits after the layers: top rate
    table = optim.lr_table(small, groups)
    assert list(table["group"]) == ["head: a", "head: b", "above the layers", "layer 3", "layer 2", "layer 1",
                                    "embeddings"]
    assert table["parameters"].sum() == sum(p.numel() for p in small.parameters())


def test_bare_bert_model_works_too():
    bert = SmallMultiTask().encoder
    groups = optim.param_groups(bert, LR, 0.0, layer_decay=0.9)
    assert_exactly_once(bert, groups)
    assert anatomy.module_name(bert, anatomy.layer_stack(bert)) == "encoder.layer"


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.01, 2.6, float("nan"), float("inf")])
def test_layer_decay_outside_0_1_is_an_error(model, bad):
    with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\]"):
        optim.param_groups(model, LR, 0.01, layer_decay=bad)


def test_layer_decay_type_and_lr_checks(model):
    with pytest.raises(TypeError):
        optim.param_groups(model, LR, 0.01, layer_decay=True)
    with pytest.raises(TypeError):
        optim.param_groups(model, LR, 0.01, layer_decay="0.8")
    with pytest.raises(ValueError, match="lr must be a finite positive number"):
        optim.param_groups(model, 0.0, 0.01, layer_decay=0.8)
    with pytest.raises(ValueError, match=r"head_lr names heads \['topc'\] that this model does not have"):
        optim.param_groups(model, LR, 0.01, head_lr={"topc": 1e-3})


def test_xi_one_is_uniform(model):
    rates = {g["lr"] for g in optim.param_groups(model, LR, 0.01, layer_decay=1.0)}
    assert rates == {LR}


def test_frozen_parameters_left_out_and_shown_at_zero(model):
    for p in model.encoder.transformer.embeddings.parameters():
        p.requires_grad_(False)
    for p in model.encoder.transformer.encoder.layer[0].parameters():
        p.requires_grad_(False)
    groups = optim.param_groups(model, LR, 0.01, layer_decay=0.8)
    assert_exactly_once(model, groups)
    assert not any(g["name"].startswith(("embeddings", "layer 1")) for g in groups)
    table = optim.lr_table(model, groups).set_index("group")
    assert table.loc["embeddings (frozen)", "learning rate"] == 0.0
    assert table.loc["layer 1 (frozen)", "trainable"] == 0
    assert table.loc["layer 2", "learning rate"] == pytest.approx(LR * 0.8 ** 4)


def test_head_rate_per_task(model):
    rates = rates_by_group(optim.param_groups(model, LR, 0.01, head_lr={"topic": 1e-3}, layer_decay=0.8))
    assert rates["head: topic"] == 1e-3 and rates["head: sentiment"] == LR
    uniform = rates_by_group(optim.param_groups(model, LR, 0.01, head_lr={"sentiment": 5e-4}))
    assert uniform["head: sentiment"] == 5e-4 and uniform["head: topic"] == LR and uniform["encoder"] == LR


def test_coverage_check_catches_missing_and_duplicated(model):
    groups = optim.param_groups(model, LR, 0.01, layer_decay=0.8)
    dropped = [dict(g, params=g["params"][1:]) if i == 0 else g for i, g in enumerate(groups)]
    assert len(optim.check_coverage(model, dropped)["missing"]) == 1
    with pytest.raises(ValueError, match="exactly once"):
        optim.check_coverage(model, dropped, strict=True)
    doubled = groups + [dict(groups[0], params=groups[0]["params"][:1])]
    with pytest.raises(ValueError, match="duplicated"):
        optim.check_coverage(model, doubled, strict=True)


def test_no_layer_stack_is_an_error():
    with pytest.raises(ValueError, match="no encoder layer list"):
        optim.param_groups(nn.Sequential(nn.Linear(2, 2)), LR, 0.0, layer_decay=0.8)


def test_lr_table_matches_groups(model):
    groups = optim.param_groups(model, LR, 0.01, head_lr=1e-3, layer_decay=0.65)
    table = optim.lr_table(model, groups).set_index("group")
    assert table.loc["layer 6", "relative to top layer"] == 1.0
    assert table.loc["embeddings", "relative to top layer"] == pytest.approx(0.65 ** 6)
    assert table.loc["head: topic", "learning rate"] == 1e-3
    assert table["parameters"].sum() == sum(p.numel() for p in model.parameters())


def test_schedule_scales_every_group_proportionally(model):
    groups = optim.param_groups(model, LR, 0.01, head_lr=1e-3, layer_decay=0.8)
    peaks = [g["lr"] for g in groups]
    optimizer = torch.optim.AdamW(groups, lr=LR)
    scheduler = optim.linear_warmup_decay(optimizer, warmup_steps=3, total_steps=10)
    seen_factors = []
    for _ in range(10):
        factors = [g["lr"] / peak for g, peak in zip(optimizer.param_groups, peaks)]
        assert max(factors) - min(factors) < 1e-12, "groups must share one schedule factor"
        seen_factors.append(factors[0])
        optimizer.step()  # no gradients: nothing changes, but the scheduler expects a step first
        scheduler.step()
    assert seen_factors[2] == pytest.approx(1.0) and seen_factors[0] == pytest.approx(1 / 3)
    assert seen_factors[-1] < seen_factors[3]
    fresh = optim.param_groups(model, LR, 0.01, head_lr=1e-3, layer_decay=0.8)
    table = optim.lr_schedule(fresh, 3, 10).pivot(index="step", columns="group", values="learning rate")
    ratio = table["embeddings"] / table["layer 6"]
    assert ratio.max() - ratio.min() < 1e-12 and ratio.iloc[0] == pytest.approx(0.8 ** 6)


def test_relative_change_per_layer(model):
    before = snapshot(model)
    with torch.no_grad():
        model.encoder.transformer.encoder.layer[2].output.dense.weight.mul_(1.5)
    changes = relative_change(before, model).set_index("unit")
    assert changes.loc["layer 3", "relative change"] > 0.01
    untouched = changes.drop(index="layer 3")["relative change"]
    assert (untouched == 0).all()
    with pytest.raises(KeyError, match="missing"):
        relative_change({k: v for k, v in before.items() if "heads" not in k}, model)


def test_build_model_is_where_training_starts(small_tasks, tiny_model_dir):
    """A run with a negligible learning rate ends where build_model begins, heads included (same seed)."""
    config = TrainConfig(model=tiny_model_dir, examples=8, batch_size=4, max_length=16, lr=1e-12, layer_decay=0.8,
                         warmup_ratio=0.0, seed=3)
    result = train(config, small_tasks, progress_bar=False)
    changes = relative_change(snapshot(build_model(config, small_tasks)), result.model)
    assert changes["relative change"].max() < 1e-6
    other = relative_change(snapshot(build_model(config.replace(seed=4), small_tasks)), result.model)
    assert other.set_index("unit").loc["head: topic", "relative change"] > 0.1  # another seed: other heads


def test_fused_optimizer_matches_the_default(model):
    """make_optimizer's fused AdamW takes the same steps as PyTorch's default AdamW."""
    torch.manual_seed(0)
    twin = SixLayerMultiTask(model.encoder.transformer.config)
    twin.load_state_dict(model.state_dict())
    model.eval(), twin.eval()  # no dropout: both see the same numbers
    fused = optim.make_optimizer(optim.param_groups(model, LR, 0.01, head_lr=1e-3), LR)
    plain = torch.optim.AdamW(optim.param_groups(twin, LR, 0.01, head_lr=1e-3), lr=LR)
    assert fused.defaults.get("fused")
    ids = torch.randint(0, 120, (4, 12))
    for _ in range(3):
        for net, opt in ((model, fused), (twin, plain)):
            out = net.encoder.transformer(input_ids=ids).last_hidden_state.mean(1)
            net.heads["topic"](out).sum().backward()
            opt.step()
            opt.zero_grad()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_mean_matched_rate_keeps_the_mean_over_depth(model):
    assert protocol.mean_matched_lr(None, 6, LR) == LR
    for xi in (0.8, 0.65, 1.0):
        top = protocol.mean_matched_lr(xi, 6, LR)
        rates = rates_by_group(optim.param_groups(model, top, 0.01, head_lr=1e-3, layer_decay=xi))
        by_depth = [rates[f"layer {k}"] for k in range(1, 7)] + [rates["embeddings"]]
        assert math.isclose(sum(by_depth) / 7, LR), xi  # the optimizer's own groups, not the formula again
        assert top >= LR and (xi == 1.0) == math.isclose(top, LR)
    with pytest.raises(ValueError, match="layer_decay"):
        protocol.mean_matched_lr(0.0, 6)
