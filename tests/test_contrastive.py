"""The contrastive losses against sentence-transformers', GradCache's gradient against the full batch's, SetFit's
pairs, the pair trainer and its cache."""
import numpy as np
import pytest
import torch

from mtl_utils import SentenceEncoder
from mtl_utils.training import contrastive
from mtl_utils.training import sentence_training as st
from series import pair_runs
from tests.conftest import SENTENCES


def test_in_batch_loss_equals_multiple_negatives_ranking_loss():
    from sentence_transformers.sentence_transformer import losses

    torch.manual_seed(0)
    q, p = torch.randn(8, 16), torch.randn(8, 16)
    reference = losses.MultipleNegativesRankingLoss(model=None, scale=20.0)
    theirs = reference.compute_loss_from_embeddings([q, p], labels=None)
    assert float(contrastive.in_batch_negatives_loss(q, p, 20.0)) == pytest.approx(float(theirs), rel=1e-6)


def test_cosine_loss_equals_cosine_similarity_loss():
    from sentence_transformers.sentence_transformer import losses

    torch.manual_seed(1)
    a, b, y = torch.randn(6, 8), torch.randn(6, 8), torch.tensor([1.0, 0, 1, 0, 0, 1])
    theirs = losses.CosineSimilarityLoss(model=None).compute_loss_from_embeddings([a, b], y)
    assert float(contrastive.cosine_similarity_loss(a, b, y)) == pytest.approx(float(theirs), rel=1e-6)


def _grads(encoder):
    return torch.cat([p.grad.reshape(-1) for p in encoder.parameters() if p.grad is not None])


@pytest.mark.parametrize("train_mode", [False, True])
def test_grad_cache_gives_the_full_batch_gradient(tiny_model_dir, train_mode):
    encoder = SentenceEncoder(tiny_model_dir)
    encoder.train(train_mode)
    queries, passages = SENTENCES, SENTENCES[::-1]
    torch.manual_seed(3)
    full = contrastive.in_batch_negatives_loss(encoder(**encoder.tokenize(queries)),
                                               encoder(**encoder.tokenize(passages)))
    full.backward()
    expected = _grads(encoder).clone()
    encoder.zero_grad()
    torch.manual_seed(3)
    loss = contrastive.grad_cache_backward(encoder, [encoder.tokenize(queries[i:i + 2]) for i in range(0, 6, 2)],
                                           [encoder.tokenize(passages[i:i + 2]) for i in range(0, 6, 2)])
    if not train_mode:   # with dropout the masks of one big batch and of chunks differ; eval mode: exact
        assert loss == pytest.approx(float(full), rel=1e-5)
        torch.testing.assert_close(_grads(encoder), expected, rtol=1e-4, atol=1e-6)
    else:                # train mode: the replayed chunks must reproduce the cached pass's dropout
        assert torch.isfinite(_grads(encoder)).all() and loss > 0


