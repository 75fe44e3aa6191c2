"""Words from numbers: Markdown verdicts for comparisons, and small tables a notebook shows as they are.

Notebook cells that present a result call these and display what they return, so a cell stays a few lines
and every sentence words a verdict the same way (notebook 08 teaches how to read them).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from series.comparisons import outcome
from series.statistics import excludes_beyond


def signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``−0.004`` (a real minus sign)."""
    return f"{value:+.{digits}f}".replace("-", "−")


def verdict(row: Mapping, digits: int = 3) -> str:
    """One Markdown sentence for a row of :func:`series.experiments.comparison_table`; a row of a label-budget
    table (:func:`series.experiments.label_budget_table`) names its budget after the task."""
    what = f"{row['task']}, {row['labels']} labels" if "labels" in row else row["task"]
    head = (f"**{what}**: {row['A']} − {row['B']} = {signed(row['difference'], digits)} "
            f"[{signed(row['low'], digits)}, {signed(row['high'], digits)}]")
    how = (f"{row['seeds']} seeds, paired over seeds and test sentences" if row["seeds"] > 1
           else "one seed, paired over test sentences")
    if row["detected"]:
        better = row["A"] if row["difference"] > 0 else row["B"]
        return f"{head} ({how}, p = {row['p-value']:.3g}): **{better} is better**."
    if "margin" in row and not pd.isna(row["margin"]):
        if row["equivalent"]:
            return (f"{head} ({how}): **equivalent within ±{row['margin']:.3g}**, the margin declared before "
                    "the runs (the interval lies inside it).")
        return (f"{head} ({how}): **inconclusive**: the interval reaches ±{excludes_beyond(row):.{digits}f}, "
                f"beyond the declared margin ±{row['margin']:.3g}.")
    return (f"{head} ({how}): no difference detected; the interval excludes effects beyond "
            f"±{excludes_beyond(row):.{digits}f}.")


def verdicts(table: pd.DataFrame, digits: int = 3) -> str:
    """A Markdown bullet list of :func:`verdict` for every row."""
    return "\n".join(f"* {verdict(row, digits)}" for row in table.to_dict("records"))


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def findings(table: pd.DataFrame, digits: int = 3, quote: int = 2) -> str:
    """The verdicts of a comparison table in a few lines a learner can hold, the finding first: one bullet
    per verdict (``<A> better``, ``equivalent within ±m``, ``inconclusive at ±m``), naming its rows with
    their differences. At most ``quote`` intervals are quoted (rows that found a difference first, the
    largest first); the table and the forest plot shown with it (:func:`comparison_view`,
    :func:`series.plots.difference_plot`) carry every interval, and notebook 08 teaches how to read them.

    >>> print(findings(attention_table))  # notebook 01's attention vs mean pooling  # doctest: +SKIP
    **attention pooling − mean pooling** (3 seeds, paired over seeds and test sentences):
    * **attention pooling better**: sentiment (+0.007 [+0.001, +0.013]).
    * **equivalent within ±0.01**: topic (+0.001).
    * **inconclusive at ±0.01**: genre (−0.002 [−0.030, +0.026])."""
    rows = table.to_dict("records")
    if not rows:
        raise ValueError("findings of an empty comparison table")
    varying = {c for c in ("task", "labels", "A", "B") if c in table and table[c].astype(str).nunique() > 1}

    def name(row: Mapping) -> str:
        sides = " − ".join(str(row[side]) for side in "AB" if side in varying)
        parts = [str(row["task"])] if "task" in varying and str(row["task"]) not in sides or not varying else []
        budget = f"{row.get('labels')} labels"
        parts += [budget] if "labels" in varying and budget not in ", ".join(parts) else []
        return ", ".join(parts + ([sides] if sides else []))

    order = sorted(range(len(rows)), key=lambda i: (not rows[i]["detected"], -abs(rows[i]["difference"])))
    quoted, groups = set(order[:quote]), {}
    for i, row in enumerate(rows):
        number = (interval(row["difference"], row["low"], row["high"], digits, sign=True) if i in quoted
                  else signed(row["difference"], digits))
        said = outcome(row) if row["detected"] else _verdict(row)
        groups.setdefault(said, []).append(f"{name(row)} ({number})")
    seeds = {int(row.get("seeds", 1)) for row in rows}
    how = ("" if len(seeds) > 1 else " (one seed, paired over test sentences)" if seeds == {1}
           else f" ({seeds.pop()} seeds, paired over seeds and test sentences)")
    pair = ("paired differences, A − B" if {"A", "B"} <= varying
            else " − ".join("…" if side in varying else str(rows[0][side]) for side in "AB"))
    lines = [f"**{pair}**{how}:"]
    lines += [f"* **{said}**: {'; '.join(items)}." for said, items in
              sorted(groups.items(), key=lambda kv: (not kv[0].endswith("better"), "inconclusive" in kv[0]))]
    return "\n".join(lines)


