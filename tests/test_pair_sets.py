"""Training over two pair sets: the order of sets equals sentence-transformers' round-robin and proportional
samplers, every batch comes from one set, the trainer trains and its cache entry reloads; the film-plot pair set
is leak-free."""
import numpy as np
import pytest
import torch
from sentence_transformers.base.sampler import ProportionalBatchSampler, RoundRobinBatchSampler
from torch.utils.data import BatchSampler, ConcatDataset, SequentialSampler

from mtl_utils.training import pair_sets
from mtl_utils.training.sentence_training import PairConfig, PairData
from series import load_film_plots, pair_variants


def st_sets(sampler_class, sizes, batch_size):
    """The set each batch of one epoch of sentence-transformers' sampler comes from."""
    data = ConcatDataset([list(range(n)) for n in sizes])
    batches = [BatchSampler(SequentialSampler(range(n)), batch_size, drop_last=False) for n in sizes]
    sampler = sampler_class(data, batches, generator=torch.Generator(), seed=0)
    bounds = np.cumsum(sizes)
    return np.array([int(np.searchsorted(bounds, b[0], side="right")) for b in sampler])


def test_set_order_is_sentence_transformers_round_robin_and_proportional():
    sizes, batch = [100, 45], 8
    per_epoch = [13, 6]
    st_round = st_sets(RoundRobinBatchSampler, sizes, batch)            # stops when the smaller set runs out
    ours = pair_sets.set_order(per_epoch, "round-robin", 19, np.random.default_rng(0))
    np.testing.assert_array_equal(ours[:len(st_round)], st_round)
    assert len(st_round) == 2 * 6 and np.bincount(ours).tolist() == [10, 9]     # ours goes on, in turn
    st_prop = st_sets(ProportionalBatchSampler, sizes, batch)
    ours = pair_sets.set_order(per_epoch, "proportional", 19, np.random.default_rng(0))
    assert np.bincount(ours).tolist() == np.bincount(st_prop).tolist() == per_epoch
    assert ours.tolist() != sorted(ours.tolist())                                 # shuffled, not in blocks
    two = pair_sets.set_order(per_epoch, "proportional", 38, np.random.default_rng(0))
    assert np.bincount(two[19:]).tolist() == per_epoch                            # each epoch has every batch once
    with pytest.raises(ValueError, match="sampler must be one of"):
        pair_sets.set_order(per_epoch, "uniform", 19, np.random.default_rng(0))


def test_trainer_batches_stay_in_one_set_and_its_run_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    first = PairData([f"headline {i}" for i in range(12)], [f"passage {i}" for i in range(12)])
    second = PairData([f"opening {i}" for i in range(6)], [f"next {i}" for i in range(6)])
    pairs, sizes = pair_sets.join([first, second])
    assert sizes == [12, 6] and pairs.a[12] == "opening 0" and pairs.b[11] == "passage 11"
    config = PairConfig(model=tiny_model_dir, batch_size=4, max_length=16, max_grad_norm=None)
    trainer = pair_sets.PairSetsTrainer(config, pairs, sizes, "round-robin", progress_bar=False)
    assert trainer.steps == 3 + 2 and trainer.order.tolist() == [0, 1, 0, 1, 0]
    for s, idx in zip(trainer.order, trainer.batches):
        assert len(idx) == 4 and set(np.where(np.asarray(idx) < 12, 0, 1)) == {s}
    result = pair_variants.variant_or_load(config, pairs, "proportional", sizes, progress_bar=False)
    assert len(result.losses) == 5 and all(np.isfinite(result.losses)) and not result.cached
    again = pair_variants.variant_or_load(config, pairs, "proportional", sizes, progress_bar=False)
    assert again.cached and again.losses == result.losses
    for bad in ([12, 5], [12, 3, 3]):
        with pytest.raises(ValueError, match="must add up to the 18 pairs and each fill a batch"):
            pair_sets.PairSetsTrainer(config, pairs, bad, "round-robin", progress_bar=False)
    with pytest.raises(ValueError, match="sampler must be one of"):
        pair_sets.PairSetsTrainer(config, pairs, sizes, "temperature", progress_bar=False)


@pytest.mark.parametrize("quick", [True, False])
def test_film_plots_keep_every_film_in_one_split(quick):
    plots = load_film_plots(quick)
    evaluation, train_films = plots.evaluation, set(plots.train["film"])
    assert not train_films & set(evaluation.corpus_ids)        # no training film in the queries or the corpus
    assert set(evaluation.query_ids) <= set(evaluation.corpus_ids)
    assert len(set(plots.train["next"])) == len(plots.train) and (plots.train["opening"] != "").all()
    assert len(plots.train) >= (64 if quick else 700) and len(evaluation) >= (60 if quick else 200)
