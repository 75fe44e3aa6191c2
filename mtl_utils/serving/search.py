"""Search a file of passages with a static model or a transformer, the corpus held as fp32, int8 or binary vectors.

    python -m mtl_utils.serving.search outputs/06_serving/static_model passages.txt "interest rates rise"
    python -m mtl_utils.serving.search sentence-transformers/all-MiniLM-L6-v2 passages.txt \\
        --index binary --rescore 40 "interest rates rise"

MODEL: a static model's folder (:meth:`~mtl_utils.serving.static_embedding.StaticEncoder.save`) or a transformer's;
CORPUS: UTF-8, a passage per line. Prints the top ``-k`` passages per query; ``--rescore K`` rescores a binary index's
top K with int8 vectors. Bad arguments stop in one line before any model loads. Taught in notebook 06, § 5."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtl_utils.evaluation.probing import l2_normalize
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.serving import quantized_search as qs
from mtl_utils.serving.static_embedding import TABLE, StaticEncoder


def load_model(name: str) -> Callable[[list[str]], np.ndarray]:
    """A function from texts to unit vectors: a static model's folder, else a transformer."""
    if (Path(name) / TABLE).is_file():
        return StaticEncoder.load(name).encode
    encoder = SentenceEncoder(name)
    return lambda texts: l2_normalize(encoder.encode(texts, show_progress=False))


def scores(queries: np.ndarray, corpus: np.ndarray, index: str, rescore: int = 0) -> np.ndarray:
    """``[queries, corpus]`` scores from the corpus held as ``index`` (``fp32``, ``int8`` or ``binary``)."""
    if index == "fp32":
        return queries @ corpus.T
    if index == "binary" and not rescore:
        return qs.hamming_scores(qs.binarize(queries), qs.binarize(corpus))
    ranges = qs.Int8Ranges.calibrate(corpus)
    codes = ranges.quantize(corpus)
    if index == "int8":
        return ranges.scores(queries, codes)
    hamming = qs.hamming_scores(qs.binarize(queries), qs.binarize(corpus))
    return qs.rescore(queries, hamming, ranges.dequantize(codes), rescore)


def main(argv: list[str] | None = None, stdout=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_utils.serving.search", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a static model's folder, or a transformer's name or folder")
    parser.add_argument("corpus", type=Path, help="a text file, one passage per line")
    parser.add_argument("queries", nargs="+", help="one or more queries")
    parser.add_argument("--index", choices=("fp32", "int8", "binary"), default="fp32")
    parser.add_argument("--rescore", type=int, default=0, metavar="K", help="binary only: rescore the top K")
    parser.add_argument("-k", type=int, default=5, help="passages shown per query (default 5)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        parser.error(f"corpus: no such file {args.corpus}")
    passages = [(n, line.strip()) for n, line in enumerate(args.corpus.read_text("utf-8").splitlines(), 1)
                if line.strip()]
    if not passages:
        parser.error(f"corpus: {args.corpus} holds no passage (every line is blank)")
    if args.k < 1:
        parser.error(f"-k must be at least 1, not {args.k}")
    if args.rescore < 0 or (args.rescore and args.index != "binary"):
        parser.error("--rescore K takes K of at least 1, and only with --index binary")
    encode = load_model(args.model)
    found = scores(encode(args.queries), encode([p for _, p in passages]), args.index, args.rescore)
    top = qs.top_k(found, args.k)
    answers = [{"query": q, "results": [{"rank": r, "score": float(found[i, j]), "line": passages[j][0],
                                         "passage": passages[j][1]} for r, j in enumerate(top[i], 1)
                                        if np.isfinite(found[i, j])]} for i, q in enumerate(args.queries)]
    out = stdout or sys.stdout
    if args.format == "json":
        out.write(json.dumps(answers, indent=1) + "\n")
        return 0
    for answer in answers:
        out.write(f"{answer['query']}\n")
        for hit in answer["results"]:
            out.write(f"  {hit['rank']:>2}  {hit['score']:8.3f}  line {hit['line']:<6} {hit['passage'][:100]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