def test_grad_cache_replays_dropout(tiny_model_dir):
    """The cached pass and the re-embedding of each chunk see the same dropout masks: the gradient equals
    that of a graph built chunk by chunk with the same random states."""
    encoder = SentenceEncoder(tiny_model_dir)
    encoder.train()
    q = [encoder.tokenize(SENTENCES[i:i + 3]) for i in (0, 3)]
    p = [encoder.tokenize(SENTENCES[::-1][i:i + 3]) for i in (0, 3)]
    torch.manual_seed(5)
    vectors = [encoder(**chunk) for chunk in [*q, *p]]     # same order of random draws as GradCache's pass 1
    contrastive.in_batch_negatives_loss(torch.cat(vectors[:2]), torch.cat(vectors[2:])).backward()
    expected = _grads(encoder).clone()
    encoder.zero_grad()
    torch.manual_seed(5)
    contrastive.grad_cache_backward(encoder, q, p)
    torch.testing.assert_close(_grads(encoder), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss", st.LOSSES)
def test_a_step_in_length_sorted_chunks_is_the_whole_batch_s_step(tiny_model_dir, loss):
    """The trainer sorts a batch's pairs by length and encodes each side in chunks of FORWARD_CHUNK: the loss and
    the gradient are those of the whole batch in its drawn order (eval mode: no dropout)."""
    n = 2 * st.FORWARD_CHUNK + 3                        # three chunks, the last one short
    a = [" ".join(SENTENCES[i % 6].split()[: 2 + i % 7]) for i in range(n)]
    b = [SENTENCES[(i * 5) % 6] * (1 + i % 3) for i in range(n)]
    labels = (np.arange(n) % 2).astype(np.float32) if loss == "cosine" else None
    trainer = st.PairTrainer(st.PairConfig(model=tiny_model_dir, loss=loss, batch_size=n, max_length=64),
                             st.PairData(a, b, labels), progress_bar=False)
    enc, idx = trainer.encoder.eval(), trainer.batches[0]
    ordered = trainer.by_length(idx)
    assert sorted(ordered) == sorted(idx) and not np.array_equal(ordered, idx)
    lengths = [len(trainer.a[i]) + len(trainer.b[i]) for i in ordered]
    assert lengths == sorted(lengths)

    def step(rows, vectors):
        va, vb = vectors(trainer.a, rows), vectors(trainer.b, rows)
        if loss == "cosine":
            value = contrastive.cosine_similarity_loss(va, vb, torch.from_numpy(labels[rows]))
        else:
            value = contrastive.in_batch_negatives_loss(va, vb)
        value.backward()
        grads = _grads(enc).clone()
        enc.zero_grad()
        return float(value), grads

    whole, whole_grads = step(idx, lambda ids, rows: enc(**enc.collate([ids[i] for i in rows])))
    assert len(trainer.chunks(trainer.a, ordered)) == 3
    chunked, chunked_grads = step(ordered, trainer.embed)
    assert chunked == pytest.approx(whole, rel=1e-5)
    torch.testing.assert_close(chunked_grads, whole_grads, rtol=1e-4, atol=1e-6)


def test_saved_activations_grow_with_the_batch(tiny_model_dir):
    encoder = SentenceEncoder(tiny_model_dir)
    small = contrastive.saved_activation_bytes(lambda: encoder(**encoder.tokenize(SENTENCES[:2])))
    large = contrastive.saved_activation_bytes(lambda: encoder(**encoder.tokenize(SENTENCES * 4)))
    assert 0 < small < large


def test_setfit_pairs():
    labels = [0, 0, 1, 1, 2, 2]
    pairs = st.setfit_pairs(SENTENCES, labels, iterations=3, seed=0)
    assert len(pairs) == 2 * 3 * 6 and pairs.labels.sum() == 3 * 6
    lookup = dict(zip(SENTENCES, labels))
    same = [lookup[a] == lookup[b] for a, b in zip(pairs.a, pairs.b)]
    assert same == [bool(y) for y in pairs.labels]
    assert all(a != b for a, b, y in zip(pairs.a, pairs.b, pairs.labels) if y)
    with pytest.raises(ValueError, match="at least two sentences"):
        st.setfit_pairs(SENTENCES[:3], [0, 0, 1], iterations=1)


def test_pair_config_errors_name_the_field():
    with pytest.raises(ValueError, match="PairConfig.loss"):
        st.PairConfig(loss="triplet")
    with pytest.raises(ValueError, match="PairConfig.mini_batch"):
        st.PairConfig(batch_size=8, mini_batch=16)
    with pytest.raises(ValueError, match="one label per pair"):
        st.PairData(["a", "b"], ["c", "d"], labels=[1])


def test_pair_training_lowers_the_loss_and_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    pairs = st.PairData(SENTENCES * 4, [s.upper() for s in SENTENCES] * 4)
    config = st.PairConfig(model=tiny_model_dir, batch_size=6, examples=24 * 6, lr=1e-3, max_length=32)
    first = pair_runs.pairs_or_load(config, pairs, progress_bar=False)
    assert np.mean(first.losses[-4:]) < np.mean(first.losses[:4]) and not first.cached
    again = pair_runs.pairs_or_load(config, pairs, progress_bar=False)
    assert again.cached and again.losses == first.losses
    probe = SENTENCES[:2]
    np.testing.assert_allclose(again.encoder.encode(probe), first.encoder.encode(probe), atol=1e-6)
    cached = pair_runs.pairs_or_load(config.replace(mini_batch=2), pairs, progress_bar=False)
    assert not cached.cached                      # another configuration, another entry


def test_contrastive_task_keeps_the_classification_steps(tiny_model_dir, small_tasks, tmp_path, monkeypatch):
    from mtl_utils import TrainConfig

    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    config = TrainConfig(tasks=("topic", "sentiment"), model=tiny_model_dir, batch_size=8, examples=64,
                         sampling="uniform", max_length=32)
    pairs = st.PairData(SENTENCES * 2, SENTENCES[::-1] * 2)
    trainer = st.ContrastiveTaskTrainer(config, small_tasks, pairs, pair_batch_size=4, pair_examples=12,
                                        progress_bar=False)
    result = trainer.fit()
    counts = result.steps["task"].value_counts().to_dict()
    assert counts == {"topic": 4, "sentiment": 4, "retrieval": 3}
    loaded = pair_runs.contrastive_task_or_load(config, small_tasks, pairs, 4, 12, progress_bar=False)
    again = pair_runs.contrastive_task_or_load(config, small_tasks, pairs, 4, 12, progress_bar=False)
    assert again.cached and not loaded.cached
    assert {t: c.shape for t, c in again.correct.items()} == {t: (len(small_tasks[t]["test"]),)
                                                              for t in config.tasks}
