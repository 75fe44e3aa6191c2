"""Smaller vectors for search (notebook 06 § 5): Hamming scores equal a count of differing signs, int8 codes
round-trip within half a step, rescoring the whole corpus is exact search, and the search command line
answers from a saved static model with one-line refusals of bad input."""
import json

import numpy as np
import pytest
import torch
from conftest import SENTENCES
from transformers import AutoTokenizer

from mtl_utils import assets
from mtl_utils.serving import quantized_search as qs
from mtl_utils.serving import search
from mtl_utils.serving.static_embedding import StaticEncoder


@pytest.mark.parametrize("dims", [8, 100, 384])
def test_hamming_scores_count_the_signs_that_differ(dims):
    rng = np.random.default_rng(dims)
    q, c = rng.standard_normal((5, dims)), rng.standard_normal((40, dims))
    expected = -((q[:, None, :] > 0) != (c[None, :, :] > 0)).sum(-1)
    np.testing.assert_array_equal(qs.hamming_scores(qs.binarize(q), qs.binarize(c)), expected)
    assert qs.binarize(c).nbytes == len(c) * 8 * -(-dims // 64)


def test_int8_codes_round_trip_within_half_a_step_and_clip_beyond_the_range():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    ranges = qs.Int8Ranges.calibrate(x)
    codes = ranges.quantize(x)
    assert codes.dtype == np.int8 and codes.min() == -128 and codes.max() == 127
    assert np.all(np.abs(ranges.dequantize(codes) - x) <= ranges.step / 2 + 1e-6)
    far = ranges.quantize(np.stack([x.max(0) + 10, x.min(0) - 10]))
    assert (far[0] == 127).all() and (far[1] == -128).all()
    with pytest.raises(ValueError, match="calibration vectors must be a non-empty 2-D array"):
        qs.Int8Ranges.calibrate(np.zeros((0, 4)))


def test_rescoring_every_passage_is_exact_search_and_fewer_leave_the_rest_out():
    rng = np.random.default_rng(1)
    q, c = rng.standard_normal((4, 12)).astype(np.float32), rng.standard_normal((30, 12)).astype(np.float32)
    hamming = qs.hamming_scores(qs.binarize(q), qs.binarize(c))
    np.testing.assert_allclose(qs.rescore(q, hamming, c, k=30), q @ c.T, rtol=1e-5)
    some = qs.rescore(q, hamming, c, k=5)
    assert (np.isfinite(some).sum(1) == 5).all()
    picked = qs.top_k(hamming, 5)
    assert all(set(np.flatnonzero(np.isfinite(row))) == set(p) for row, p in zip(some, picked))
    with pytest.raises(ValueError, match="first_pass must be queries x corpus"):
        qs.rescore(q, hamming[:, :3], c)
    with pytest.raises(ValueError, match="queries have 12 dimensions and the corpus 6"):
        qs.rescore(q, hamming, c[:, :6])
    with pytest.raises(ValueError, match="k must be a whole number of at least 1, not 0"):
        qs.rescore(q, hamming, c, k=0)


def test_top_k_is_best_first():
    scores = np.array([[0.1, 0.9, 0.5, -1.0]], dtype=np.float32)
    assert qs.top_k(scores, 3).tolist() == [[1, 2, 0]]


@pytest.fixture(scope="module")
def static_folder(tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(assets.bundled_model_dir())
    table = torch.randn(len(tokenizer), 64, generator=torch.Generator().manual_seed(0))
    return StaticEncoder(table, tokenizer).save(tmp_path_factory.mktemp("static") / "model")


@pytest.mark.parametrize("index", [["--index", "fp32"], ["--index", "int8"], ["--index", "binary", "--rescore", "3"]])
def test_the_command_line_finds_a_passage_by_its_own_text(static_folder, tmp_path, capsys, index):
    corpus = tmp_path / "passages.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n\n", encoding="utf-8")
    assert search.main([str(static_folder), str(corpus), SENTENCES[2], *index, "-k", "2", "--format", "json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["results"][0]["line"] == 3 and answer["results"][0]["passage"] == SENTENCES[2]
    assert len(answer["results"]) == 2


@pytest.mark.parametrize("args, message", [
    (["missing.txt", "q"], "corpus: no such file"),
    (["empty.txt", "q"], "holds no passage"),
    (["passages.txt", "q", "-k", "0"], "-k must be at least 1, not 0"),
    (["passages.txt", "q", "--rescore", "5"], "only with --index binary"),
    (["passages.txt", "q", "--index", "binary", "--rescore", "-1"], "--rescore K takes K of at least 1"),
])
def test_the_command_line_refuses_bad_input_in_one_line(static_folder, tmp_path, capsys, args, message):
    (tmp_path / "passages.txt").write_text("a passage\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    args = [str(tmp_path / args[0]), *args[1:]]
    with pytest.raises(SystemExit) as stop:
        search.main([str(static_folder), *args])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_int8_scores_in_integers_match_the_float_product_up_to_the_query_rounding():
    rng = np.random.default_rng(2)
    corpus = rng.standard_normal((300, 64)).astype(np.float32)
    queries = rng.standard_normal((7, 64)).astype(np.float32)
    ranges = qs.Int8Ranges.calibrate(corpus)
    codes = ranges.quantize(corpus)
    exact = queries @ ranges.dequantize(codes).T
    got = ranges.scores(queries, codes)
    # each query term is rounded by at most half its scale: a bound on the error of every score
    scale = np.abs(queries * ranges.step).max(1, keepdims=True) / 127
    bound = 0.5 * scale * np.abs(codes.astype(np.float32)).sum(1)[None, :] + 1e-3
    assert np.all(np.abs(got - exact) <= bound)
    assert np.mean(qs.top_k(got, 1) == qs.top_k(exact, 1)) > 0.8
    with pytest.raises(ValueError, match="codes must be 2-D int8 of width 64"):
        ranges.scores(queries, codes.astype(np.int16))
