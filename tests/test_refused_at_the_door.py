"""Issue 38: bad input refused at the door (the launch command's flags, duplicate passages), a run store that
serves what it holds (a read-only cache, a retrain killed between its renames) and data warnings that are
never lost (on a cache hit) or missing (train/validation overlap, one text with two labels)."""
import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from mtl_utils.core import paths
from mtl_utils.data import Task
from mtl_utils.data.checks import check_datasets
from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.training import sentence_training as st
from mtl_utils.training.config import TrainConfig
from series import launch, pair_runs, runs
from series.runs import run_key, train_or_load


@pytest.fixture()
def config(tiny_model_dir):
    return TrainConfig(model=tiny_model_dir, examples=16, batch_size=8, max_length=24, lr=1e-3, head_lr=1e-2)


@pytest.fixture()
def no_training(monkeypatch):
    """Make any start of work fail loudly: a refused flag must stop before :func:`launch.run`."""
    def started(*_args, **_kwargs):
        raise AssertionError("work started")
    monkeypatch.setattr(launch, "run", started)


def _refused(argv, capsys) -> str:
    """Run the launch command on ``argv``: it must exit with status 2 and one line on stderr, returned."""
    with pytest.raises(SystemExit) as exit_:
        launch.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("launch: error: "), err
    return err[0]


# -- 5. the launch command checks every flag before any work ------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["--examples", "0"], "--examples"), (["--examples", "-5"], "--examples"),
    (["--train-size", "0"], "--train-size"), (["--train-size", "-1"], "--train-size"),
    (["--eval-size", "0"], "--eval-size"), (["--eval-size", "-3"], "--eval-size"),
    (["--batch-size", "0"], "--batch-size"), (["--seed", "-1"], "--seed"), (["--seed", str(2 ** 32)], "--seed"),
    (["--lr", "0"], "--lr"), (["--lr", "nan"], "--lr"), (["--head-lr", "inf"], "--head-lr"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio"), (["--dropout", "1"], "--dropout"), (["--rounds", "0"], "--rounds"),
    (["--rounds", "9", "--examples", "16"], "--rounds"), (["--frozen-layers", "-1"], "--frozen-layers"),
    (["--tasks", "nope"], "--tasks"), (["--tasks", "topic", "topic"], "--tasks"), (["--seed", "x"], "--seed"),
])
def test_a_bad_flag_is_refused_in_one_line_before_any_work(argv, flag, no_training, capsys, tmp_path):
    out = tmp_path / "out"
    line = _refused([*argv, "--out", str(out)], capsys)
    assert flag in line
    assert not out.exists()


@pytest.mark.parametrize("model", ["./no-such-folder", "/no/such/model/folder", "models/a/b"])
def test_a_missing_model_folder_is_named_as_one_not_as_a_hub_id(model, no_training, capsys):
    assert "no such model folder" in _refused(["--model", model], capsys)


def test_an_out_that_cannot_be_written_is_refused_before_training(no_training, capsys, tmp_path, monkeypatch):
    a_file = tmp_path / "summary.txt"
    a_file.write_text("not a folder")
    assert "a file is there" in _refused(["--out", str(a_file)], capsys)
    assert "is a file, so the folder cannot be made" in _refused(["--out", str(a_file / "run")], capsys)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real_access(p, mode))
    assert "is not writable" in _refused(["--out", str(tmp_path / "run")], capsys)  # the tests run as root
    assert a_file.read_text() == "not a folder"


def test_every_task_of_the_series_is_accepted():
    args = launch.parse_args(["--tasks", "genre", "sentiment", "--train-size", "30", "--eval-size", "12"])
    tasks = launch.tasks_from(args)
    assert list(tasks) == ["genre", "sentiment"]
    assert tasks["genre"].labels == ("news", "opinion", "entertainment") and len(tasks["genre"]["train"]) == 30
    assert launch.config_from(args).tasks == ("genre", "sentiment")


