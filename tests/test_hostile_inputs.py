"""Hostile inputs (issue 38): a checkpoint or model folder never runs its own code, a stored static int8 model
is served only while its manifest ties it to this checkpoint's weights, RoBERTa-like position embeddings give
their real length limit, and bad settings or inputs are refused at the door with a one-line error."""
import builtins
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import SENTENCES, TASKS
from safetensors import safe_open
from safetensors.torch import save_file

from mtl_utils.modeling import checkpoint as checkpoint_mod
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.modeling.model import CheckpointError, MultiTaskModel
from mtl_utils.serving import predict, static_int8

ROOT = Path(__file__).resolve().parents[1]

CUSTOM_CODE = '''
import pathlib
pathlib.Path({marker!r}).write_text("ran")
from transformers import BertConfig, BertModel


class EvilConfig(BertConfig):
    model_type = "evil"


class EvilModel(BertModel):
    config_class = EvilConfig
'''


@pytest.fixture(autouse=True)
def nothing_asks_on_stdin(monkeypatch):
    """transformers asks "Do you wish to run the custom code? [y/N]" with input(): that must never happen."""
    def asked(*args, **kwargs):
        raise AssertionError(f"something asked on standard input: {str(args[:1])[:200]}")

    monkeypatch.setattr(builtins, "input", asked)


@pytest.fixture(scope="module")
def saved(tiny_model_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32)
    return model.save(tmp_path_factory.mktemp("ckpt") / "model")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(err) -> str:
    message = str(err.value if hasattr(err, "value") else err)
    assert len(message.strip().splitlines()) == 1, message
    return message


# 1. No checkpoint and no model folder runs code -------------------------------------------------------------

def add_custom_code(backbone: Path, marker: Path, where: str = "config.json") -> list[str]:
    """Make ``backbone`` ask for the code in ``evil.py`` (which writes ``marker``); the changed files' names."""
    (backbone / "evil.py").write_text(CUSTOM_CODE.format(marker=str(marker)))
    path = backbone / where
    content = json.loads(path.read_text())
    if where == "config.json":
        content.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    else:
        content["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    path.write_text(json.dumps(content))
    return [where, "evil.py"]


def tamper(folder: Path, marker: Path, how: str) -> None:
    """Custom code in a checkpoint's backbone, listed in ``files`` with correct checksums (``listed``); also
    re-signed in the weights' metadata as a forger would (``resigned``, ``tokenizer``); or not listed at all."""
    changed = add_custom_code(folder / "backbone", marker, "tokenizer_config.json" if how == "tokenizer" else
                              "config.json")
    config = json.loads((folder / "config.json").read_text())
    listed = changed if how != "unlisted" else changed[:1]
    config["files"].update({f"backbone/{name}": sha256(folder / "backbone" / name) for name in listed})
    if how in ("resigned", "tokenizer"):
        weights = folder / "model.safetensors"
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata()
            state = {k: handle.get_tensor(k) for k in handle.keys()}
        if hasattr(checkpoint_mod, "files_digest"):
            metadata["files_sha256"] = checkpoint_mod.files_digest(config["files"])
        save_file(state, str(weights), metadata=metadata)
        config["files"]["model.safetensors"] = sha256(weights)
    (folder / "config.json").write_text(json.dumps(config, indent=2))


@pytest.mark.parametrize("how, message", [
    ("listed", r"file list \('files'\) of .*config.json was changed after the weights were saved"),
    ("unlisted", r"evil.py is Python code that .*config.json does not list"),
    ("resigned", r"backbone/config.json has an 'auto_map' \(custom code\)"),
    ("tokenizer", r"backbone/tokenizer_config.json has an 'auto_map' \(custom code\)"),
])
def test_a_checkpoint_with_custom_code_is_refused_without_running_it(saved, tmp_path, how, message):
    folder = Path(shutil.copytree(saved, tmp_path / "ckpt"))
    marker = tmp_path / "code-ran"
    tamper(folder, marker, how)
    with pytest.raises(CheckpointError, match=message) as err:
        MultiTaskModel.load(folder)
    one_line(err)
    assert not marker.exists()


def test_predict_on_a_checkpoint_with_custom_code_answers_yes_in_vain(saved, tmp_path):
    """The issue's attack: ``printf 'y\\n' | python -m mtl_utils.serving.predict CKPT "text"`` ran the file."""
    folder = Path(shutil.copytree(saved, tmp_path / "ckpt"))
    marker = tmp_path / "code-ran"
    tamper(folder, marker, "resigned")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mtl_utils.serving.predict", str(folder), "Shares rose.",
                           "--format", "json"], input="y\n", capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert not marker.exists()
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout[-500:], done.stderr[-500:])
    assert len(done.stderr.strip().splitlines()) == 1 and "'auto_map'" in done.stderr, done.stderr[-500:]


