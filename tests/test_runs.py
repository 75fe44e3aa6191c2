"""The run cache: keyed on everything a result depends on, verified on load, safe under concurrency."""
import json
import multiprocessing
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from mtl_utils.data import Task
from mtl_utils.training.config import TrainConfig
from series import experiments
from series import runs as runs_mod
from series.runs import code_fingerprint, data_fingerprint, run_key, train_or_load
from series.store import code_without_docs


@pytest.fixture()
def config(tiny_model_dir):
    return TrainConfig(model=tiny_model_dir, examples=24, batch_size=8, max_length=24, lr=1e-3, head_lr=1e-2)


def _relabel(tasks, name, labels):
    t = tasks[name]
    return {**tasks, name: Task(name, labels, t.splits)}


def test_key_covers_label_names_texts_and_config(small_tasks, config):
    key = run_key(config, small_tasks)
    assert key == run_key(config, small_tasks) and len(key) == 16
    renamed = _relabel(small_tasks, "sentiment", ("positive", "negative"))
    assert run_key(config, renamed) != key
    edited = small_tasks["topic"]["test"].copy()
    edited.loc[0, "text"] += "!"
    t = small_tasks["topic"]
    assert run_key(config, {**small_tasks, "topic": Task("topic", t.labels, {**t.splits, "test": edited})}) != key
    assert run_key(config.replace(seed=1), small_tasks) != key


def test_separator_characters_cannot_make_two_data_sets_collide(small_tasks):
    """Texts are length-prefixed: ['a\\x1fb'] and ['a', 'b'] are different data."""
    def one(texts):
        frame = pd.DataFrame({"text": texts, "label": [0] * len(texts)})
        return {"t": Task("t", ("x", "y"), {"train": frame, "validation": frame, "test": frame})}

    assert data_fingerprint(one(["a\x1fb"]), ["t"]) != data_fingerprint(one(["a", "b"]), ["t"])


def test_code_fingerprint_ignores_docstrings_and_comments_but_not_code():
    source = 'def f(x):\n    """Add one."""\n    return x + 1  # one\n'
    assert code_without_docs(source) == code_without_docs(source.replace("Add one.", "Add 1.").replace("# one", ""))
    assert code_without_docs(source) != code_without_docs(source.replace("x + 1", "x + 2"))
    assert len(code_fingerprint()) == 64


def test_train_then_load_is_identical(small_tasks, config, tmp_path):
    first = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    again = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    assert not first.cached and again.cached
    pd.testing.assert_frame_equal(first.test, again.test)
    pd.testing.assert_frame_equal(first.steps, again.steps)
    for task in ("topic", "sentiment"):
        assert np.array_equal(first.predictions[task], again.predictions[task])
    texts = list(small_tasks["topic"]["test"]["text"][:5])
    assert np.array_equal(first.model.logits(texts)["topic"], again.model.logits(texts)["topic"])


@pytest.mark.parametrize("damage", [
    lambda f: (f / "model" / "model.safetensors").write_bytes(b"truncated"),
    lambda f: (f / "result.json").write_text("{junk"),
    lambda f: (f / "history.csv").unlink(),
    lambda f: (f / "test.csv").write_text("task,accuracy\n"),
    lambda f: (f / "manifest.json").unlink(),
    lambda f: _flip_a_byte(f / "model" / "model.safetensors"),
])
def test_a_damaged_entry_is_reported_and_retrained(small_tasks, config, tmp_path, damage):
    first = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    folder = tmp_path / "runs" / run_key(config, small_tasks)
    damage(folder)
    with pytest.warns(UserWarning, match=f"cached run {folder} is damaged .*training it again"):
        again = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    assert not again.cached
    pd.testing.assert_frame_equal(first.test, again.test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False).cached


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    path.write_bytes(bytes(data))


def test_stale_temporary_folders_are_removed(small_tasks, config, tmp_path):
    key = run_key(config, small_tasks)
    stale = tmp_path / "runs" / f".tmp-{key}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "half-written").write_text("x")
    train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [".locks", key]


def _train_in_child(args):
    model_dir, cache = args
    import os
    os.environ["TQDM_DISABLE"] = "1"
    from mtl_utils.training.config import TrainConfig as TC
    from series.corpora import load_tasks
    from series.runs import train_or_load as tol
    tasks = load_tasks(sizes={"train": 48, "validation": 24, "test": 24})
    cfg = TC(model=model_dir, examples=24, batch_size=8, max_length=24, lr=1e-3, head_lr=1e-2)
    result = tol(cfg, tasks, cache=cache, progress_bar=False)
    return result.cached, result.predictions["topic"].tolist()


def test_two_processes_training_one_configuration(small_tasks, config, tmp_path, tiny_model_dir):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outcomes = pool.map(_train_in_child, [(tiny_model_dir, str(tmp_path))] * 2)
    assert sorted(cached for cached, _ in outcomes) == [False, True]  # one trained, the other waited and loaded
    assert outcomes[0][1] == outcomes[1][1]
    entries = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    runs_mod.verify_entry(entries[0])


