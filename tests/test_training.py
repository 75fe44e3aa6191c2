"""The training engine on a tiny BERT: every bad setting refused up front, the loop's behaviour, determinism."""
import inspect
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TASKS

from mtl_utils import anatomy
from mtl_utils.data import Task, check_datasets
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.training import distributed, freezing, optim, sentence_training
from mtl_utils.training.config import TrainConfig, chance_loss_weights
from mtl_utils.training.frozen_cache import cached_forward, clear_shared
from mtl_utils.training.sampling import TaskBatches, TaskSampler
from mtl_utils.training.step_inputs import FromCache, FromTokens
from mtl_utils.training.trainer import StepLoss, Trainer, build_model, train


@pytest.fixture()
def tiny_config(tiny_model_dir):
    return TrainConfig(model=tiny_model_dir, examples=48, batch_size=8, max_length=32, lr=1e-3, head_lr=1e-2)


# -- TrainConfig refuses what would ruin a run --------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"tasks": "topic"}, r"tasks must be a tuple of task names, e.g. \('topic',\)"),
    ({"tasks": ()}, "tasks must be at least one task name"),
    ({"tasks": ("topic", "topic")}, "distinct task names"),
    ({"examples": -1}, "examples must be an integer of at least 1"),
    ({"examples": 0}, "examples must be an integer of at least 1"),
    ({"rounds": 1.5}, "rounds must be an integer of at least 1"),
    ({"batch_size": 0}, "batch_size must be an integer of at least 1"),
    ({"eval_batch_size": 0}, "eval_batch_size must be an integer of at least 1"),
    ({"max_length": 1}, "max_length must be an integer of at least 2"),
    ({"warmup_ratio": 1.5}, r"warmup_ratio must be a finite number >= 0 and <= 1"),
    ({"warmup_ratio": -0.1}, "warmup_ratio must be"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"head_lr": -1e-3}, "head_lr must be a finite number > 0"),
    ({"head_lr": float("nan")}, "head_lr must be a finite number"),
    ({"head_lr": {"topc": 1e-3}}, r"head_lr must be rates for trained tasks .* \(\['topc'\] is not one\)"),
    ({"head_lr": {"topic": -1.0}}, r"head_lr\['topic'\] must be a finite number > 0"),
    ({"weight_decay": -0.01}, "weight_decay must be a finite number >= 0"),
    ({"max_grad_norm": -1.0}, "max_grad_norm must be a finite number > 0"),
    ({"max_grad_norm": 0.0}, "max_grad_norm must be a finite number > 0"),
    ({"loss_weights": {"topic": -1.0}}, r"loss_weights\['topic'\] must be a finite number > 0"),
    ({"loss_weights": {"topic": float("nan")}}, r"loss_weights\['topic'\] must be a finite number"),
    ({"loss_weights": {"ner": 1.0}}, r"loss_weights must be weights of trained tasks"),
    ({"layer_decay": 1.2}, "layer_decay must be a finite number > 0 and <= 1"),
    ({"dropout": 1.0}, "dropout must be below 1"),
    ({"sampling": "random"}, "sampling must be one of"),
    ({"temperature": 0.0}, "temperature must be a finite number > 0"),
    ({"pooling": "sum"}, "pooling must be one of"),
    ({"seed": -1}, "seed must be an integer of at least 0"),
    ({"frozen_layers": -2}, "frozen_layers must be an integer of at least 0"),
    ({"frozen_heads": "topic"}, "frozen_heads must be a tuple of task names"),
    ({"frozen_heads": ("ner",)}, "frozen_heads must be heads of trained or watched tasks"),
    ({"length_bucketing": "yes"}, "length_bucketing must be True or False"),
    ({"init_from": "not-a-key"}, "init_from must be None or the 16-character cache key"),
    ({"watch_tasks": ("topic",), "tasks": ("sentiment",)}, "watch_tasks must be empty unless init_from"),
    ({"tasks": ("topic",), "watch_tasks": ("topic",), "init_from": "0" * 16}, "watch_tasks must be tasks that are not"),
])
def test_bad_settings_are_refused_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_good_settings_are_accepted():
    config = TrainConfig(tasks=["topic"], head_lr={"topic": 1e-3}, loss_weights={"topic": 2.0}, max_grad_norm=None)
    assert config.tasks == ("topic",) and config.replace(seed=3).seed == 3
    with pytest.raises(ValueError, match="rounds"):
        config.replace(rounds=0)


