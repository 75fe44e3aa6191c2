"""Static int8 on the tiny model: OpenVINO fp32 reproduces PyTorch, OpenVINO (NNCF) and ONNX Runtime
static int8 stay close, the calibrated model stored in a checkpoint serves ``predict --backend`` and a
re-saved checkpoint makes it stale; the capped-CPU runner times the variants in a fresh process."""
import json

import numpy as np
import pytest
import torch
from conftest import TASKS

from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.serving import predict, static_int8
from mtl_utils.serving import variants as serving
from series import older_cpus as capped


@pytest.fixture(scope="module")
def exported(served, tmp_path_factory):
    return static_int8.unfused(serving.export_onnx(served, tmp_path_factory.mktemp("x") / "model.onnx"))


def close(a, b):
    return max(float(np.abs(a[t] - b[t]).max()) for t in TASKS)


def test_openvino_fp32_reproduces_pytorch_and_static_int8_stays_close(served, served_texts, exported):
    tokens = served.encoder.token_ids(served_texts)
    vectors, reference = serving.torch_variant(served).run(tokens, 8)
    ov_vectors, ov = static_int8.openvino_variant(served, exported, "ov").run(tokens, 8)
    assert exported.name == "model.onnx" and close(ov, reference) < 1e-3
    assert np.allclose(ov_vectors.numpy(), vectors.numpy(), atol=1e-4)
    batches = static_int8.calibration_batches(served, served_texts[:16], batch_size=4)
    assert len(batches) == 4 and set(batches[0]) == {"input_ids", "attention_mask"}
    int8 = static_int8.openvino_int8(exported, batches)
    _, ov_int8 = static_int8.openvino_variant(served, int8, "ov int8").run(tokens, 8)
    _, ort_int8 = serving.onnx_variant(served, static_int8.onnx_static_int8(exported, batches),
                                       "ort static").run(tokens, 8)
    for out in (ov_int8, ort_int8):
        assert 0 < close(out, reference) < 0.5  # changed (quantised), but not far


def test_bad_calibration_and_precision_are_refused(served, exported):
    with pytest.raises(ValueError, match="at least one sentence"):
        static_int8.calibration_batches(served, [])
    with pytest.raises(ValueError, match="'f32' or 'bf16'"):
        static_int8.openvino_variant(served, exported, "x", precision="int4")


def test_stored_int8_serves_the_command_line_until_the_checkpoint_changes(served, served_texts, tmp_path,
                                                                          capsys, tiny_model_dir):
    checkpoint = served.save(tmp_path / "ckpt")
    argv = [str(checkpoint), "Shares rose.", "--backend", "openvino-int8", "--format", "json"]
    assert predict.main(argv) == 2
    assert "save_openvino_int8" in capsys.readouterr().err  # says how to make it
    path = static_int8.save_openvino_int8(served, checkpoint, served_texts[:16])
    assert path == checkpoint / static_int8.OPENVINO_INT8 and path.is_file()
    assert MultiTaskModel.load(checkpoint).task_names == list(TASKS)  # the extra folder is kept aside
    for backend in predict.BACKENDS:
        assert predict.main([*argv[:3], backend, "--format", "json"]) == 0, backend
        rows = json.loads(capsys.readouterr().out)
        assert rows[0]["sentence"] == "Shares rose." and set(TASKS) <= set(rows[0]), backend
    with pytest.warns(UserWarning, match="1 of 5 texts are longer"):
        ours = predict.answer(served, serving.torch_variant(served), served_texts[:5])
    theirs = served.predict(served_texts[:5], warn_truncation=False)
    assert list(ours.columns) == list(theirs.columns)
    assert (ours[list(TASKS)] == theirs[list(TASKS)]).all().all()
    assert np.allclose(ours.iloc[:, 1:].drop(columns=list(TASKS)).to_numpy(float),
                       theirs.iloc[:, 1:].drop(columns=list(TASKS)).to_numpy(float), atol=1e-3)
    torch.manual_seed(1)
    MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32).save(checkpoint)
    assert predict.main(argv) == 2
    assert "calibrated from other weights" in capsys.readouterr().err


def test_capped_runner_times_every_variant_in_a_fresh_process(served, served_texts, exported, tmp_path):
    checkpoint = served.save(tmp_path / "ckpt")
    int8 = tmp_path / "int8" / "model.xml"
    static_int8.openvino_int8(exported, static_int8.calibration_batches(served, served_texts[:8]), int8)
    tables = capped.capped_speeds(checkpoint, int8, served_texts[:16], repeats=1,
                                  settings={"this CPU": None})
    speed = tables["speed"]
    assert list(speed["variant"]) == ["PyTorch fp32", "PyTorch autocast bfloat16", "OpenVINO fp32",
                                      "OpenVINO bf16", "OpenVINO static int8"]
    assert (speed["sentences/s"] > 0).all() and speed["× PyTorch fp32"].iloc[0] == 1
    assert len(tables["profile"]) and tables["profile"]["share"].between(0, 1).all()
    assert sorted(p.name for p in int8.parent.iterdir()) == ["model.bin", "model.xml"]  # no exports left
    assert not (checkpoint / "openvino-int8").exists()
