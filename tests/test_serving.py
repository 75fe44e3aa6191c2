"""Serving on the tiny model: variants agree with the model, ONNX Runtime reproduces PyTorch, int8 stays close,
one model serves both tasks with half the parameters of two."""
import numpy as np
import pytest
import torch

from conftest import TASKS
from mtl_utils.serving import variants as serving
from mtl_utils.modeling.model import MultiTaskModel


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32).eval()


@pytest.fixture(scope="module")
def texts(small_tasks):
    return list(small_tasks["topic"]["test"]["text"]) + list(small_tasks["sentiment"]["test"]["text"])


def test_torch_variant_is_the_model(model, texts):
    vectors, logits = serving.torch_variant(model).run(model.encoder.token_ids(texts), 8)
    expected = model.logits(texts)
    for task in TASKS:
        assert np.allclose(logits[task], expected[task], atol=1e-5)
    assert np.allclose(vectors.numpy(), model.encoder.encode(texts), atol=1e-5)


def test_onnx_runtime_reproduces_pytorch_and_int8_stays_close(model, texts, tmp_path):
    tokens = model.encoder.token_ids(texts)
    _, reference = serving.torch_variant(model).run(tokens, 8)
    path = serving.export_onnx(model, tmp_path / "model.onnx")
    assert path.name == "model.opt.onnx" and model.encoder.transformer.config._attn_implementation == "sdpa"
    _, ort = serving.onnx_variant(model, path, "ort").run(tokens, 8)
    for task in TASKS:
        assert np.abs(ort[task] - reference[task]).max() < 1e-3
    _, int8 = serving.onnx_variant(model, serving.quantize_onnx(path), "ort int8").run(tokens, 8)
    _, torch_int8 = serving.torch_int8_variant(model).run(tokens, 8)
    for task in TASKS:
        assert np.abs(int8[task] - reference[task]).max() < 0.5
        assert np.abs(torch_int8[task] - reference[task]).max() < 0.5
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())  # the original model is not quantised


def test_speed_and_quality_tables(model, small_tasks):
    tokens = {t: model.encoder.token_ids(list(small_tasks[t]["test"]["text"])) for t in TASKS}
    variants = [serving.torch_variant(model), serving.torch_int8_variant(model, keep_fp32=["heads"])]
    speed = serving.speed_table(variants, tokens["topic"], batch_size=8, repeats=1)
    assert list(speed.index) == ["PyTorch fp32", "PyTorch dynamic int8"] and speed.loc["PyTorch fp32", "× baseline"] == 1
    quality = serving.quality_table(variants, small_tasks, tokens)
    fp32 = quality[quality["variant"] == "PyTorch fp32"]
    assert (fp32["agreement with fp32"] == 1).all() and (fp32["− fp32"] == 0).all()
    assert (quality["cosine min"] <= 1.0 + 1e-6).all() and len(quality) == 4


def test_quality_table_runs_each_variant_once_and_more_variants_leave_the_rows_before_them(model, small_tasks):
    tokens = {t: model.encoder.token_ids(list(small_tasks[t]["test"]["text"])) for t in TASKS}
    calls = []
    fp32 = serving.torch_variant(model)
    counted = serving.Variant(fp32.name, lambda tok, bs: calls.append(len(tok)) or fp32.run(tok, bs))
    first = serving.quality_table([counted], small_tasks, tokens)
    assert len(calls) == len(TASKS), "the reference must run once per task"
    second = serving.quality_table([counted, serving.torch_int8_variant(model)], small_tasks, tokens)
    assert len(calls) == 2 * len(TASKS), "the reference, though it is compared twice, must run once per task"
    # measure_variants scores every variant in one call and splits the rows: the first rows must not move
    assert second.iloc[: len(TASKS)].equals(first) and len(second) == 2 * len(TASKS)


def test_one_model_against_two(model, tiny_model_dir, texts):
    singles = {t: MultiTaskModel({t: labels}, model=tiny_model_dir, max_length=32).eval() for t, labels in TASKS.items()}
    table = serving.one_vs_two(model, singles, texts[:5], texts, repeats=1)
    one, two = table.loc["one multi-task model"], table.loc["two single-task models"]
    assert one["models"] == 1 and two["models"] == 2
    assert two["parameters"] > 1.9 * one["parameters"]
    assert table.loc["two single-task models", "throughput × two models"] == 1.0
    assert serving.parameter_bytes(model) == one["weights in memory (MB)"] * 1e6


def test_measure_variants_on_the_tiny_model(model, small_tasks, texts, tmp_path):
    tables = serving.measure_variants(model, small_tasks, texts, tmp_path, repeats=1, sensitivity_texts=20)
    assert set(tables) == {"speed", "quality", "sensitivity", "mixed", "matmul"}
    assert list(tables["sensitivity"].index) == ["layer 1", "layer 2"]
    assert len(tables["mixed"]) == 4 and tables["mixed"].iloc[0]["× baseline"] == 1.0
    assert not tables["mixed"].isna().any().any(), tables["mixed"]  # every row scored on every task
    assert 0 < tables["matmul"].iloc[0, 0] < 1