# -- data checks before any model loads ----------------------------------------------------------------------

def _with(small_tasks, task, split, frame):
    t = small_tasks[task]
    return {**small_tasks, task: Task(task, t.labels, {**t.splits, split: frame})}


@pytest.mark.parametrize("edit, message", [
    (lambda df: df.assign(label=df["label"].astype(float)), r"label 1\.0 is a float|label 0\.0 is a float"),
    (lambda df: df.assign(label=["business"] * len(df)), r"label 'business' is a str; labels are integer class ids"),
    (lambda df: df.drop(columns="label"), r"no 'label' column; its columns are \['text'\]"),
    (lambda df: df.drop(columns="text"), r"no 'text' column"),
    (lambda df: df.assign(text=[None] + list(df["text"][1:])), r"train split, row 0: text (None|nan) is not a non-empty"),
    (lambda df: df.assign(text=[float("nan")] + list(df["text"][1:])), r"row 0: text nan is not"),
    (lambda df: df.assign(text=["  "] + list(df["text"][1:])), r"row 0: text '  ' is not"),
    (lambda df: df.assign(label=[7] + list(df["label"][1:])), r"row 0: label 7 is outside 0..4"),
    (lambda df: df.iloc[:0], "train split is empty"),
])
def test_bad_data_is_refused_naming_task_split_and_row(small_tasks, edit, message):
    data = _with(small_tasks, "topic", "train", edit(small_tasks["topic"]["train"].copy()))
    with pytest.raises(ValueError, match=message):
        check_datasets(data, ["topic"])


def test_data_warnings_and_missing_task(small_tasks):
    train_df = small_tasks["topic"]["train"]
    one_class = _with(small_tasks, "topic", "train", train_df.assign(label=0))
    with pytest.warns(UserWarning, match="task 'topic': the training split has one class only"):
        check_datasets(one_class, ["topic"])
    leaky = _with(small_tasks, "topic", "test", pd.concat([small_tasks["topic"]["test"], train_df[:2]]))
    with pytest.warns(UserWarning, match="2 texts are in both the train and the test split"):
        check_datasets(leaky, ["topic"])
    with pytest.raises(KeyError, match="no data for task 'ner'"):
        check_datasets(small_tasks, ["ner"])


def test_head_size_must_fit_the_labels(small_tasks, tiny_config, tiny_model_dir):
    wrong = MultiTaskModel({"topic": ["a", "b", "c"]}, model=tiny_model_dir)
    with pytest.raises(ValueError, match="the model's head 'topic' predicts .* but the data's labels are"):
        Trainer(tiny_config.replace(tasks=("topic",)), small_tasks, model=wrong)


def test_budget_and_rounds(small_tasks, tiny_config):
    assert tiny_config.steps(small_tasks) == 6
    assert tiny_config.replace(examples=None).steps(small_tasks) == math.ceil(
        (len(small_tasks["topic"]["train"]) + len(small_tasks["sentiment"]["train"])) / 8)
    with pytest.raises(ValueError, match="rounds=9, but the budget is 6 steps"):
        Trainer(tiny_config.replace(rounds=9), small_tasks)


# -- the sampler and the batches -----------------------------------------------------------------------------

def test_task_sampler_strategies():
    sizes = {"a": 900, "b": 100}
    assert TaskSampler(sizes, "proportional").probabilities["a"] == pytest.approx(0.9)
    assert TaskSampler(sizes, "temperature", temperature=2).probabilities["a"] == pytest.approx(30 / 40)
    it = iter(TaskSampler(sizes, "uniform"))
    assert [next(it) for _ in range(4)] == [("a",), ("b",), ("a",), ("b",)]
    draws = iter(TaskSampler(sizes, "proportional", rng=np.random.default_rng(1)))
    assert 0.87 < np.mean([next(draws) == ("a",) for _ in range(2000)]) < 0.93
    summed = iter(TaskSampler(sizes, "summed"))
    assert [next(summed) for _ in range(2)] == [("a", "b"), ("a", "b")]