@pytest.mark.parametrize("edit, message", [
    (lambda folder, marker: add_custom_code(folder, marker), r"config.json has an 'auto_map' \(custom code\)"),
    (lambda folder, marker: add_custom_code(folder, marker, "tokenizer_config.json"),
     r"tokenizer_config.json has an 'auto_map'"),
    (lambda folder, marker: _edit_json(folder / "tokenizer_config.json", tokenizer_class="EvilTokenizer"),
     r"'tokenizer_class' 'EvilTokenizer' is not a tokenizer of transformers"),
    (lambda folder, marker: _edit_json(folder / "config.json", model_type="evil"),
     r"'model_type' 'evil' is not a model type of transformers"),
])
def test_a_model_folder_with_custom_code_is_refused_before_transformers_reads_it(tiny_model_dir, tmp_path, edit,
                                                                                  message):
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    marker = tmp_path / "code-ran"
    edit(folder, marker)
    with pytest.raises(ValueError, match=message) as err:
        SentenceEncoder(str(folder))
    one_line(err)
    assert not marker.exists()


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_every_from_pretrained_is_told_not_to_trust_remote_code(saved, tiny_model_dir, monkeypatch):
    calls = []
    for auto in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModel):
        for method in ("from_pretrained", "from_config"):
            if hasattr(auto, method):
                original = getattr(auto, method)

                def spy(*args, _original=original, _name=f"{auto.__name__}.{method}", **kwargs):
                    calls.append((_name, kwargs.get("trust_remote_code", "not passed")))
                    return _original(*args, **kwargs)

                monkeypatch.setattr(auto, method, spy)
    SentenceEncoder(tiny_model_dir)
    MultiTaskModel.load(saved)
    assert calls and all(trust is False for _, trust in calls), calls


# 4. The stored static int8 model is verified ----------------------------------------------------------------

@pytest.fixture(scope="module")
def calibrated(tiny_model_dir, tmp_path_factory):
    """Two checkpoints of two different models, each with its static int8 model stored (one calibration each)."""
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32).eval()
        folder = model.save(tmp_path_factory.mktemp(f"int8-{seed}") / "model")
        static_int8.save_openvino_int8(model, folder, SENTENCES)
        folders.append(folder)
    return folders


def _flip_sign_bits(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 4, len(data) // 4 + 48):
        data[i] ^= 0x80
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda store, other: [shutil.copy2(other / n, store / n) for n in ("model.xml", "model.bin")],
     r"model\.(xml|bin) does not match its checksum \(damaged, half-written, or copied from another"),
    (lambda store, other: (shutil.rmtree(store), shutil.copytree(other, store)),
     r"model.xml was calibrated from other weights"),
    (lambda store, other: _flip_sign_bits(store / "model.bin"), r"model.bin does not match its checksum"),
    (lambda store, other: (store / "model.bin").write_bytes((store / "model.bin").read_bytes()[:1000]),
     r"model.bin does not match its checksum"),
    (lambda store, other: (store / "manifest.json").unlink(missing_ok=True), r"openvino-int8: manifest.json is missing"),
    (lambda store, other: (store / "model.bin").unlink(), r"model.bin is missing"),
])
def test_a_damaged_or_foreign_static_int8_model_is_refused(calibrated, tmp_path, damage, message):
    folder = Path(shutil.copytree(calibrated[0], tmp_path / "ckpt"))
    assert static_int8.saved_openvino_int8(folder) == folder / static_int8.OPENVINO_INT8
    damage(folder / "openvino-int8", calibrated[1] / "openvino-int8")
    with pytest.raises(ValueError, match=message) as err:
        static_int8.saved_openvino_int8(folder)
    assert "re-create it" in one_line(err) and "save_openvino_int8" in str(err.value)