def summary_rows(table: pd.DataFrame, digits: int = 3) -> dict[str, str]:
    """Each comparison of ``table`` as one entry of a summary table: ``"<task>[, <n> labels]: A − B"`` to
    ``"<difference> [<interval>], <verdict>"`` (a chapter's closing table of what it measured)."""
    out = {}
    for row in table.to_dict("records"):
        budget = f", {row['labels']} labels" if "labels" in row and str(row["labels"]) not in str(row["task"]) else ""
        out[f"{row['task']}{budget}: {row['A']} − {row['B']}"] = (
            f"{interval(row['difference'], row['low'], row['high'], digits, sign=True)}, "
            f"{outcome(row) if row['detected'] else _verdict(row)}")
    return out


def comparison_view(table: pd.DataFrame, digits: int = 3, extra: Sequence[str] = (),
                    drop: Sequence[str] = (), index: Sequence[str] = ()) -> pd.DataFrame:
    """A compact display of a comparison table: accuracies, difference with interval, p, the verdict, then
    the columns ``extra`` of ``table`` (rounded); ``drop`` leaves out columns a cell's text already states
    (``"task"`` when every row is one task); ``index`` makes columns the row labels (a value repeated down
    the rows is then shown once). A row judged against a margin names it in its verdict ("equivalent
    within ±0.01", "inconclusive at ±0.01"), so the table needs no margin column."""
    out = pd.DataFrame({
        "task": table["task"], "A": table["A"], "B": table["B"],
        **{f"{side} {table['metric'].iloc[0] if 'metric' in table else 'accuracy'}": table[f"{side} accuracy"]
           .round(digits) for side in "AB"},
        "A − B [95% interval]": [f"{signed(d, digits)} [{signed(lo, digits)}, {signed(hi, digits)}]"
                                 for d, lo, hi in zip(table["difference"], table["low"], table["high"])],
        "p": table["p-value"].map(lambda p: f"{p:.3g}"),
        "verdict": [_verdict(row) for row in table.to_dict("records")]})
    for column in ("seeds", "seed"):
        if column in table:
            out[column] = table[column]
    missing = [c for c in [*extra, *drop] if c not in table and c not in out]
    if missing:
        raise ValueError(f"no column(s) {missing} in the table; it has {list(table.columns)}")
    for column in extra:
        out[column] = table[column].round(digits) if table[column].dtype.kind == "f" else table[column]
    out = out.drop(columns=list(drop))
    return out.set_index(list(index)) if index else out


def _verdict(row: Mapping) -> str:
    said = outcome({**row, "A": "A", "B": "B"})
    return f"{said} at ±{row['margin']:.3g}" if said == "inconclusive" else said


def interval(value: float, low: float, high: float, digits: int = 3, sign: bool = False) -> str:
    """``0.888 [0.869, 0.904]``; with ``sign``, ``+0.004 [−0.004, +0.010]``; empty for a missing value."""
    if pd.isna(value):
        return ""
    text = (lambda v: signed(v, digits)) if sign else (lambda v: f"{v:.{digits}f}")
    return f"{text(value)} [{text(low)}, {text(high)}]" if not pd.isna(low) else text(value)


