"""Search at the CPU's limit (notebook 06 § 5), in one process: encoding speed of MiniLM and of the static model
distilled from it, exact search over fp32, int8 and binary vectors, and the fp32 bound of the transformer
from this CPU's measured matrix-product rate. Medians over interleaved repeats, with the slowest and fastest.

The static model comes from the run cache (trained first, about a minute, if notebook 06 has not run).

    HF_HUB_OFFLINE=1 python benchmarks/search.py [--repeats 5] [--corpus 100000]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from mtl_utils import runtime
from mtl_utils.modeling.encoder import DEFAULT_MODEL, SentenceEncoder
from series import fast_search, protocol, records
from series.headline_passages import headline_sentences, load_headline_passages, validation_queries
from series.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus", type=int, default=100_000, help="vectors per timed search")
    args = parser.parse_args()
    runtime.set_threads()
    benchmark = load_headline_passages()
    encoder = SentenceEncoder(args.model)
    static = fast_search.static_runs(encoder, *headline_sentences(benchmark), validation_queries(benchmark),
                                     protocol.seeds())
    texts = list(benchmark.evaluation.passages)
    encode = fast_search.encode_speed({"MiniLM fp32": lambda t: encoder.encode(t, show_progress=False),
                                       "static": next(iter(static.trained.values())).encode}, texts, args.repeats)
    encode["× MiniLM"] = encode["sentences/s (median)"] / encode.loc["MiniLM fp32", "sentences/s (median)"]
    search = fast_search.search_speed(corpus=args.corpus, repeats=args.repeats)
    search["× fp32"] = search["queries/s (median)"] / search.loc["fp32", "queries/s (median)"]
    tokens = float(np.mean([len(ids) for ids in encoder.tokenizer(texts)["input_ids"]]))
    rate = fast_search.matmul_rate(repeats=args.repeats)
    bound = rate * 1e9 / (fast_search.flops_per_token(encoder.transformer.config, tokens) * tokens)
    print(encode.round(1).to_string(), search.round(1).to_string(), sep="\n\n")
    cpu = runtime.cpu()
    machine = f"CPU {cpu['model']} ({' '.join(cpu['flags']) or 'none of ' + ', '.join(runtime.SPEED_FLAGS)})"
    setting = (f"median of {args.repeats} interleaved repeats, {torch.get_num_threads()} threads, {machine}; "
               f"fp32 products at {rate:.0f} GFLOP/s bound MiniLM fp32 at {bound:.0f} sentences/s of "
               f"{tokens:.1f} pieces")
    print(setting)
    records.save_benchmark("search_encode", "Search: encoding with MiniLM and with the static model",
                           "python benchmarks/search.py", f"{len(texts)} passages; {setting}",
                           markdown_table(encode.reset_index(), digits=1))
    records.save_benchmark("search_indexes", "Search: exact search over fp32, int8 and binary vectors",
                           "python benchmarks/search.py", f"{args.corpus:,} random unit vectors, 64 queries, "
                           f"top 10; {setting}", markdown_table(search.reset_index(), digits=1))


if __name__ == "__main__":
    main()