def test_predict_refuses_flipped_int8_weights_with_one_line(calibrated, tmp_path, capsys):
    folder = Path(shutil.copytree(calibrated[0], tmp_path / "ckpt"))
    _flip_sign_bits(folder / "openvino-int8" / "model.bin")
    assert predict.main([str(folder), "Shares rose.", "--backend", "openvino-int8", "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "model.bin does not match its checksum" in captured.err and "re-create it" in captured.err


def test_a_killed_calibration_keeps_the_stored_int8_model(calibrated, tmp_path, monkeypatch):
    folder = Path(shutil.copytree(calibrated[0], tmp_path / "ckpt"))
    before = (folder / "openvino-int8" / "model.bin").read_bytes()

    def killed(onnx_path, batches, target=None):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("<?xml")  # half-written files, then the process dies
        target.with_suffix(".bin").write_bytes(before[:100])
        raise RuntimeError("killed")

    monkeypatch.setattr(static_int8, "openvino_int8", killed)
    model = MultiTaskModel.load(folder)
    with pytest.raises(RuntimeError, match="killed"):
        static_int8.save_openvino_int8(model, folder, SENTENCES)
    assert (folder / "openvino-int8" / "model.bin").read_bytes() == before
    assert static_int8.saved_openvino_int8(folder) == folder / static_int8.OPENVINO_INT8
    assert sorted(p.name for p in folder.iterdir()) == ["backbone", "config.json", "model.safetensors",
                                                         "openvino-int8"]  # no temporary folder left


def test_a_calibration_killed_between_its_renames_puts_the_stored_model_back(calibrated, tmp_path):
    folder = Path(shutil.copytree(calibrated[0], tmp_path / "ckpt"))
    os.replace(folder / "openvino-int8", folder / ".old-openvino-int8-deadbeef")  # the first rename, then killed
    assert static_int8.saved_openvino_int8(folder) == folder / static_int8.OPENVINO_INT8
    assert sorted(p.name for p in folder.iterdir()) == ["backbone", "config.json", "model.safetensors",
                                                         "openvino-int8"]


# 6. RoBERTa-like position embeddings: their real limit ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    """A randomly initialised 2-layer RoBERTa (40 position embeddings, padding index 1: 38 usable positions)
    with a byte-level BPE tokenizer trained here on a few sentences."""
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path_factory.mktemp("tiny-roberta")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 3, vocab_size=300, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    tokenizer = transformers.RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges)
    assert tokenizer.pad_token_id == 1
    config = transformers.RobertaConfig(vocab_size=len(bpe.get_vocab()), hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=40,
                                        pad_token_id=1)
    torch.manual_seed(0)
    transformers.RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_roberta_max_length_counts_its_position_offset(tiny_roberta):
    encoder = SentenceEncoder(tiny_roberta)
    assert encoder.max_length == 38  # 40 position embeddings, numbered from padding index + 1 = 2
    long_text = " ".join(SENTENCES * 4)
    with pytest.warns(UserWarning, match="1 of 1 texts are longer than max_length=38"):
        vectors = encoder.encode(long_text)
    assert vectors.shape == (1, 32) and np.isfinite(vectors).all()
    with pytest.raises(ValueError, match=r"position embeddings for 38: choose max_length <= 38") as err:
        SentenceEncoder(tiny_roberta, max_length=39)
    one_line(err)


# 9. Smaller: refused at the door ----------------------------------------------------------------------------

@pytest.mark.parametrize("files, message", [
    (["model.safetensors"], r"'files' is a list, expected a mapping"),
    ({"../outside.txt": "0" * 64}, r"'files' entry '../outside.txt'"),
    ({"model.safetensors": 12}, r"'files' entry 'model.safetensors': 12 is not a file inside the checkpoint"),
])
def test_a_malformed_file_list_is_a_checkpoint_error(saved, tmp_path, files, message):
    folder = Path(shutil.copytree(saved, tmp_path / "ckpt"))
    _edit_json(folder / "config.json", files=files)
    with pytest.raises(CheckpointError, match=message) as err:
        MultiTaskModel.load(folder)
    one_line(err)


def test_predict_file_that_is_a_folder_says_so(saved, tmp_path, capsys):
    assert predict.main([str(saved), "--file", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a file" in err and len(err.strip().splitlines()) == 1


def test_a_lone_surrogate_in_a_bare_string_is_the_same_value_error(served):
    for bad, where in (("\ud800 x", "sentences"), (["fine", "\ud800 x"], r"sentences\[1\]")):
        with pytest.raises(ValueError, match=rf"{where} cannot be encoded as UTF-8") as err:
            served.encoder.encode(bad)
        one_line(err)
        with pytest.raises(ValueError, match=rf"{where} cannot be encoded as UTF-8"):
            served.predict(bad)


@pytest.mark.parametrize("output_dim", [0, -3, True, 2.5, "8"])
def test_output_dim_must_be_a_positive_integer_or_none(tiny_model_dir, output_dim):
    with pytest.raises(ValueError, match="output_dim must be a positive integer") as err:
        SentenceEncoder(tiny_model_dir, output_dim=output_dim)
    one_line(err)


def test_output_dim_none_and_numpy_integers_are_accepted(tiny_model_dir):
    assert SentenceEncoder(tiny_model_dir, output_dim=None).dim == 32
    encoder = SentenceEncoder(tiny_model_dir, output_dim=np.int64(8))
    assert encoder.dim == 8 and type(encoder.config()["output_dim"]) is int


@pytest.mark.parametrize("config, kind", [
    (lambda: transformers.T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2),
     r"'.*' is an encoder-decoder model \(t5\): a sentence encoder needs an encoder model \(BERT-like"),
    (lambda: transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2),
     r"is a decoder-only model \(gpt2\): a sentence encoder needs an encoder model"),
    (lambda: transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, is_decoder=True),
     r"is a decoder-only model \(bert\)"),
])
def test_a_model_that_is_not_an_encoder_is_refused_before_its_tokenizer(tmp_path, monkeypatch, config, kind):
    config().save_pretrained(tmp_path)  # the configuration alone: the check comes before any tokenizer

    def no_tokenizer(*args, **kwargs):
        raise AssertionError("the tokenizer was loaded before the configuration was checked")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_tokenizer)
    with pytest.raises(ValueError, match=kind) as err:
        SentenceEncoder(str(tmp_path))
    one_line(err)
