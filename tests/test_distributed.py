"""Training on several processes: two CPU processes (gloo, one thread each) under torchrun train what one
process trains with the same global batch, the main process alone writes the run cache, and the device
selection of a GPU machine (one GPU per process, NCCL) works on a faked CUDA device."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_bert

from mtl_utils import runtime
from mtl_utils.training import distributed
from mtl_utils.training.trainer import build_model
from series import launch, scaling


@pytest.fixture(scope="module")
def tiny_no_dropout(tmp_path_factory):
    """A 2-layer random BERT without dropout: runs on different processes can then agree weight for weight."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-no-dropout"), hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [1, 2, 5, 8])
def test_shares_partition_the_batch_and_average_to_its_mean(size, batch):
    rng = np.random.default_rng(batch)
    idx, losses = rng.permutation(100)[:batch], rng.random(100)
    shares = [distributed.share(idx, distributed.World(rank, size)) for rank in range(size)]
    real = [rows for rows, divisor in shares if np.isfinite(divisor)]
    assert np.array_equal(np.concatenate(real), idx)  # every row once, in order; none twice
    assert all(len(rows) == 1 for rows, divisor in shares if np.isinf(divisor))  # an empty share still computes
    # DDP averages the processes' gradients: the average of their divided sums is the global batch's mean
    averaged = np.mean([losses[rows].sum() / divisor for rows, divisor in shares])
    assert averaged == pytest.approx(losses[idx].mean(), rel=1e-12)


def test_a_world_of_one_changes_nothing():
    idx = np.arange(7)
    rows, divisor = distributed.share(idx)
    assert rows is idx and divisor == 7  # the plain mean, as before there were processes
    assert distributed.world() == distributed.World(0, 1) and distributed.world().main
    assert distributed.broadcast("x") == "x"


# 46 training rows per task in batches of 5: every pass ends with a batch of one row, which leaves the
# second process without a share (it computes one row at weight 0); shares of 3 and 2 rows otherwise.
ARGS = ["--train-size", "46", "--eval-size", "24", "--examples", "120", "--batch-size", "5", "--dropout", "0"]


def test_two_processes_train_what_one_process_trains(tiny_no_dropout, tmp_path, monkeypatch):
    """Summed sampling (two tasks' batches in one forward call: what DDP needs) with the bottom layer frozen
    and cached, two rounds of gradual unfreezing (the trainable parameters change, so DDP wraps the model
    again) and the best round chosen on validation; notebook 07 checks round-robin steps (a head without a
    gradient in each step) with every layer trained, on the real model."""
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path / "cache"))
    args = ["--model", tiny_no_dropout, *ARGS, "--sampling", "summed", "--frozen-layers", "1", "--rounds", "2",
            "--gradual-unfreezing"]
    one = scaling.launch([*args, "--no-cache"], tmp_path / "one", processes=1)
    two = scaling.launch(args, tmp_path / "two", processes=2)
    assert (two["processes"], two["backend"], one["processes"]) == (2, "gloo", 1)
    assert one["steps"] == two["steps"] > 10  # more than one pass over the data: the last, short batch too
    apart, moved = scaling.weight_difference(one, two)["max |difference|"], _moved(one, args)
    assert apart < 1e-6 and apart < 0.01 * moved, (apart, moved)  # rounding, against what training moved
    np.testing.assert_allclose(one["losses"]["loss"], two["losses"]["loss"], rtol=1e-5, atol=1e-6)
    assert one["best round"] == two["best round"] and one["test answers"] == two["test answers"]
    # only the main process wrote the run cache: one entry, published whole; launched again, all load it
    entries = [p for p in (tmp_path / "cache" / "runs").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file()
    again = scaling.launch(args, tmp_path / "again", processes=2)
    assert again["cached"] and not two["cached"]
    assert scaling.weight_difference(two, again)["max |difference|"] == 0.0


def _moved(run: dict, args: list[str]) -> float:
    """How far training moved any weight from where the run started (the same seed builds the same model)."""
    cli = launch.parse_args(args)
    start = build_model(launch.config_from(cli), launch.tasks_from(cli)).state_dict()
    final = scaling.weights(run)
    return max((final[k] - start[k]).abs().max().item() for k in final)


def test_launch_failures_say_what_failed(tmp_path, monkeypatch):
    script = "import sys, time; print('loading'); print('boom: bad data', file=sys.stderr); sys.exit(3)"
    monkeypatch.setattr(scaling, "command", lambda args, processes: [sys.executable, "-c", script])
    with pytest.raises(RuntimeError, match="(?s)the run failed \\(exit 3\\).*boom: bad data"):
        scaling.launch([], tmp_path / "bad")
    slow = "import time; time.sleep(30)"
    monkeypatch.setattr(scaling, "command", lambda args, processes: [sys.executable, "-c", slow])
    with pytest.raises(RuntimeError, match="longer than 1 s and was stopped"):
        scaling.launch([], tmp_path / "slow", timeout=1)
    with pytest.raises(SystemExit):
        launch.parse_args(["--sampling", "nope"])


def test_without_dropout_turns_the_encoders_dropout_off(tmp_path):
    folder = scaling.without_dropout(None, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.0
    assert (folder / "model.safetensors").is_symlink()


def test_each_launched_process_takes_its_own_gpu(monkeypatch):
    """The GPU path without a GPU: CUDA faked as present with two devices."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("MTL_DEVICE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert runtime.device() == torch.device("cuda")  # alone: the default GPU
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert runtime.device() == torch.device("cuda", 1)  # process 1 of a machine: GPU 1
    assert runtime.device("cuda:0") == torch.device("cuda", 0)  # an explicit GPU wins
    assert runtime.device("cpu") == torch.device("cpu")
    assert distributed.backend(runtime.device()) == "nccl" and distributed.backend(torch.device("cpu")) == "gloo"
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match="LOCAL_RANK=2 has no GPU of its own: PyTorch sees 2"):
        runtime.device()
