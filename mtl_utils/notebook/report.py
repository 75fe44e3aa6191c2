"""Words from numbers: Markdown verdicts for comparisons, and small tables a notebook shows as they are.

Notebook cells that present a result call these and display what they return, so a cell stays a few lines
and every sentence follows the same rule (:data:`RULE`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from ..core.batching import eval_mode
from ..evaluation.comparisons import excludes_beyond
from ..modeling.model import MultiTaskModel

RULE = ("**How to read a comparison.** A − B is paired: the same test set and, over seeds, the same seeds "
        "(same heads' initialisation, same batch order). Over seeds, the 95 % interval carries both the "
        "training runs' noise and the test sentences' (another draw of either would move the result); with "
        "one seed it is the exact interval over the test sentences (McNemar). A difference is called real "
        "when the interval excludes zero; otherwise the verdict is *no difference detected*, with the "
        "largest effect the interval leaves possible. A notebook's verdicts are each read alone; the README "
        "reads every verdict it prints as one family (Holm's correction), so a verdict near the line can "
        "be real here and not there.")



def signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``−0.004`` (a real minus sign)."""
    return f"{value:+.{digits}f}".replace("-", "−")


def verdict(row: Mapping, digits: int = 3) -> str:
    """One Markdown sentence for a row of :func:`mtl_utils.notebook.experiments.comparison_table`; a row of a label-budget
    table (:func:`mtl_utils.notebook.experiments.label_budget_table`) names its budget after the task."""
    what = f"{row['task']}, {row['labels']} labels" if "labels" in row else row["task"]
    head = (f"**{what}**: {row['A']} − {row['B']} = {signed(row['difference'], digits)} "
            f"[{signed(row['low'], digits)}, {signed(row['high'], digits)}]")
    how = (f"{row['seeds']} seeds, paired over seeds and test sentences" if row["seeds"] > 1
           else "one seed, paired over test sentences")
    if row["detected"]:
        better = row["A"] if row["difference"] > 0 else row["B"]
        return f"{head} ({how}, p = {row['p-value']:.3g}): **{better} is better**."
    return (f"{head} ({how}): no difference detected; the interval excludes effects beyond "
            f"±{excludes_beyond(row):.{digits}f}.")


def verdicts(table: pd.DataFrame, digits: int = 3) -> str:
    """A Markdown bullet list of :func:`verdict` for every row."""
    return "\n".join(f"* {verdict(row, digits)}" for row in table.to_dict("records"))


def comparison_view(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A compact display of a comparison table: accuracies, difference with interval, p, the verdict."""
    out = pd.DataFrame({
        "task": table["task"], "A": table["A"], "B": table["B"],
        **{f"{side} {table['metric'].iloc[0] if 'metric' in table else 'accuracy'}": table[f"{side} accuracy"]
           .round(digits) for side in "AB"},
        "A − B [95% interval]": [f"{signed(d, digits)} [{signed(lo, digits)}, {signed(hi, digits)}]"
                                 for d, lo, hi in zip(table["difference"], table["low"], table["high"])],
        "p": table["p-value"].map(lambda p: f"{p:.3g}"),
        "verdict": ["A better" if d and x > 0 else "B better" if d else "no difference detected"
                    for d, x in zip(table["detected"], table["difference"])]})
    for column in ("seeds", "seed"):
        if column in table:
            out[column] = table[column]
    return out


def data_flow(model: MultiTaskModel, sentences: Sequence[str]) -> pd.DataFrame:
    """Run ``sentences`` through the model once and list each stage with the shape it produced."""
    batch = model.encoder.tokenize(list(sentences))
    rows = [{"stage": "word-piece ids (padded)", "module": "tokenizer", "shape": list(batch["input_ids"].shape),
             "shared": "yes"}]
    with eval_mode(model), torch.inference_mode():
        out = model.encoder.transformer(**batch, output_hidden_states=True)
        rows.append({"stage": "token vectors after embeddings", "module": "transformer.embeddings",
                     "shape": list(out.hidden_states[0].shape), "shared": "yes"})
        for i, hidden in enumerate(out.hidden_states[1:]):
            rows.append({"stage": f"token vectors after layer {i + 1}", "module": f"encoder.layer[{i}]",
                         "shape": list(hidden.shape), "shared": "yes"})
        vectors = model.encoder.pool_tokens(out.last_hidden_state, batch["attention_mask"])
        rows.append({"stage": f"sentence vectors ({model.encoder.pooling} pooling)", "module": "pooling",
                     "shape": list(vectors.shape), "shared": "yes"})
        for name, logits in model.heads_forward(vectors).items():
            rows.append({"stage": f"{name} logits ({', '.join(model.task_labels[name])})",
                         "module": f"heads['{name}']", "shape": list(logits.shape), "shared": f"no: {name} only"})
    return pd.DataFrame(rows)


def probe_findings(table: pd.DataFrame, digits: int = 3) -> str:
    """Markdown bullets on :func:`mtl_utils.evaluation.probing.probe_table`: per task the best probe, the majority
    baseline, and every other probe against raw mean pooling, under :data:`RULE`."""
    lines = []
    for task, part in table.groupby("task", sort=False):
        probes = part[part["pooling"] != "majority class"]
        base = part[part["pooling"] == "majority class"]["accuracy"].iloc[0]
        best = probes.loc[probes["accuracy"].idxmax()]
        lines.append(f"* **{task}**: best {best['pooling']} pooling on {best['vectors']} vectors, "
                     f"{best['accuracy']:.{digits}f} [{best['low']:.{digits}f}, {best['high']:.{digits}f}], against "
                     f"{base:.{digits}f} for the majority class.")
        for row in probes.dropna(subset=["vs mean"]).to_dict("records"):
            detected = row["vs mean low"] > 0 or row["vs mean high"] < 0
            tail = (f"**{'better' if row['vs mean'] > 0 else 'worse'}** (McNemar p = {row['McNemar p']:.2g})" if detected
                    else f"no difference detected (excludes beyond ±{excludes_beyond(row):.{digits}f})")
            lines.append(f"  * {row['pooling']}, {row['vectors']} − mean, raw: {signed(row['vs mean'], digits)} "
                         f"[{signed(row['vs mean low'], digits)}, {signed(row['vs mean high'], digits)}]: {tail}")
    return "\n".join(lines)


def markdown_table(table: pd.DataFrame, digits: int = 2) -> str:
    """A DataFrame as a GitHub Markdown table (numbers rounded to ``digits``; the index is not shown)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