def probe_view(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`series.pooling_probes.probe_table` for reading (notebook 01): test accuracy with its
    95 % interval, macro-F1, and the paired difference from raw mean pooling with the verdict, one row per
    (task, vectors, pooling), the row labels. The full table (``C``, convergence, McNemar's p) is what the
    notebook saves."""
    rows = []
    for row in table.to_dict("records"):
        versus = row.get("vs mean", float("nan"))
        if pd.isna(versus):
            said = "reference" if (row["pooling"], row["vectors"]) == ("mean", "raw") else "baseline"
        elif row["vs mean low"] > 0 or row["vs mean high"] < 0:
            said = "better" if versus > 0 else "worse"
        else:
            said = "no difference detected"
        rows.append({"task": row["task"], "vectors": row["vectors"], "pooling": row["pooling"],
                     "accuracy [95%]": interval(row["accuracy"], row.get("low"), row.get("high"), digits),
                     "macro-F1": f"{row['macro-F1']:.{digits}f}",
                     "− raw mean [95%]": interval(versus, row.get("vs mean low"), row.get("vs mean high"),
                                                   digits, sign=True),
                     "verdict": said})
    return pd.DataFrame(rows).set_index(["task", "vectors", "pooling"])


def prediction_view(predictions: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """:meth:`mtl_utils.modeling.model.MultiTaskModel.predict`'s table for reading: the sentence and, per
    task, the answer with its probability (``business (0.99)``); ``predict`` itself keeps every label's
    probability."""
    if "sentence" not in predictions:
        raise ValueError("not a predict() table: it has no 'sentence' column")
    tasks = [c for c in predictions.columns if c != "sentence" and ": p(" not in c]
    out = pd.DataFrame({"sentence": predictions["sentence"]})
    for task in tasks:
        out[task] = [f"{label} ({row[f'{task}: p({label})']:.{digits}f})"
                     for label, (_, row) in zip(predictions[task], predictions.iterrows())]
    return out.reset_index(drop=True)


def shown(table: pd.DataFrame, columns: Mapping[str, str] | Sequence[str],
          digits: int | Mapping[str, int] = 3, index: str | None = None) -> pd.DataFrame:
    """The columns of ``table`` a reader needs, in order, renamed (``{column: header}``; a list keeps the
    names), numbers rounded to ``digits`` (``{column: digits}`` for some columns, 3 for the rest),
    ``index`` (a shown header) as the row labels; the full table is what the notebook saves and tests
    read."""
    names = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    rounding = {c: 3 for c in names} | dict(digits) if isinstance(digits, Mapping) else digits
    missing = [c for c in [*names, *(rounding if isinstance(rounding, dict) else ())] if c not in table]
    if missing:
        raise ValueError(f"no column(s) {missing} in the table; it has {list(table.columns)}")
    out = table[list(names)].round(rounding).rename(columns=names)
    return out.set_index(index) if index else out


def probe_findings(table: pd.DataFrame, digits: int = 3) -> str:
    """Markdown bullets on :func:`series.pooling_probes.probe_table`, the finding first: per task the best
    probe and the majority baseline, then which probes fell below raw mean pooling, rose above it, or showed
    no difference (paired on the test sentences; the intervals are in the table and figure beside it)."""
    lines = []
    for task, part in table.groupby("task", sort=False):
        probes = part[part["pooling"] != "majority class"]
        base = part[part["pooling"] == "majority class"]["accuracy"].iloc[0]
        best = probes.loc[probes["accuracy"].idxmax()]
        said = {"below raw mean": [], "above raw mean": [], "no difference detected": []}
        for row in probes.dropna(subset=["vs mean"]).to_dict("records"):
            detected = row["vs mean low"] > 0 or row["vs mean high"] < 0
            kind = ("no difference detected" if not detected else
                    "above raw mean" if row["vs mean"] > 0 else "below raw mean")
            said[kind].append(f"{row['pooling']} {row['vectors']} ({signed(row['vs mean'], digits)})")
        lines.append(f"* **{task}**: best, {best['pooling']} pooling on {best['vectors']} vectors, "
                     f"{best['accuracy']:.{digits}f} (majority class {base:.{digits}f}). "
                     + " ".join(f"{kind.capitalize()}: {', '.join(names)}." for kind, names in said.items()
                                if names))
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
