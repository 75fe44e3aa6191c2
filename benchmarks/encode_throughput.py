"""Throughput of mtl_utils' ``SentenceEncoder.encode`` against sentence-transformers' ``encode``.

Same model (the bundled all-MiniLM-L6-v2), same real sentences (BBC headlines/sentences and Rotten Tomatoes
snippets), same batch size, same process; runs alternate so both see the same machine state.

    HF_HUB_OFFLINE=1 python benchmarks/encode_throughput.py [--sentences 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from mtl_utils import SentenceEncoder, assets
from series import records
from series.corpora import load_tasks
from series.report import markdown_table


def real_sentences(n: int) -> list[str]:
    tasks = load_tasks()
    texts = list(tasks["topic"]["train"]["text"]) + list(tasks["sentiment"]["train"]["text"])
    return [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer  # the reference, used only here and in tests

    sentences = real_sentences(args.sentences)
    ours = SentenceEncoder(normalize=True)
    reference = SentenceTransformer(str(assets.bundled_model_dir()), device="cpu")
    runners = {
        "mtl_utils SentenceEncoder.encode": lambda: ours.encode(sentences, batch_size=args.batch_size,
                                                                show_progress=False),
        "sentence-transformers encode": lambda: reference.encode(
            sentences, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False),
    }
    for run in runners.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    rate = {name: len(sentences) / min(t) for name, t in times.items()}
    base = rate["sentence-transformers encode"]
    table = pd.DataFrame([{"run": name, "sentences/s (best)": r, "× sentence-transformers": r / base}
                          for name, r in rate.items()])
    setting = (f"{len(sentences)} real sentences, batch {args.batch_size}, best of {args.repeats} alternating runs, "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(setting)
    print(table.to_string(index=False))
    records.save_benchmark("encode_throughput", "Encoding: SentenceEncoder.encode against sentence-transformers",
                           "python benchmarks/encode_throughput.py", setting, markdown_table(table))


if __name__ == "__main__":
    main()
