"""Serving on the tiny model: variants agree with the model, ONNX Runtime reproduces PyTorch, int8 stays close,
one model serves both tasks with half the parameters of two."""
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TASKS

from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.serving import variants as serving
from series import serving_measurements as measure


@pytest.fixture(scope="module")
def model(served):
    return served


@pytest.fixture(scope="module")
def texts(served_texts):
    return served_texts


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
    speed = measure.speed_table(variants, tokens["topic"], batch_size=8, repeats=1)
    assert list(speed.index) == ["PyTorch fp32", "PyTorch dynamic int8"]
    # "× baseline" is the ratio of the best throughputs (one row's time over the other's)
    ratio = speed.loc["PyTorch dynamic int8", "sentences/s (best)"] / speed.loc["PyTorch fp32", "sentences/s (best)"]
    assert speed.loc["PyTorch dynamic int8", "× baseline"] == pytest.approx(ratio)
    quality = measure.quality_table(variants, small_tasks, tokens).set_index(["variant", "task"])
    assert len(quality) == 4
    for task in TASKS:  # the int8 row against numbers computed here from the two variants' own outputs
        labels = small_tasks[task]["test"]["label"].to_numpy()
        (ref_vectors, ref), (vectors, int8) = (v.run(tokens[task], 8) for v in variants)
        right_ref, right_int8 = ref[task].argmax(1) == labels, int8[task].argmax(1) == labels
        row = quality.loc[("PyTorch dynamic int8", task)]
        assert row["− fp32"] == pytest.approx(right_int8.mean() - right_ref.mean())
        assert row["agreement with fp32"] == pytest.approx(np.mean(ref[task].argmax(1) == int8[task].argmax(1)))
        cosine = torch.nn.functional.cosine_similarity(vectors, ref_vectors, dim=1)
        assert row["cosine min"] == pytest.approx(float(cosine.min()), abs=1e-5)
        assert not torch.equal(vectors, ref_vectors)  # int8 changed the vectors (a little)


def test_quality_table_runs_each_variant_once_and_more_variants_leave_the_rows_before_them(model, small_tasks):
    tokens = {t: model.encoder.token_ids(list(small_tasks[t]["test"]["text"])) for t in TASKS}
    calls = []
    fp32 = serving.torch_variant(model)
    counted = serving.Variant(fp32.name, lambda tok, bs: calls.append(len(tok)) or fp32.run(tok, bs))
    first = measure.quality_table([counted], small_tasks, tokens)
    assert len(calls) == len(TASKS), "the reference must run once per task"
    second = measure.quality_table([counted, serving.torch_int8_variant(model)], small_tasks, tokens)
    assert len(calls) == 2 * len(TASKS), "the reference, though it is compared twice, must run once per task"
    # measure_variants scores every variant in one call and splits the rows: the first rows must not move
    assert second.iloc[: len(TASKS)].equals(first) and len(second) == 2 * len(TASKS)


def test_one_model_against_two(model, tiny_model_dir, texts):
    singles = {t: MultiTaskModel({t: labels}, model=tiny_model_dir, max_length=32).eval() for t, labels in TASKS.items()}
    table = measure.one_vs_two(model, singles, texts[:5], texts, repeats=1)
    one, two = table.loc["one multi-task model"], table.loc["two single-task models"]
    assert one["models"] == 1 and two["models"] == 2
    assert two["parameters"] > 1.9 * one["parameters"]
    speeds = table["batch-32 sentences/s (best)"]
    assert one["throughput × two models"] == pytest.approx(speeds["one multi-task model"] /
                                                           speeds["two single-task models"])
    assert two["parameters"] == sum(sum(p.numel() for p in m.parameters()) for m in singles.values())
    assert measure.parameter_bytes(model) == one["weights in memory (MB)"] * 1e6


def test_measure_variants_on_the_tiny_model(model, small_tasks, texts, tmp_path):
    tables = measure.measure_variants(model, small_tasks, texts, tmp_path, calibration=texts[:16], repeats=1,
                                      sensitivity_texts=20, requests=5)
    assert set(tables) == {"speed", "quality", "sensitivity", "mixed", "matmul", "latency"}
    names = ["PyTorch fp32", "PyTorch dynamic int8", "ONNX Runtime fp32 (fused)", "ONNX Runtime int8 (fused)",
             "ONNX Runtime static int8", "OpenVINO fp32", "OpenVINO static int8"]
    bf16 = ["PyTorch autocast bfloat16", "OpenVINO bf16"] if measure.has_bf16_units() else []
    assert list(tables["speed"].index) == names + bf16
    assert (tables["speed"]["batch-1 p95 (ms)"] >= tables["speed"]["batch-1 median (ms)"]).all()
    samples = tables["latency"]  # every timed request (5 per round, 2 rounds), summarised in the speed table
    assert list(samples["variant"].unique()) == names + bf16 and (samples.groupby("variant").size() == 10).all()
    pd.testing.assert_frame_equal(measure.latency_summary(samples), tables["speed"][list(
        measure.latency_summary(samples).columns)], check_names=False)
    assert list(tables["quality"]["variant"].unique()) == names + bf16
    assert list(tables["sensitivity"].index) == ["layer 1", "layer 2"]
    assert len(tables["mixed"]) == 4
    hurt = tables["sensitivity"]["cosine 1st percentile"].sort_values(kind="stable").index[:2]
    assert tables["mixed"].index[2] == f"PyTorch int8, {' and '.join(sorted(hurt, key=list(tables['sensitivity'].index).index))} fp32"
    assert not tables["mixed"].isna().any().any(), tables["mixed"]  # every row scored on every task
    assert 0 < tables["matmul"].iloc[0, 0] < 1