def test_a_failure_after_the_checks_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "model"
    empty.mkdir()  # a folder, so the checks pass; it holds no model, so loading it fails
    status = launch.main(["--model", str(empty), "--tasks", "sentiment", "--train-size", "8", "--eval-size", "8",
                          "--examples", "8", "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and err[0].startswith("launch: error: ") and "Traceback" not in err[0]


def test_the_command_line_exits_2_with_one_line(tmp_path):
    """The real entry point: ``--examples 0`` once trained on the full data; now it is refused at once."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MTL_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "series.launch", "--examples", "0", "--model",
                           str(tmp_path / "no-such-model"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--examples" in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# -- 7. the run store serves what it holds ------------------------------------------------------------------

class _UnwritableLock:
    """What ``FileLock`` does in a folder this user cannot write (checked as a non-root user): the lock file
    cannot be opened, ``PermissionError``. The tests run as root, which ignores write bits."""

    def __init__(self, path, *args, **kwargs):
        self.path = path

    def acquire(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", self.path)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        return False


def _tree(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def _no_training(monkeypatch):
    def trained(*_args, **_kwargs):
        raise AssertionError("trained again")
    monkeypatch.setattr(runs, "train", trained)


def test_a_read_only_cache_serves_its_finished_run_writing_nothing(small_tasks, config, tmp_path, monkeypatch):
    first = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    before = _tree(tmp_path)
    monkeypatch.setattr(runs, "FileLock", _UnwritableLock)
    _no_training(monkeypatch)
    again = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    assert again.cached and np.array_equal(again.predictions["topic"], first.predictions["topic"])
    assert _tree(tmp_path) == before  # nothing written, nothing removed
    with pytest.raises(PermissionError, match="cannot be written .* holds no finished entry"):
        train_or_load(config.replace(seed=7), small_tasks, cache=tmp_path, progress_bar=False)
    assert _tree(tmp_path) == before


_LOAD_IN_CHILD = """
import sys
from series import corpora as data
from mtl_utils.training.config import TrainConfig
from series.runs import train_or_load
tasks = data.load_tasks(sizes={"train": 48, "validation": 24, "test": 24})
config = TrainConfig(model=sys.argv[1], examples=16, batch_size=8, max_length=24, lr=1e-3, head_lr=1e-2)
print("cached:", train_or_load(config, tasks, cache=sys.argv[2], progress_bar=False).cached)
"""


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="root needs setpriv to drop its "
                    "override of write bits")
def test_a_cache_without_write_permission_serves_its_finished_run(small_tasks, config, tiny_model_dir, tmp_path):
    """The same, for real: the cache's write bits off (``chmod -R a-w``), loaded by a process that obeys them
    (root without ``CAP_DAC_OVERRIDE``)."""
    train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    before = _tree(tmp_path)
    subprocess.run(["chmod", "-R", "a-w", str(tmp_path)], check=True)
    obeying = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    if obeying and subprocess.run([*obeying, "true"], capture_output=True).returncode:
        pytest.skip("this container does not let root drop CAP_DAC_OVERRIDE")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "MTL_DEVICE": "cpu",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([*obeying, sys.executable, "-c", _LOAD_IN_CHILD, tiny_model_dir, str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=300)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=True)
    assert done.returncode == 0 and "cached: True" in done.stdout, done.stderr[-2000:]
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("newer_finished", [True, False])
def test_a_retrain_killed_between_its_renames_is_put_back(small_tasks, config, tmp_path, monkeypatch,
                                                          newer_finished):
    """``--force`` publishes by moving the entry aside, then renaming the new one in; a kill in between left
    ``.old-<key>-*`` (the entry) and ``.tmp-<key>-*`` (the new run, finished or not). The next access serves the
    newest finished one, and nothing hidden is left."""
    first = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    root, key = tmp_path / "runs", run_key(config, small_tasks)
    os.replace(root / key, root / f".old-{key}-deadbeef")
    newer = dataclasses.replace(first, train_seconds=123.0)
    runs.save_result(newer, root / f".tmp-{key}-cafebabe")
    if not newer_finished:
        (root / f".tmp-{key}-cafebabe" / "manifest.json").unlink()  # killed while writing
    _no_training(monkeypatch)
    again = train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False)
    assert again.cached and again.train_seconds == (123.0 if newer_finished else first.train_seconds)
    runs.verify_entry(root / key)
    assert sorted(p.name for p in root.iterdir()) == [".locks", key]
    # read-only, the same state is served where it lies
    os.replace(root / key, root / f".old-{key}-0badf00d")
    monkeypatch.setattr(runs, "FileLock", _UnwritableLock)
    assert train_or_load(config, small_tasks, cache=tmp_path, progress_bar=False).cached
    assert not (root / key).exists()


def test_a_killed_pair_publish_is_put_back(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    pairs = st.PairData(["a cat", "a dog", "the sun", "the moon"], ["a kitten", "a puppy", "a star", "a planet"])
    config = st.PairConfig(model=tiny_model_dir, batch_size=2, examples=4, lr=1e-3, max_length=16)
    first = pair_runs.pairs_or_load(config, pairs, progress_bar=False)
    folder = tmp_path / "pairs" / pair_runs.pair_key(config, pairs)
    os.replace(folder, folder.with_name(f".old-{folder.name}-deadbeef"))  # killed after the first rename

    def trained(*_args, **_kwargs):
        raise AssertionError("trained again")
    monkeypatch.setattr(pair_runs, "PairTrainer", trained)
    again = pair_runs.pairs_or_load(config, pairs, progress_bar=False)
    assert again.cached and again.losses == first.losses and folder.is_dir()


# -- 8. data checks -------------------------------------------------------------------------------------------

def test_one_passage_text_under_two_ids_is_refused():
    with pytest.raises(ValueError, match=r"passages 'p1' and 'p3' have the same text \('same words'\)") as err:
        RetrievalSet(("q",), ("query",), ("p1", "p2", "p3"), ("same words", "other", "same words"),
                     {"q": frozenset({"p1"})})
    assert "\n" not in str(err.value)


def _with(tasks, name, split, frame):
    task = tasks[name]
    return {**tasks, name: Task(name, task.labels, {**task.splits, split: frame.reset_index(drop=True)})}


def test_the_train_test_overlap_is_warned_on_a_cache_hit_too(small_tasks, config, tmp_path):
    topic = small_tasks["topic"]
    leaky = _with(small_tasks, "topic", "test", pd.concat([topic["test"][:-2], topic["train"][:2]]))
    with pytest.warns(UserWarning, match="task 'topic': 2 texts are in both the train and the test split"):
        assert not train_or_load(config, leaky, cache=tmp_path, progress_bar=False).cached
    with pytest.warns(UserWarning, match="task 'topic': 2 texts are in both the train and the test split"):
        assert train_or_load(config, leaky, cache=tmp_path, progress_bar=False).cached


def test_train_validation_overlap_is_warned(small_tasks):
    topic = small_tasks["topic"]
    leaky = _with(small_tasks, "topic", "validation", pd.concat([topic["validation"], topic["train"][:3]]))
    with pytest.warns(UserWarning, match="task 'topic': 3 texts are in both the train and the validation split"):
        check_datasets(leaky, ["topic"])


def test_one_text_with_two_labels_is_warned(small_tasks):
    train = small_tasks["sentiment"]["train"]
    twice = pd.concat([train, train[:1].assign(label=1 - train["label"].iloc[0])])
    with pytest.warns(UserWarning, match="task 'sentiment': 1 texts have more than one label .*negative, positive"):
        check_datasets(_with(small_tasks, "sentiment", "train", twice), ["sentiment"])


def test_clean_data_warns_nothing(small_tasks):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_datasets(small_tasks, ["topic", "sentiment"])


def test_the_series_retrieval_set_has_no_repeated_passage():
    from series.headline_passages import load_headline_passages
    passages = load_headline_passages(quick=True).evaluation.passages
    assert len(set(passages)) == len(passages)

