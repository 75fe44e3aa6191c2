"""Nothing stale, nothing foreign, nothing broken passes as a good result: one test (or a few) per way a user
could have got a wrong answer or lost files without being told. Each failed on the code before the package was
put in layers."""
import copy
import io
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TASKS
from transformers import AutoModel

from mtl_utils.core import digests, runtime
from mtl_utils.data import Task
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.serving import predict
from mtl_utils.serving import variants as serving
from mtl_utils.training.config import TrainConfig
from series import records, runs
from series import serving_measurements as measure
from series.runs import run_key, train_or_load


@pytest.fixture()
def model(tiny_model_dir):
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32)


@pytest.fixture()
def config(tiny_model_dir):
    return TrainConfig(model=tiny_model_dir, examples=24, batch_size=8, max_length=24, lr=1e-3, head_lr=1e-2)


# -- 1. a save never deletes what it did not write ------------------------------------------------------------

def test_save_refuses_a_hugging_face_model_folder(model, tiny_model_dir, tmp_path):
    """A folder with a ``config.json`` that is not ours (here a Hugging Face model folder) is not a checkpoint."""
    foreign = tmp_path / "bert"
    shutil.copytree(tiny_model_dir, foreign)
    before = sorted(p.name for p in foreign.iterdir())
    with pytest.raises(FileExistsError, match="is not a MultiTaskModel checkpoint"):
        model.save(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == before
    AutoModel.from_pretrained(foreign)  # still the model it was


def test_files_a_user_added_to_a_checkpoint_survive_a_re_save(model, tmp_path):
    folder = model.save(tmp_path / "ckpt")
    (folder / "NOTES.md").write_text("how I trained it")
    (folder / "plots").mkdir()
    (folder / "plots" / "loss.txt").write_text("0.1")
    with torch.no_grad():
        model.heads["topic"].net[-1].bias.add_(1.0)
    model.save(folder)
    assert (folder / "NOTES.md").read_text() == "how I trained it"
    assert (folder / "plots" / "loss.txt").read_text() == "0.1"
    loaded = MultiTaskModel.load(folder)
    assert torch.equal(loaded.heads["topic"].net[-1].bias, model.heads["topic"].net[-1].bias)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_save_killed_before_publishing_its_finished_copy_is_recovered(model, tmp_path):
    """A kill after the old checkpoint was moved aside and the new one finished: the newer one is published."""
    folder = model.save(tmp_path / "ckpt")
    os.replace(folder, tmp_path / ".ckpt.old-deadbeef")
    with torch.no_grad():
        model.heads["topic"].net[-1].bias.add_(1.0)
    os.replace(model.save(tmp_path / "newer"), tmp_path / ".ckpt.tmp-cafebabe")  # finished, never renamed in
    loaded = MultiTaskModel.load(folder)
    assert torch.equal(loaded.heads["topic"].net[-1].bias, model.heads["topic"].net[-1].bias)  # the newer one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_save_killed_between_its_renames_is_recovered(model, tmp_path):
    """The old checkpoint moved aside, the new one never renamed in: the next load finds the checkpoint."""
    folder = model.save(tmp_path / "ckpt")
    os.replace(folder, tmp_path / ".ckpt.old-deadbeef")  # what a kill after the first rename leaves
    loaded = MultiTaskModel.load(folder)
    assert folder.is_dir() and loaded.task_names == model.task_names
    assert not (tmp_path / ".ckpt.old-deadbeef").exists()
    model.save(folder)  # and saving over it works, leaving nothing hidden behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- 2. the run key follows the base model's files and every module on the training path ---------------------

def test_the_run_key_follows_the_base_models_weights_not_its_name(small_tasks, tiny_model_dir, tmp_path):
    folder = tmp_path / "base"
    shutil.copytree(tiny_model_dir, folder)
    config = TrainConfig(model=str(folder), examples=24, batch_size=8, max_length=24)
    before = run_key(config, small_tasks)
    assert run_key(config, small_tasks) == before
    settings = (folder / "config.json").read_bytes()
    transformer = AutoModel.from_pretrained(folder)
    with torch.no_grad():
        transformer.embeddings.word_embeddings.weight.mul_(1.5)
    transformer.save_pretrained(folder)  # the same folder name, other weights
    (folder / "config.json").write_bytes(settings)  # and nothing else changed
    assert run_key(config, small_tasks) != before


def test_every_module_the_trainer_imports_is_among_the_training_modules():
    names = {m.__name__ for m in runs.training_modules()}
    for needed in ("core.seeding", "core.batching", "core.runtime", "core.assets", "modeling.encoder", "modeling.model", "modeling.pooling",
                   "training.config", "training.sampling", "training.trainer", "training.validation_rounds",
                   "training.frozen_cache", "training.optim", "training.step_inputs", "training.distributed",
                   "modeling.backbone", "evaluation.metrics", "data.checks"):
        assert f"mtl_utils.{needed}" in names, needed
    assert "series.runs" not in names and "series.plots" not in names
    assert "mtl_utils" not in names and "mtl_utils.training" not in names  # packages imported from, not their code


# -- 3. a diverged run is never cached or returned as finished ------------------------------------------------

@pytest.mark.parametrize("change", [
    {"examples": 8, "weight_decay": 1e9, "lr": 1e30, "head_lr": 1e30},  # one step: its loss was fine, the update not
    {"weight_decay": 1e9},
    {"lr": 1e6, "head_lr": 1e6, "max_grad_norm": None},
])
def test_a_run_that_diverges_is_not_cached(small_tasks, config, tmp_path, change):
    """The last update can break the weights after the last loss was checked; the run must still not count."""
    with pytest.raises(FloatingPointError, match="not finite|non-finite|loss"):
        train_or_load(config.replace(**change), small_tasks, cache=tmp_path, progress_bar=False)
    assert not [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]


# -- 4. a cached result equals a fresh one ----------------------------------------------------------------------

def test_a_cached_result_has_the_fresh_runs_device_and_trainable_parameters(small_tasks, config, tmp_path):
    frozen = config.replace(frozen_layers=1, frozen_heads=("sentiment",))
    fresh = train_or_load(frozen, small_tasks, cache=tmp_path, progress_bar=False)
    cached = train_or_load(frozen, small_tasks, cache=tmp_path, progress_bar=False)
    assert cached.cached and not fresh.cached
    flags = {n: p.requires_grad for n, p in fresh.model.named_parameters()}
    assert not all(flags.values())
    assert {n: p.requires_grad for n, p in cached.model.named_parameters()} == flags
    assert cached.model.encoder.device == runtime.device(frozen.device)


# -- 5. a task is one name ---------------------------------------------------------------------------------------

def test_a_task_stored_under_another_name_is_refused(small_tasks, config, tmp_path):
    swapped = {"topic": small_tasks["sentiment"], "sentiment": small_tasks["topic"]}
    with pytest.raises(ValueError, match=r"data\['topic'\] is the task named 'sentiment'"):
        train_or_load(config, swapped, cache=tmp_path, progress_bar=False)


# -- 6. inputs are checked before the run key, configs always serialise --------------------------------------------

def _with(task: Task, split: str, frame: pd.DataFrame) -> Task:
    return Task(task.name, task.labels, {**task.splits, split: frame})


@pytest.mark.parametrize("damage, message", [
    (lambda df: df.drop(columns="label"), "no 'label' column"),
    (lambda df: df.assign(label=df["label"].astype(float)), "label 0.0 is a float"),
    (lambda df: df.assign(label=df["label"].astype(str)), "is a str"),
])
def test_bad_labels_are_refused_before_the_key(small_tasks, config, damage, message):
    bad = {**small_tasks, "topic": _with(small_tasks["topic"], "train", damage(small_tasks["topic"]["train"]))}
    with pytest.raises(ValueError, match=message):
        run_key(config, bad)


def test_numpy_numbers_in_a_config_are_stored_as_python_numbers(small_tasks, config, tmp_path):
    numpy_config = config.replace(examples=np.int64(16), lr=np.float32(1e-3), head_lr={"topic": np.float64(1e-2)},
                                  seed=np.int32(0))
    assert type(numpy_config.examples) is int and type(numpy_config.lr) is float
    assert type(numpy_config.head_lr["topic"]) is float
    json.dumps(numpy_config.to_dict())
    result = train_or_load(numpy_config, small_tasks, cache=tmp_path, progress_bar=False)
    assert train_or_load(numpy_config, small_tasks, cache=tmp_path, progress_bar=False).cached
    assert not result.cached


def test_max_length_beyond_the_position_embeddings_is_refused_up_front(tiny_model_dir):
    with pytest.raises(ValueError, match="position embeddings for 128"):
        MultiTaskModel(TASKS, model=tiny_model_dir, max_length=200)


def test_text_that_is_not_utf8_names_its_line(tmp_path, model, capsys):
    folder = model.save(tmp_path / "ckpt")
    bad = tmp_path / "in.txt"
    bad.write_bytes(b"A fine film.\n\nBad \xff byte here.\n")
    assert predict.main([str(folder), "--file", str(bad)], stdout=io.StringIO()) == 2
    assert "line 3 of --file" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"sentences\[1\] cannot be encoded as UTF-8"):
        model.predict(["fine", "bad \udcff"])


