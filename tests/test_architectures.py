"""Any encoder the series accepts, it trains exactly, or it refuses before any work (issue: nine architectures).

Tiny random models of each architecture are built locally (``tools.architectures.build``; nothing is
downloaded). The fast tests below pin what used to go wrong; the last one measures the README's table.
"""
import pytest
import torch

from mtl_utils.modeling import anatomy
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import freezing
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.frozen_cache import bottom_states, build_cache, cached_forward
from mtl_utils.training.trainer import Trainer
from tools import architectures

TASKS = {"a": ["x", "y"], "b": ["p", "q", "r"]}
LAYERED = [name for name in architectures.ARCHITECTURES if name != "ALBERT"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("architectures")
    return {name: architectures.build(name, root / name) for name in architectures.ARCHITECTURES}


def _model(folders, name):
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, model=folders[name], max_length=32)


@pytest.mark.parametrize("name", LAYERED)
def test_freezing_k_layers_fixes_everything_below_layer_k(folders, name):
    """Whatever stays trainable after ``freeze_bottom(k)`` cannot change what layer k+1 receives: MPNet's
    position bias, ELECTRA's embedding projection, DeBERTa's relative embeddings used to stay trainable."""
    model = _model(folders, name).eval()
    batch = model.encoder.tokenize(architectures.SENTENCES)
    for k in (1, 2):
        freezing.unfreeze_all(model)
        freezing.freeze_bottom(model, k)
        assert freezing.frozen_bottom(model) == k
        before = architectures.input_of_layer(model, k)  # read with a hook, not through the cache's code
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(0.5)
        after = architectures.input_of_layer(model, k)
        assert torch.equal(before, after), f"{name}: something trainable feeds layer {k + 1}"
        assert torch.equal(bottom_states(model, batch, k), after)


@pytest.mark.parametrize("name", LAYERED)
def test_the_frozen_cache_gives_the_models_own_logits_and_gradients(folders, name):
    """The cache ran MPNet's layers without their position bias (not exact) and crashed for DeBERTa-v2,
    ModernBERT and ELECTRA; now the layers above k on cached vectors give what the whole model gives."""
    model = _model(folders, name)
    freezing.freeze_bottom(model, 1)
    cache = build_cache(model, architectures.SENTENCES, 1, level="tokens")
    inputs = model.encoder.tokenize(architectures.SENTENCES)
    model.train()
    freezing.set_frozen_eval(model)
    results = []
    for forward in (lambda: model(**inputs), lambda: cached_forward(model, cache.batch(range(4)), 1)):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = forward()
        sum(v.sum() for v in out.values()).backward()
        results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full, full_grads), (cached, cached_grads) = results
    assert set(full_grads) == set(cached_grads)
    for task in TASKS:
        assert torch.allclose(full[task], cached[task], atol=1e-6), name
    for param in full_grads:
        assert torch.allclose(full_grads[param], cached_grads[param], atol=1e-6), (name, param)


def test_albert_trains_whole_and_refuses_what_shared_layers_cannot_do(folders, small_tasks):
    """ALBERT could not be trained at all (the error blamed freezing); its layers share one set of weights,
    so freezing some of them and a rate per layer are refused up front, naming ALBERT."""
    config = TrainConfig(model=folders["ALBERT"], examples=16, batch_size=8, max_length=32, rounds=1)
    result = Trainer(config, small_tasks, progress_bar=False).fit()
    assert set(result.test["task"]) == set(config.tasks)
    for changes in ({"frozen_layers": 1}, {"layer_decay": 0.8}, {"gradual_unfreezing": True, "rounds": 2}):
        with pytest.raises(ValueError, match="ALBERT"):
            Trainer(config.replace(**changes), small_tasks, progress_bar=False)
    model = _model(folders, "ALBERT")
    freezing.freeze_backbone(model)
    assert freezing.frozen_bottom(model) == anatomy.num_layers(model) == 3
    assert not any(p.requires_grad for p in model.encoder.transformer.parameters())


def test_the_readme_table_is_measured_and_has_no_wrong_cell():
    cells = architectures.table()
    wrong = {(name, column): cell for name, row in cells.items() for column, cell in row.items()
             if not (cell in ("exact", "works") or cell.startswith("refused"))}
    assert not wrong, wrong
    assert {name for name, row in cells.items() if any(c.startswith("refused") for c in row.values())} == {"ALBERT"}
    readme = architectures.README.read_text()
    assert architectures.render(readme, architectures.markdown(cells)) == readme, \
        "README.md's architecture table is out of date: run `python -m tools.architectures --write`"