def test_continuation_from_a_finished_run(small_tasks, config, tmp_path):
    start = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    cont = TrainConfig(model=config.model, tasks=("sentiment",), watch_tasks=("topic",), frozen_heads=("topic",),
                       frozen_layers=2, init_from=run_key(config, small_tasks), examples=16, rounds=2, batch_size=8,
                       max_length=24, lr=1e-3, head_lr=1e-2)
    result = train_or_load(cont, small_tasks, cache=tmp_path, progress_bar=False)
    topic = result.history[result.history["task"] == "topic"]
    assert topic["round"].tolist() == [0, 1, 2] and topic["val accuracy"].nunique() == 1
    assert np.array_equal(result.predictions["topic"], start.predictions["topic"])  # frozen backbone + head
    missing = cont.replace(init_from="0" * 16)
    with pytest.raises(FileNotFoundError, match="no finished, intact run"):
        train_or_load(missing, small_tasks, cache=tmp_path, progress_bar=False)
    shutil.rmtree(tmp_path / "runs" / run_key(config, small_tasks) / "model")
    with pytest.raises(FileNotFoundError, match="train that run first"):
        train_or_load(cont.replace(seed=5), small_tasks, cache=tmp_path, progress_bar=False)


def test_manifest_lists_every_file(small_tasks, config, tmp_path):
    train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    folder = tmp_path / "runs" / run_key(config, small_tasks)
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(manifest) == files


def test_label_budget_grid_trains_every_budget_and_seed_and_reloads(small_tasks, config, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    configs = {"multi": config, "single": config.replace(tasks=("topic",))}
    per_budget, table = experiments.label_budget_grid(configs, small_tasks, "topic", [10, None], [0, 1])
    assert set(per_budget) == {10, None} and all(len(r) == 4 for r in per_budget.values())
    topic = table[table["task"] == "topic"]
    assert sorted(topic["labels"].unique()) == [10, len(small_tasks["topic"]["train"])]
    assert (table[table["task"] == "sentiment"]["experiment"] == "multi").all()  # only multi trains sentiment
    assert not table["cached"].any()
    _, again = experiments.label_budget_grid(configs, small_tasks, "topic", [10, None], [0, 1])
    assert again["cached"].all()  # each (budget, seed) subset is drawn the same way every time: same run keys
    pd.testing.assert_series_equal(again["accuracy"], table["accuracy"])
    rows = experiments.label_budget_table(per_budget, small_tasks, [("multi", "single")], "topic")
    assert list(rows["labels"]) == [10, "all"] and (rows["seeds"] == 2).all()
    assert (rows["low"] <= rows["difference"]).all() and (rows["difference"] <= rows["high"]).all()


def test_probes_pair_with_fine_tuned_runs_on_the_same_labelled_subsets(small_tasks, config, tmp_path, monkeypatch):
    from mtl_utils.evaluation.probing import probe_cv
    from series.corpora import with_train_labels

    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    topic = small_tasks["topic"]
    rng = np.random.default_rng(0)
    vectors = {s: np.eye(5)[topic[s]["label"].to_numpy()] + rng.normal(0, 0.8, (len(topic[s]), 5))
               for s in ("train", "test")}
    single = {"fine-tuned": config.replace(tasks=("topic",))}
    per_budget, _ = experiments.label_budget_grid(single, small_tasks, "topic", [15, None], [0, 1])
    probes, rows = experiments.label_budget_probes(vectors["train"], vectors["test"], small_tasks, "topic",
                                                   [15, None], [0, 1])
    subset = with_train_labels(topic, 15, 1)["train"]  # seed 1's subset, the one its fine-tuned run saw
    assert list(rows["labels"]) == [len(subset)] * 2 + [len(topic["train"])] * 2
    assert list(rows["budget"]) == [15, 15, "all", "all"] and (rows["experiment"] == "frozen encoder + probe").all()
    rows_of = [list(topic["train"]["text"]).index(t) for t in subset["text"]]
    direct = probe_cv(vectors["train"][rows_of], subset["label"].to_numpy(), vectors["test"],
                      topic["test"]["label"].to_numpy(), C_grid=(1.0,), seed=1)  # C fixed
    assert np.array_equal(direct.correct, probes[15][1].correct)
    table = experiments.versus_probes(per_budget, "fine-tuned", probes, "probe", small_tasks, "topic")
    assert list(table["labels"]) == [15, "all"] and (table["seeds"] == 2).all()
    assert (table["low"] <= table["difference"]).all() and (table["difference"] <= table["high"]).all()
    test_y = topic["test"]["label"].to_numpy()
    for n, row in zip((15, None), table.to_dict("records")):  # each seed's run minus the probe of the same seed
        expected = [float(np.mean(per_budget[n][("fine-tuned", s)].predictions["topic"] == test_y))
                    - probes[n][s].accuracy for s in (0, 1)]
        assert row["per seed"] == pytest.approx(expected), (n, row["per seed"], expected)
    with pytest.raises(KeyError, match="no runs of 'typo'"):
        experiments.versus_probes(per_budget, "typo", probes, "probe", small_tasks, "topic")
    with pytest.raises(KeyError, match="probes missing"):
        experiments.versus_probes(per_budget, "fine-tuned", {15: probes[15], None: {0: probes[None][0]}}, "probe",
                                  small_tasks, "topic")
    with pytest.raises(ValueError, match="one vector per text"):
        experiments.label_budget_probes(vectors["train"][:-1], vectors["test"], small_tasks, "topic", [15], [0])


def test_seeds_can_differ_by_budget():
    assert experiments.seeds_for([0, 1], 50) == [0, 1]
    per_budget = {50: [0, 1, 2, 3], None: [0, 1]}
    assert experiments.seeds_for(per_budget, 50) == [0, 1, 2, 3] and experiments.seeds_for(per_budget, None) == [0, 1]
    with pytest.raises(KeyError, match="no seeds for budget 200"):
        experiments.seeds_for(per_budget, 200)