# -- 7. replayed timings are keyed on what the timing depends on ---------------------------------------------------

def test_timing_replay_follows_the_code_the_cpu_and_the_libraries(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return {"speed": pd.DataFrame({"x": [len(calls)]})}

    records.timings("t", {"model": "m"}, measure)
    assert records.timings("t", {"model": "m"}, measure).replayed and len(calls) == 1
    records.timings("t", {"model": "m"}, measure, code=(digests,))  # other timed code
    assert len(calls) == 2
    cpu = runtime.cpu()
    monkeypatch.setattr(runtime, "cpu", lambda: {"model": cpu["model"], "flags": [*cpu["flags"], "amx_int8"]})
    records.timings("t", {"model": "m"}, measure, code=(digests,))  # the same CPU model, other instruction sets
    assert len(calls) == 3
    monkeypatch.setattr(runtime, "cpu", lambda: {"model": "Other CPU", "flags": cpu["flags"]})
    records.timings("t", {"model": "m"}, measure, code=(digests,))
    assert len(calls) == 4
    monkeypatch.setattr(records, "_version", lambda package: "99.0")
    records.timings("t", {"model": "m"}, measure, code=(digests,))
    assert len(calls) == 5
    records.timings("t", {"model": "m", "cpu": "user field"}, measure, code=(digests,))  # no clash with ours
    assert len(calls) == 6


def test_the_cpu_model_is_recorded(monkeypatch):
    env = records.environment()
    assert env["cpu"] == runtime.cpu()["model"] and "cpu flags" in env
    if os.path.exists("/proc/cpuinfo") and "model name" in open("/proc/cpuinfo").read():
        assert env["cpu"] not in ("", "x86_64", "aarch64")  # the model name, not the architecture


# -- 8. serving runs on the CPU on purpose, and keep_fp32 means what it says -----------------------------------

def test_keep_fp32_takes_names_or_indices_only(model):
    with pytest.raises(ValueError, match="not a string"):
        serving.torch_int8_variant(model, keep_fp32="encoder.transformer.encoder.layer.1")
    with pytest.raises(ValueError, match="outside 0..1"):
        serving.torch_int8_variant(model, keep_fp32=[5])
    for bad in (["encoder.nothing"], [""]):
        with pytest.raises(ValueError, match="not a layer index or a module"):
            serving.torch_int8_variant(model, keep_fp32=bad)
    by_index = serving.torch_int8_variant(model, keep_fp32=[1])
    by_name = serving.torch_int8_variant(model, keep_fp32=["encoder.transformer.encoder.layer.1"])
    everything = serving.torch_int8_variant(model)
    count = lambda v: int(v.description.split()[3])  # "int8 weights in N linear layers..."
    assert count(by_index) == count(by_name) < count(everything)


def test_serving_moves_a_model_off_another_device_to_the_cpu(model, monkeypatch):
    """A model that says it is on a GPU is served from a CPU copy; the original is left where it was."""
    class Elsewhere(type(model.encoder)):
        @property
        def device(self):
            return torch.device("meta") if self is fake_encoder else torch.device("cpu")

    fake = copy.deepcopy(model)
    fake_encoder = fake.encoder
    fake.encoder.__class__ = Elsewhere
    served = serving.on_cpu(fake)
    assert served is not fake and served.encoder.device.type == "cpu"
    assert fake.encoder.device.type == "meta"  # the original is left where it was
    assert serving.on_cpu(model) is model


def test_every_serving_measurement_goes_through_on_cpu(model, small_tasks, tiny_model_dir, tmp_path, monkeypatch):
    """measure_variants, one_vs_two and the int8 variant all serve from the CPU copy (counted calls)."""
    seen = []
    real = serving.on_cpu
    monkeypatch.setattr(serving, "on_cpu", lambda m: seen.append(m) or real(m))
    texts = list(small_tasks["topic"]["test"]["text"][:8])
    single = {t: MultiTaskModel({t: labels}, model=tiny_model_dir, max_length=32) for t, labels in TASKS.items()}
    measure.one_vs_two(model, single, texts[:2], texts, repeats=1)
    assert len(seen) == 3
    measure.measure_variants(model, {"topic": small_tasks["topic"]}, texts, tmp_path, texts[:4], repeats=1,
                             sensitivity_texts=4, requests=2)
    assert len(seen) >= 4 and seen[3] is model


def test_a_cached_load_reads_each_weights_file_once(small_tasks, config, tmp_path, monkeypatch):
    """The run's manifest and the checkpoint's own checksums both cover the weights; hashing is remembered per
    unchanged file, so loading a cached run reads them once, not twice."""
    train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    digests._FILE_DIGESTS.clear()
    hashed = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        hashed.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(digests, "open", counting_open, raising=False)
    assert train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False).cached
    weights = [p for p in hashed if p.startswith(str(tmp_path)) and p.endswith("model.safetensors")]
    assert len(weights) == 1, hashed