def test_batches_cover_each_example_once_per_pass_and_bucket_by_length():
    lengths = np.random.default_rng(0).integers(5, 60, size=800)
    batches = TaskBatches(lengths, 16, np.random.default_rng(0), bucketing=True)
    seen = np.concatenate([batches.next_indices() for _ in range(50)])
    assert sorted(seen) == list(range(800))
    plain = TaskBatches(lengths, 16, np.random.default_rng(0), bucketing=False)

    def padded(b):
        return sum(len(i) * lengths[i].max() for i in (b.next_indices() for _ in range(50)))

    assert padded(TaskBatches(lengths, 16, np.random.default_rng(1))) < 0.8 * padded(plain)


# -- the loop ------------------------------------------------------------------------------------------------

def test_steps_per_task_follow_the_sampler(small_tasks, tiny_config):
    uniform = train(tiny_config.replace(sampling="uniform", examples=80), small_tasks, progress_bar=False)
    assert uniform.steps["task"].tolist() == ["topic", "sentiment"] * 5
    assert uniform.steps.groupby("task")["task step"].max().to_dict() == {"topic": 5, "sentiment": 5}


def test_summed_steps_take_a_batch_of_every_task(small_tasks, tiny_config):
    """Summed: each step trains both tasks, so the same examples take half the steps of round-robin."""
    config = tiny_config.replace(sampling="summed", examples=80)
    assert config.steps(small_tasks) == 5 and config.replace(sampling="uniform").steps(small_tasks) == 10
    summed = train(config, small_tasks, progress_bar=False)
    assert summed.steps["task"].tolist() == ["topic", "sentiment"] * 5
    assert summed.steps["step"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert summed.steps.groupby("task")["task step"].max().to_dict() == {"topic": 5, "sentiment": 5}


def first_step_gradient(trainer: Trainer, module: torch.nn.Module) -> torch.Tensor:
    """The gradient one ``train_step`` leaves on ``module``'s parameters, before any update: the optimizer's
    ``step`` and ``zero_grad`` are switched off, and dropout too, so repeated passes see the same numbers."""
    trainer.begin()
    trainer.set_round_freezing(0)
    trainer.optimizer.step = lambda *a, **k: None
    trainer.optimizer.zero_grad = lambda **k: None
    trainer.model.eval()
    trainer.train_step()
    return torch.cat([p.grad.flatten() for p in module.parameters()]).clone()


@pytest.mark.filterwarnings(r"ignore:Seems like `optimizer.step\(\)` has been overridden")
def test_a_summed_step_follows_the_weighted_sum_of_the_tasks_gradients(small_tasks, tiny_config):
    """The summed step's gradient is the weighted sum of the gradients of each task's batch alone (the same
    batches: one configuration, only the trainer's weights changed; a zero weight leaves a task out)."""
    config = tiny_config.replace(sampling="summed", max_grad_norm=None)

    def first_gradient(weights):
        trainer = Trainer(config, small_tasks, progress_bar=False)
        trainer.loss_weights = weights
        return first_step_gradient(trainer, anatomy.layer_stack(trainer.model)[-1])

    topic, sentiment = first_gradient({"topic": 1.0, "sentiment": 0.0}), first_gradient({"topic": 0.0, "sentiment": 1.0})
    summed = first_gradient({"topic": 0.5, "sentiment": 2.0})
    assert topic.abs().sum() > 0 and sentiment.abs().sum() > 0  # each task's batch reaches the shared layer
    assert not torch.allclose(topic, sentiment, atol=1e-6)
    assert torch.allclose(summed, 0.5 * topic + 2.0 * sentiment, atol=1e-6)


def test_training_loss_falls(small_tasks, tiny_config):
    result = train(tiny_config.replace(tasks=("topic",), examples=8 * 30, rounds=3), small_tasks, progress_bar=False)
    losses = result.steps["loss"].to_numpy()
    assert losses[-8:].mean() < 0.85 * losses[:8].mean()
    assert result.history["train loss"].is_monotonic_decreasing


def test_training_is_deterministic(small_tasks, tiny_config):
    first = train(tiny_config, small_tasks, progress_bar=False)
    again = train(tiny_config, small_tasks, progress_bar=False)
    pd.testing.assert_frame_equal(first.steps, again.steps)
    for task in TASKS:
        assert np.array_equal(first.predictions[task], again.predictions[task])
    other = train(tiny_config.replace(seed=1), small_tasks, progress_bar=False)
    assert not np.allclose(first.steps["loss"], other.steps["loss"])


def test_best_round_is_restored(small_tasks, tiny_config, monkeypatch):
    """Round 2 is made worse on validation on purpose; the returned model must be round 1's."""
    real_validate, real_scores = Trainer.validate, Trainer.scores
    snapshots = {}

    def scores(self, task, split):
        result = real_scores(self, task, split)
        if split == "validation":  # round 1 (the first half of the steps) looks good, round 2 bad
            result = {**result, "macro_f1": 0.9 if self.step <= self.total_steps // 2 else 0.2}
        return result

    def validate(self, round_, losses, seconds):
        real_validate(self, round_, losses, seconds)
        snapshots[round_] = {k: v.clone() for k, v in self.model.state_dict().items()}

    monkeypatch.setattr(Trainer, "scores", scores)
    monkeypatch.setattr(Trainer, "validate", validate)
    result = train(tiny_config.replace(rounds=2), small_tasks, progress_bar=False)
    assert result.best_round == 1
    for name, value in result.model.state_dict().items():
        assert torch.equal(value, snapshots[1][name])
    assert any(not torch.equal(snapshots[1][n], snapshots[2][n]) for n in snapshots[1])


def test_without_model_selection_the_last_round_is_kept(small_tasks, tiny_config, monkeypatch):
    """The same rigged validation as above: with keep_best_round=False the run keeps round 2, its last, as a
    one-round run keeps its only one (the fair arm against a run with nothing to choose from)."""
    real_validate, real_scores = Trainer.validate, Trainer.scores
    snapshots = {}

    def scores(self, task, split):
        result = real_scores(self, task, split)
        if split == "validation":
            result = {**result, "macro_f1": 0.9 if self.step <= self.total_steps // 2 else 0.2}
        return result

    def validate(self, round_, losses, seconds):
        real_validate(self, round_, losses, seconds)
        snapshots[round_] = {k: v.clone() for k, v in self.model.state_dict().items()}

    monkeypatch.setattr(Trainer, "scores", scores)
    monkeypatch.setattr(Trainer, "validate", validate)
    result = train(tiny_config.replace(rounds=2, keep_best_round=False), small_tasks, progress_bar=False)
    assert result.best_round == 2 and len(result.history["round"].unique()) >= 2
    for name, value in result.model.state_dict().items():
        assert torch.equal(value, snapshots[2][name])
    with pytest.raises(ValueError, match="keep_best_round"):
        tiny_config.replace(keep_best_round="no")


def test_best_round_is_chosen_by_validation(small_tasks, tiny_config):
    result = train(tiny_config.replace(rounds=3, examples=72), small_tasks, progress_bar=False)
    trained = result.history[result.history["trained"]]
    by_round = trained.groupby("round")["val macro-F1"].mean()
    assert result.best_round == int(by_round.idxmax())


def test_nan_loss_raises(small_tasks, tiny_config, tiny_model_dir):
    broken = MultiTaskModel({"topic": TASKS["topic"]}, model=tiny_model_dir, max_length=32)
    with torch.no_grad():
        broken.heads["topic"].net[-1].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="the loss of task 'topic' is nan at step 0"):
        train(tiny_config.replace(tasks=("topic",)), small_tasks, model=broken, progress_bar=False)


def test_everything_frozen_is_refused(small_tasks, tiny_config):
    model = build_model(tiny_config, small_tasks)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        Trainer(tiny_config, small_tasks, model=model)


@pytest.mark.filterwarnings(r"ignore:Seems like `optimizer.step\(\)` has been overridden")
def test_loss_weights_scale_the_gradient(small_tasks, tiny_config):
    """A weight of 2 on a task doubles that task's gradient (same batch, same seed): checked on the first step."""
    grads = {}
    for weight in (1.0, 2.0):
        trainer = Trainer(tiny_config.replace(tasks=("topic",), loss_weights={"topic": weight}, max_grad_norm=None),
                          small_tasks, progress_bar=False)
        grads[weight] = first_step_gradient(trainer, trainer.model.heads["topic"].net[-1])
    assert torch.allclose(grads[2.0], 2 * grads[1.0], atol=1e-6)


def test_frozen_cache_training_matches_the_full_model(small_tasks, tiny_config):
    base = tiny_config.replace(frozen_layers=1, rounds=2)
    with_cache = train(base, small_tasks, progress_bar=False)
    without = train(base.replace(frozen_cache=False), small_tasks, progress_bar=False)
    assert np.abs(with_cache.steps["loss"].to_numpy() - without.steps["loss"].to_numpy()).max() < 1e-5
    for task in TASKS:
        assert np.array_equal(with_cache.predictions[task], without.predictions[task])
    assert set(with_cache.history["frozen layers"]) == {1}
    assert with_cache.history["cache seconds"].iloc[0] > 0


def test_gradual_unfreezing_schedule(small_tasks, tiny_config):
    result = train(tiny_config.replace(gradual_unfreezing=True, rounds=3), small_tasks, progress_bar=False)
    assert result.history.drop_duplicates("round")["frozen layers"].tolist() == [2, 1, 0]


def test_gradual_unfreezing_with_the_cache_trains_as_without_it_and_keeps_the_best_round(small_tasks, tiny_config,
                                                                                           monkeypatch):
    """Gradual unfreezing (rounds at k = 2, 1, 0): the frozen-layer cache changes nothing (the same step losses and
    predictions as without it, the cache built where layers are frozen), and the best round's weights are what
    the run returns, here round 1 (every later round is made to score worse on validation)."""
    config = tiny_config.replace(gradual_unfreezing=True, rounds=3, examples=96, dropout=0.0)
    real_scores, real_validate = Trainer.scores, Trainer.validate
    snapshots = {}

    def scores(self, task, split):
        result = real_scores(self, task, split)
        if split == "validation":
            result = {**result, "macro_f1": 1.0 - self.step / self.total_steps}  # later rounds look worse
        return result

    def validate(self, round_, losses, seconds):
        real_validate(self, round_, losses, seconds)
        snapshots.setdefault(self.config.frozen_cache, {})[round_] = {
            k: v.clone() for k, v in self.model.state_dict().items()}

    monkeypatch.setattr(Trainer, "scores", scores)
    monkeypatch.setattr(Trainer, "validate", validate)
    clear_shared()  # caches another test left in memory would be served with no cost
    cached = train(config, small_tasks, progress_bar=False)
    plain = train(config.replace(frozen_cache=False), small_tasks, progress_bar=False)
    assert np.abs(cached.steps["loss"].to_numpy() - plain.steps["loss"].to_numpy()).max() < 1e-5
    by_round = cached.history.drop_duplicates("round").set_index("round")
    assert by_round["cache seconds"].loc[1] > 0 and by_round["cache seconds"].loc[3] == 0  # no cache at k = 0
    assert plain.history["cache seconds"].eq(0).all()
    for result, runs in ((cached, snapshots[True]), (plain, snapshots[False])):
        assert result.best_round == 1
        for name, value in result.model.state_dict().items():
            assert torch.equal(value, runs[1][name]), name
        assert any(not torch.equal(runs[1][n], runs[3][n]) for n in runs[1])  # later rounds did train


def test_frozen_layers_out_of_range(small_tasks, tiny_config):
    with pytest.raises(ValueError, match="frozen_layers=9, but this model has 2 encoder layers"):
        Trainer(tiny_config.replace(frozen_layers=9), small_tasks)


def test_no_warnings_from_a_plain_run(small_tasks, tiny_config):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(tiny_config, small_tasks, progress_bar=False)


def test_joint_training_with_a_frozen_head_leaves_it_bit_identical(small_tasks, tiny_config):
    from series import compare_correct
    from series.experiments import head_unchanged, retention
    config = tiny_config.replace(frozen_heads=("topic",), sampling="uniform")
    result = train(config, small_tasks, progress_bar=False)
    start = build_model(config, small_tasks)
    assert head_unchanged(result, start, "topic")  # the frozen head, through joint training
    assert not head_unchanged(result, start, "sentiment")  # the trained one moved
    a, b = result.correct(small_tasks, "topic"), np.ones(len(small_tasks["topic"]["test"]), dtype=bool)
    row = compare_correct("frozen head", a, "always right", b, "topic")
    assert row["low"] <= row["difference"] <= row["high"] <= 0 and row["B accuracy"] == 1
    with pytest.raises(ValueError, match="different test sets"):
        compare_correct("a", a, "b", b[:-1], "topic")
    assert retention(0.9, 0.9, 0.5) == 1 and retention(0.9, 0.5, 0.5) == 0 and retention(0.9, 0.7, 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no gain to retain"):
        retention(0.4, 0.3, 0.5)


def test_chance_loss_weights_start_every_task_near_one(small_tasks):
    weights = chance_loss_weights(small_tasks, ("topic", "sentiment"))
    assert weights == pytest.approx({"topic": 1 / math.log(5), "sentiment": 1 / math.log(2)})
    for task, weight in weights.items():  # the chance-level loss, weighted, is exactly 1
        uniform = torch.zeros(1, small_tasks[task].num_labels)
        assert weight * torch.nn.functional.cross_entropy(uniform, torch.tensor([0])).item() == pytest.approx(1.0)


def test_attention_pooling_trains_in_a_run_even_over_a_frozen_backbone(small_tasks, tiny_config):
    """With the whole transformer frozen, the query still trains: the cache holds token vectors, not pooled
    sentence vectors (which would freeze the pooling too)."""
    result = train(tiny_config.replace(pooling="attention", frozen_layers=2, examples=32), small_tasks,
                   progress_bar=False)
    assert result.model.encoder.attention.query.abs().sum() > 0
    assert result.history["cache seconds"].iloc[0] >= 0 and set(result.history["frozen layers"]) == {2}


# -- the step a reader is shown: two seams passed in, the same numbers as the step written out -----------

def _inline_step(t: Trainer) -> dict[str, float]:
    """The step as one function with both branches written out (what ``Trainer.train_step`` computed before its
    seams): one process, token ids or the frozen cache, clip, update, schedule."""
    losses = {}
    for task in next(t.sampler):
        idx = t.batches[task].next_indices()
        cache = t.caches.get((task, "train"))
        if cache is not None:
            logits = cached_forward(t.model, cache.batch(idx), t.frozen_layers, task)[task]
        else:
            ids = t.tokens[task, "train"].ids
            logits = t.model(**t.model.encoder.collate([ids[i] for i in idx]), tasks=task)[task]
        losses[task] = torch.nn.functional.cross_entropy(logits, t.labels[task][idx], reduction="sum") / len(idx)
    sum(t.loss_weights[task] * loss for task, loss in losses.items()).backward()
    if t.config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(t.trainable, t.config.max_grad_norm)
    t.optimizer.step()
    t.scheduler.step()
    t.optimizer.zero_grad(set_to_none=True)
    return {task: float(loss.detach()) for task, loss in losses.items()}


def _ready(config, data) -> Trainer:
    clear_shared()
    trainer = Trainer(config, data, progress_bar=False)
    trainer.begin()
    trainer.set_round_freezing(trainer.freezing.schedule[0])
    trainer.model.train()
    freezing.set_frozen_eval(trainer.model)
    torch.manual_seed(123)  # the same dropout masks for both
    return trainer


@pytest.mark.parametrize("changes", [{}, {"sampling": "summed"}, {"frozen_layers": 1},
                                     {"frozen_layers": 1, "frozen_cache": False}, {"max_grad_norm": None}],
                         ids=["tokens", "summed", "cache", "frozen-no-cache", "no-clipping"])
def test_one_process_computes_bit_for_bit_what_the_written_out_step_did(small_tasks, tiny_config, changes):
    config = tiny_config.replace(**changes)
    shown, written_out = _ready(config, small_tasks), None
    shown_losses = [shown.train_step() for _ in range(4)]
    written_out = _ready(config, small_tasks)
    assert isinstance(shown.inputs, FromCache if config.frozen_layers and config.frozen_cache else FromTokens)
    assert shown_losses == [_inline_step(written_out) for _ in range(4)]
    a, b = shown.model.state_dict(), written_out.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_step_a_reader_is_shown_has_no_distributed_or_cache_branch():
    for method in (Trainer.train_step, Trainer.task_batch, StepLoss.forward):
        code = "\n".join(line.split("#")[0] for line in inspect.getsource(method).splitlines()[1:])
        body = code.split('"""')[-1]  # after the docstring
        for word in ("share", "distributed", "world", "cache", "if ", "clip_grad_norm_"):
            assert word not in body, f"{method.__qualname__} mentions {word!r}"


def test_the_seams_one_process_and_many():
    idx = np.arange(10)
    rows, divisor = distributed.OneProcess().rows(idx)
    assert rows is idx and divisor == 10.0
    for rank in range(3):
        many = distributed.ManyProcesses(distributed.World(rank, 3))
        assert [list(r) for r in [many.rows(idx)[0]]] == [list(distributed.share(idx, distributed.World(rank, 3))[0])]
    losses = {"a": torch.tensor(0.5), "b": torch.tensor(2.0)}
    assert distributed.OneProcess().loss_values(losses) == {"a": 0.5, "b": 2.0}
    assert isinstance(distributed.processes(distributed.World()), distributed.OneProcess)


@pytest.mark.parametrize("max_grad_norm", [None, 0.05])
def test_the_optimizer_step_clips_only_when_asked(max_grad_norm):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    (weight * torch.tensor([3.0, 4.0, 0.0])).sum().backward()  # gradient norm 5
    optim.optimizer_step(optimizer, scheduler, [weight], max_grad_norm)
    step = torch.ones(3) - weight.detach()
    assert float(step.norm()) == pytest.approx(5.0 if max_grad_norm is None else 0.05, rel=1e-5)
    assert weight.grad is None  # cleared


def test_every_trainer_trains_without_clipping_when_max_grad_norm_is_none(small_tasks, tiny_config, tiny_model_dir,
                                                                          monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("the gradient was clipped although max_grad_norm is None")

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", refused)
    config = tiny_config.replace(max_grad_norm=None)
    assert math.isfinite(Trainer(config, small_tasks, progress_bar=False).fit().steps["loss"].iloc[-1])
    texts = list(small_tasks["topic"]["train"]["text"][:16])
    pairs = sentence_training.PairData(texts, texts[::-1], labels=[i % 2 for i in range(16)])
    for loss in sentence_training.LOSSES:
        pair_config = sentence_training.PairConfig(model=tiny_model_dir, loss=loss, batch_size=4, examples=8,
                                                   max_length=32, max_grad_norm=None)
        assert all(map(math.isfinite, sentence_training.PairTrainer(pair_config, pairs, progress_bar=False)
                       .fit().losses))
    contrastive_run = sentence_training.ContrastiveTaskTrainer(config, small_tasks, pairs, 4, 8, progress_bar=False)
    assert "retrieval" in set(contrastive_run.fit().steps["task"])
    with pytest.raises(ValueError, match="max_grad_norm must be None"):
        sentence_training.PairConfig(max_grad_norm=0.0)


def test_a_run_knows_which_training_rows_it_saw(small_tasks, tiny_config, tmp_path, monkeypatch):
    """``seen``: the rows its batches drew, so another arm can fit on exactly the same examples. Less than
    one pass draws ceil(examples / batch) batches of distinct rows; the run store keeps them."""
    config = tiny_config.replace(tasks=("topic",), examples=20, batch_size=8)
    result = train(config, small_tasks, progress_bar=False)
    seen = result.seen["topic"]
    # three batches of up to 8 distinct rows (one of a pass's batches may be its shorter remainder)
    assert 16 < len(seen) <= 24 and len(np.unique(seen)) == len(seen) < len(small_tasks["topic"]["train"])
    whole = train(config.replace(examples=200), small_tasks, progress_bar=False)  # several passes: every row
    assert np.array_equal(whole.seen["topic"], np.arange(len(small_tasks["topic"]["train"])))
    from series import runs
    runs.save_result(result, tmp_path / "entry")
    again = runs.load_result(tmp_path / "entry", config)
    assert np.array_equal(again.seen["topic"], seen)
