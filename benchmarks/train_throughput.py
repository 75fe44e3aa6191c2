"""Training throughput of mtl_utils' loop against the plain fine-tuning loop a reader would write, and each
speed lever's own contribution.

The plain loop: ``AutoModel`` + mean pooling + a linear head, AdamW (PyTorch's default implementation) with a
linear decay of the rate (the schedule the project's ``Trainer`` uses, without warm-up), batch 16, random batches tokenised as they come and padded to their own longest text (what
``DataCollatorWithPadding`` does). The levers are then added to it one at a time, in this order:

1. tokenise once (ids computed before training, batches padded from them);
2. length bucketing (shuffle, sort by length within chunks of 50 batches, shuffle the batches);
3. fused AdamW (one kernel for the whole update; same update rule).

and the project's own ``Trainer`` (all three, plus its bookkeeping) is timed beside them. Same model, same
sentiment training data, same number of steps, same seed, in one process, the variants alternating so that
they see the same machine state; the best of ``--repeats`` runs is reported. Each run's loss over a fixed set
of validation sentences after training shows they learn the same (within the noise of a different batch
order). Thread settings are compared at the end (the project's loop with 1 thread and with every core).

    HF_HUB_OFFLINE=1 python benchmarks/train_throughput.py [--steps 60] [--repeats 2]
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from mtl_utils import assets, set_seed
from mtl_utils.modeling.pooling import mean_pool
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.optim import linear_warmup_decay
from mtl_utils.training.sampling import TaskBatches
from mtl_utils.training.trainer import Trainer
from series import records
from series.corpora import load_tasks
from series.report import markdown_table

LEVELS = ("plain loop", "+ tokenise once", "+ length bucketing", "+ fused AdamW")


class PlainModel(nn.Module):
    """AutoModel + mean pooling + a linear head: the model a reader writes in a few lines."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.transformer = AutoModel.from_pretrained(assets.bundled_model_dir())
        self.transformer.pooler = None
        self.head = nn.Linear(self.transformer.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask):
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(mean_pool(tokens, attention_mask))


def plain_run(level: int, texts, labels, steps: int, batch_size: int, seed: int, tokenizer, val) -> dict:
    """The plain loop with the first ``level`` levers of :data:`LEVELS` switched on."""
    set_seed(seed)
    model = PlainModel(int(labels.max()) + 1).train()
    fused = {"fused": True} if level >= 3 else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, **fused)
    scheduler = linear_warmup_decay(optimizer, 0, steps)
    rng = np.random.default_rng(seed)
    ids = tokenizer(texts, truncation=True, max_length=64)["input_ids"] if level >= 1 else None
    lengths = np.array([len(x) for x in ids]) if ids is not None else np.array([len(t) for t in texts])
    batches = TaskBatches(lengths, batch_size, rng, bucketing=level >= 2)
    start = time.perf_counter()
    for _ in range(steps):
        idx = batches.next_indices()
        if ids is None:
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=64,
                              return_tensors="pt")
        else:
            batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        logits = model(batch["input_ids"], batch["attention_mask"])
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels[idx]))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.inference_mode():
        batch = tokenizer(val[0], padding=True, truncation=True, max_length=64, return_tensors="pt")
        val_loss = nn.functional.cross_entropy(model(batch["input_ids"], batch["attention_mask"]),
                                               torch.from_numpy(val[1])).item()
    return {"seconds": seconds, "val loss": val_loss}


def project_run(data, steps: int, batch_size: int, seed: int, val) -> dict:
    """The project's Trainer on the same data and budget (single-task sentiment, no validation rounds)."""
    config = TrainConfig(tasks=("sentiment",), examples=steps * batch_size, batch_size=batch_size, lr=5e-5,
                         head_lr=5e-5, warmup_ratio=0.0, seed=seed)
    trainer = Trainer(config, data, progress_bar=False)
    trainer.begin()
    trainer.set_round_freezing(0)
    start = time.perf_counter()
    trainer.fit_round(1, steps)
    seconds = time.perf_counter() - start
    model = trainer.model.eval()
    with torch.inference_mode():
        batch = model.encoder.tokenize(val[0])
        val_loss = nn.functional.cross_entropy(model(**batch, tasks="sentiment")["sentiment"],
                                               torch.from_numpy(val[1])).item()
    return {"seconds": seconds, "val loss": val_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_tasks()
    train_df, val_df = data["sentiment"]["train"], data["sentiment"]["validation"].iloc[:256]
    texts, labels = list(train_df["text"]), train_df["label"].to_numpy().copy()
    val = (list(val_df["text"]), val_df["label"].to_numpy().copy())
    tokenizer = AutoTokenizer.from_pretrained(assets.bundled_model_dir())
    variants = {name: (lambda level=level: plain_run(level, texts, labels, args.steps, args.batch_size, args.seed,
                                                       tokenizer, val)) for level, name in enumerate(LEVELS)}
    variants["mtl_utils Trainer"] = lambda: project_run(data, args.steps, args.batch_size, args.seed, val)

    threads = torch.get_num_threads()
    results: dict[str, list[dict]] = defaultdict(list)
    project_run(data, 5, args.batch_size, args.seed, val)  # warm-up (allocator, kernels)
    for _ in range(args.repeats):
        for name, run in variants.items():
            results[name].append(run())
    torch.set_num_threads(1)
    for _ in range(args.repeats):
        results["mtl_utils Trainer, 1 thread"].append(variants["mtl_utils Trainer"]())
    torch.set_num_threads(threads)

    examples = args.steps * args.batch_size
    rows = []
    base = min(r["seconds"] for r in results["plain loop"])
    previous = base
    for name, runs in results.items():
        best = min(r["seconds"] for r in runs)
        rows.append({"variant": name, "sentences/s (best)": round(examples / best, 1),
                     "× plain loop": round(base / best, 2),
                     "× previous row": round(previous / best, 2) if name in LEVELS[1:] else None,
                     "val loss after training": round(float(np.mean([r["val loss"] for r in runs])), 3)})
        if name in LEVELS:
            previous = best
    table = pd.DataFrame(rows)
    print(f"sentiment, {args.steps} steps x batch {args.batch_size} = {examples} examples per run, "
          f"{args.repeats} alternating runs each (best shown), torch {torch.__version__}, {threads} threads")
    print(table.to_string(index=False))
    ratio = table.set_index("variant").loc["mtl_utils Trainer", "× plain loop"]
    print(f"\nmtl_utils Trainer / plain loop: {ratio:.2f}x (goal: >= 1.5x)")
    records.save_benchmark("train_throughput", "Training throughput: the project's loop against the plain loop",
                           "python benchmarks/train_throughput.py",
                           f"sentiment, {args.steps} steps of batch {args.batch_size}, best of {args.repeats} "
                           f"alternating runs, {threads} threads; each lever added to the plain loop in turn",
                           markdown_table(table.astype(object).fillna("")))


if __name__ == "__main__":
    main()
