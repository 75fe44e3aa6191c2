"""The README's numbers, generated from the committed results, never typed by hand.

    python -m tools.readme           # rewrite the generated sections of README.md
    python -m tools.readme --check   # exit 1 if README.md differs from what the results say

Each generated section sits between ``<!-- name:start -->`` and ``<!-- name:end -->`` markers in README.md and
is rendered from ``notebooks/results/NN.json`` (written by each notebook's full run) and
``benchmarks/results/*.json`` (written by the benchmark scripts). The tests run ``--check``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from mtl_utils.core import paths
from series.comparisons import outcome
from series.intervals import holm
from series.statistics import excludes_beyond

README = paths.REPO_ROOT / "README.md"
BENCHMARKS = paths.REPO_ROOT / "benchmarks" / "results"
ALPHA = 0.05  # the family-wise error rate of the README's verdicts (Holm)
NOTEBOOKS = {"01": ("01_sentence_embeddings",
                    "Sentence embeddings: tokens to one vector, which pooling (attention too), frozen or fine-tuned"),
             "02": ("02_sentence_training",
                    "How a sentence transformer is trained: contrastive loss, retrieval, hard negatives, "
                    "Matryoshka, SetFit, human-judged similarity (STS), bi- vs cross-encoders, two pair sets"),
             "03": ("03_multitask_model",
                    "The multi-task model: shared encoder, one head per task, the protocol, the original write-up's task A"),
             "04": ("04_freezing_tradeoffs", "Freezing trade-offs: what to freeze, pretrained vs random, measured; "
                    "what classification training does to the embedding"),
             "05": ("05_layerwise_learning_rates",
                    "Layer-wise rates, gradual unfreezing, summed or alternating losses: measured"),
             "06": ("06_serving", "Serving: one pass, two answers, when sharing pays, faster inference, static embeddings and "
                                  "quantized search"),
             "07": ("07_scaling_out", "Beyond one machine: the same training on several processes (torchrun, DDP)"),
             "08": ("08_reading_comparisons", "Reading a comparison: pairing, seeds and sentences, Holm, "
                    "better / equivalent within ±m / inconclusive (the statistics primer)")}


def _record(path: Path) -> dict:
    """A committed record (metrics, parameters, environment, when written), or ``{}`` if it is not there."""
    return json.loads(path.read_text()) if path.is_file() else {}


def _load(path: Path) -> dict:
    return _record(path).get("metrics", {})


def _results() -> dict[str, dict]:
    """Every notebook's committed metrics, with every verdict the README prints adjusted as one family."""
    r = {number: _load(paths.RESULTS_DIR / f"{number}.json") for number in NOTEBOOKS}
    rows = family(r)
    for row, p in zip(rows, holm([row["p-value"] for row in rows])):
        row["Holm p-value"], row["detected (Holm)"] = float(p), bool(p < ALPHA)
    return r


def family(r: dict[str, dict]) -> list[dict]:
    """The comparison rows whose verdicts the README prints (results and claims): one family of tests. A
    comparison of models trained with one seed stays out of it (:func:`one_seed`); comparisons that train
    nothing (probes on fixed vectors, the shipped model's poolings) are in it whatever their seed count."""
    return [row for rows in family_by_chapter(r).values() for row in rows]


def family_by_chapter(r: dict[str, dict]) -> dict[str, list[dict]]:
    """:func:`family`'s rows by the notebook that measured them (each chapter's forest plot)."""
    m1, m2, m3, m4, m5, m6 = (r.get(n) or {} for n in ("01", "02", "03", "04", "05", "06"))
    untrained = {"01": [row for row in m1.get("encoder_vs_bag_of_words", [])
                        if row["task"] == "genre" and "attention_vs_mean" in m1],  # claims() prints it with those
                 "02": m2.get("pooling_retrieval", []),
                 "06": m6.get("fast_search", {}).get("index_comparisons", [])}
    trained = {"01": [*m1.get("attention_vs_mean", []), *m1.get("few_labels", {}).get("comparisons", [])],
               "02": [*m2.get("contrastive", {}).get("comparisons", []),
                      *m2.get("batch_sizes", {}).get("comparisons", []),
                      *m2.get("hard_negatives", {}).get("comparisons", []),
                      *m2.get("matryoshka", {}).get("comparisons", []),
                      *m2.get("setfit", {}).get("comparisons", []), *m2.get("sts", {}).get("comparisons", []),
                      *m2.get("cross_encoder", {}).get("comparisons", []),
                      *m2.get("pair_sets", {}).get("comparisons", [])],
               "03": m3.get("sharing", []),
               "04": [*m4.get("sweep_comparisons", []), *m4.get("frozen_head", []),
                      *(m4.get("pretrained_vs_random", []) if "frozen_head" in m4 else []),
                      *m4.get("series", {}).get("comparisons", []),
                      *m4.get("contrastive_task", {}).get("comparisons", []),
                      *m4.get("sts", {}).get("comparisons", [])],
               "05": [*m5.get("comparisons", []), *m5.get("loss_combination", {}).get("comparisons", []),
                      *[row for row in m5.get("forgetting_protection", []) if row["task"] == "topic"]],
               "06": [*m6.get("sharing_pays", {}).get("comparisons", []),
                      *m6.get("fast_search", {}).get("static", {}).get("comparisons", []),
                      *m6.get("fast_search", {}).get("static", {}).get("probes", [])]}
    chapters = {n: [*untrained.get(n, []), *[row for row in rows if not one_seed(row)]]
                for n, rows in trained.items()}
    return {n: rows for n, rows in chapters.items() if rows}


FIGURES = paths.RESULTS_DIR / "figures"
LEGEND = "blue: better after Holm's correction; green: equivalent within the shaded margin; grey: inconclusive"


def _label(row: dict) -> str:
    budget = f"{row['labels']} labels" if "labels" in row else ""
    what = row["task"] if budget in str(row["task"]) else f"{row['task']}, {budget}"
    return f"{what}: {row['A']} − {row['B']}"


def forests(r: dict[str, dict]) -> dict[str, tuple[Path, str, list[dict]]]:
    """Per chapter, its forest plot's path, the digest of what it draws, and the rows it draws: every
    verdict of :func:`family` with its interval, margin and verdict after Holm's correction."""
    out = {}
    for number, rows in family_by_chapter(r).items():
        drawn = [{"label": _label(row), **{k: row.get(k) for k in ("task", "A", "B", "difference", "low", "high",
                                                                    "margin", "equivalent", "detected (Holm)")}}
                 for row in rows]
        digest = hashlib.sha256(json.dumps(drawn, sort_keys=True).encode()).hexdigest()
        out[number] = (FIGURES / f"verdicts-{number}.png", digest, drawn)
    return out


def write_forests() -> list[Path]:
    """Draw every chapter's forest plot (:func:`forests`) into :data:`FIGURES`, the digest of its rows in
    the PNG's ``Description``, so ``--check`` can tell a stale figure from a fresh one."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from series import plots

    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (path, digest, drawn) in forests(_results()).items():
        with plt.rc_context({"font.size": 9}):
            fig = plots.difference_plot(
                pd.DataFrame(drawn), title=f"{number} · the README's verdicts, paired differences (95% intervals)",
                xlabel="A − B (accuracy, MRR@10 or Spearman's ρ, as each row says)", legend=LEGEND,
                detected="detected (Holm)")
            fig.set_size_inches(10, 0.32 * len(drawn) + 1.6)
            fig.tight_layout()
            fig.savefig(path, format="png", dpi=90, bbox_inches="tight",
                        metadata={"Software": None, "Description": digest})
        plt.close(fig)
        written.append(path)
    return written


def stale_forests() -> list[str]:
    """The forest plots missing or drawn from other rows than the committed records give."""
    from PIL import Image

    stale = []
    for path, digest, _ in forests(_results()).values():
        if not path.is_file() or Image.open(path).text.get("Description") != digest:
            stale.append(paths.relative(path))
    return stale


def _forest(number: str) -> str:
    """The Markdown image of chapter ``number``'s forest plot."""
    return (f"![{number}: each verdict of the README as a point with its 95% interval, the margin shaded]"
            f"(notebooks/results/figures/verdicts-{number}.png)")


def one_seed(row: dict) -> bool:
    """Whether ``row`` compares models trained with one seed: its interval covers the test sentences, not
    another seed's training, so it is labelled "(one seed)" and kept out of the corrected family."""
    return row.get("seeds") == 1


def _interval(row: dict, digits: int = 3) -> str:
    return f"{row['difference']:+.{digits}f} [{row['low']:+.{digits}f}, {row['high']:+.{digits}f}]".replace("-", "−")


def _verdict(row: dict) -> str:
    """The row's verdict after Holm's correction over :func:`family`: better, equivalent within ±m or
    inconclusive (a row that loses its verdict to the correction is inconclusive, and says so); a one-seed
    row says it is one (:func:`one_seed`)."""
    better = row["A"] if row["difference"] > 0 else row["B"]
    if "detected (Holm)" not in row and one_seed(row):
        if row["detected"]:
            return f"(one seed) {better} better on its own (p = {row['p-value']:.2g}; not in the corrected family)"
        return f"(one seed) {_undetected(row)}"
    if "detected (Holm)" not in row:
        raise KeyError(f"{row['A']} − {row['B']} ({row['task']}) is printed but not in family(): add it there")
    if row["detected (Holm)"]:
        return f"**{better} better** (Holm p = {row['Holm p-value']:.2g})"
    if row["detected"]:
        return (f"inconclusive after Holm's correction (Holm p = {row['Holm p-value']:.2g}; alone "
                f"p = {row['p-value']:.2g}, {better} better)")
    return _undetected(row)


def _undetected(row: dict) -> str:
    """Equivalent within ±m or inconclusive, against the margin the notebook declared for the row."""
    if row.get("margin") is None or math.isnan(row["margin"]):
        raise ValueError(f"{row['A']} − {row['B']} ({row['task']}) has no declared margin: judge it with "
                         "series.comparisons.with_margin in its notebook")
    if row["equivalent"]:
        return outcome(row)
    return f"inconclusive (the interval reaches ±{excludes_beyond(row):.3f}; margin ±{row['margin']:.3g})"


def _verdicts(rows: list[dict], name: Callable[[dict], str] | None = None) -> list[str]:
    """A compact table of ``rows``: what each compares, the difference with its interval, the verdict."""
    name = name or (lambda row: f"{row['A']} − {row['B']}, {row['task']}")
    return ["| comparison | A − B [95%] | verdict |", "|---|---|---|",
            *[f"| {name(row)} | {_interval(row)} | {_verdict(row)} |" for row in rows]]


def _top_layer(m: dict) -> str:
    """What notebook 04's scenario 3 kept frozen (``frozen_head_k`` bottom layers)."""
    return f"embeddings and bottom {m['frozen_head_k']} layers frozen"


def _few_labels_row(accuracy: dict, row: dict) -> str:
    """One budget of notebook 01 § 9: the subset size and both arms' mean accuracy."""
    n = row["sentences"]
    return (f"{n:,} labels: fine-tuning {accuracy[f'full fine-tuning/{n}']:.3f} − frozen "
            f"{accuracy[f'frozen encoder + probe/{n}']:.3f}")


def runtimes() -> str:
    """The notebook index with quick and full run times, and the day each full run was measured (the machine's
    speed differs between days, so times measured on different days compare only roughly). A notebook whose
    committed outputs were rendered from the run cache shows the last full run that trained (its record's
    ``cold run``), marked, with the warm run's time in a note below the table."""
    quick = _record(paths.RESULTS_DIR / "quick.json")
    lines = ["| notebook | what it teaches | quick run (tests) | full run (committed) | measured |",
             "|---|---|---|---|---|"]
    total_quick = total_full = 0.0
    warm = []
    for number, (stem, title) in NOTEBOOKS.items():
        record = _record(paths.RESULTS_DIR / f"{number}.json")
        full = record.get("metrics", {}).get("runtime_minutes")
        day, mark = record.get("written", "")[:10], ""
        if record.get("cold run"):
            warm.append(f"{number} ({full:.1f} min on {day})")
            full, day, mark = record["cold run"]["minutes"], record["cold run"]["measured"], " †"
        q = quick.get(stem)
        total_quick += q or 0.0
        total_full += full or 0.0
        lines.append(f"| [{number}](notebooks/{stem}.ipynb) | {title} | "
                     f"{f'{q:.1f} min' if q is not None else 'not measured'} | "
                     f"{f'{full:.1f} min{mark}' if full is not None else 'not run'} | {day} |")
    lines.append(f"| | **whole series** | **{total_quick:.1f} min** | **{total_full:.1f} min** | |")
    if warm:
        lines += ["", f"† The committed outputs of {', '.join(warm)} were rendered again with every model "
                  "loaded from the run cache; the time shown is the last full run that trained them."]
    return "\n".join(lines)


def results() -> str:
    """The headline numbers of every notebook's committed full run."""
    r = _results()
    out = []
    if r["01"]:
        m = r["01"]
        out.append("**01 · Frozen encoder + logistic regression** (mean pooling, `C` chosen on validation, full test "
                   "sets): " + "; ".join(f"{t} {v['accuracy']:.3f} (majority class {m['majority_baseline'][t]:.3f})"
                                          for t, v in m["mean_probe"].items()) + ".")
        if "few_labels" in m:
            few = m["few_labels"]
            out += ["", "With few labels (01 § 9), topic, full fine-tuning vs the frozen encoder + probe on the "
                    "same labelled sentences (`C` fixed at 1: no model selection on either side), mean over seeds:",
                    "", *_verdicts(few["comparisons"], lambda row: _few_labels_row(few["accuracy"], row))]
        out += ["", _forest("01")]
    if r["02"]:
        out += ["", *_sentence_training(r["02"])]
    if r["03"]:
        m = r["03"]
        acc = m["accuracy"]
        out += ["", "**03 · Fine-tuned under the protocol** (mean over seeds ± std, full test sets; multi-task "
                "with the same examples of each task as a single-task model, so twice its encoder updates):", "",
                "| task | frozen probe | single-task | multi-task | multi − single (paired) |", "|---|---|---|---|---|"]
        for row in (r for r in m["sharing"] if r["A"] == "multi-task"):
            t = row["task"]
            single, multi = acc[f"single-task {t}/{t}"], acc[f"multi-task/{t}"]
            out.append(f"| {t} | {m['probe'][t]['accuracy']:.3f} | {single['mean']:.3f} ± {single['std'] or 0:.3f} | "
                       f"{multi['mean']:.3f} ± {multi['std'] or 0:.3f} | {_interval(row)}: {_verdict(row)} |")
        half = [r for r in m["sharing"] if r["A"] != "multi-task"]
        if half:
            out += ["", f"At the same encoder updates ({half[0]['A']}: half the examples of each task):", "",
                    *_verdicts(half, lambda row: f"multi − single, {row['task']}")]
        out += ["", _forest("03")]
    if r["04"]:
        m = r["04"]
        out += ["", "**04 · Freezing the bottom k layers** (multi-task, same budget; paired against k = 0):", "",
                "| k | trainable parameters | training time | topic | sentiment |", "|---|---|---|---|---|"]
        base = m["sweep"]["k=0"]["train_seconds"]
        for name, v in m["sweep"].items():
            out.append(f"| {v['k']} | {v['trainable']:,} | {v['train_seconds'] / base:.2g}× | "
                       f"{v['accuracy']['topic']:.3f} | {v['accuracy']['sentiment']:.3f} |")
        if m.get("frozen_head"):
            out += ["", f"Joint training with the topic head frozen − all heads trainable ({_top_layer(m)}):", "",
                    *_verdicts(m["frozen_head"], lambda row: f"head frozen − trainable, {row['task']}")]
        out += [*_embedding_cost(m), "", _forest("04")]
    if r["05"]:
        m = r["05"]
        out += ["", "**05 · Layer-wise learning rates and gradual unfreezing** (single-task sentiment, paired "
                "against uniform rates):", ""]
        out += [*_verdicts(m["comparisons"], lambda row: f"{row['A']} − {row['B']}"), "", _forest("05")]
    if r["06"]:
        m = r["06"]
        one = m["one_vs_two"]["one multi-task model"]
        cpu = m.get("cpu")
        machine = f" on {cpu['model']} ({', '.join(cpu['flags']) or 'no VNNI, no AMX'})" if cpu else ""
        out += ["", f"**06 · Serving**: one multi-task model answers both tasks at {m['shared_throughput_ratio']:.2f}× "
                f"the throughput of two single-task models with half the weights ({one['weights in memory (MB)']:.0f} "
                f"MB); inference variants against PyTorch fp32{machine}:", "",
                "| variant | batch-32 throughput, median (best) | batch-1 median | topic accuracy − fp32 | "
                "sentiment accuracy − fp32 |", "|---|---|---|---|---|"]
        quality = {(q["variant"], q["task"]): q for q in m["quality"]}
        for name, ratio in m["speed"].items():
            cells = [f"{quality[(name, t)]['− fp32']:+.4f} [{quality[(name, t)]['low']:+.4f}, "
                     f"{quality[(name, t)]['high']:+.4f}]".replace("-", "−") for t in ("topic", "sentiment")]
            latency = m.get("latency_ms", {}).get(name)
            ms = f"{latency['median']:.1f} ms" if latency else "–"
            median = m.get("speed_median", {}).get(name)
            speed = f"{median:.2f}× ({ratio:.2f}×)" if median is not None else f"– ({ratio:.2f}×)"
            out.append(f"| {name} | {speed} | {ms} | {cells[0]} | {cells[1]} |")
        if "capped" in m:
            settings = list(m["capped"])
            out += ["", "The same OpenVINO and PyTorch variants with this CPU's instruction sets capped "
                    "(06 § 3c), × PyTorch fp32 in each setting:", "",
                    "| variant | " + " | ".join(settings) + " |", "|---|" + "---|" * len(settings)]
            for name in m["capped"][settings[0]]:
                out.append(f"| {name} | " + " | ".join(f"{m['capped'][s][name]:.2f}×" for s in settings) + " |")
        if "sharing_pays" in m:
            pays = m["sharing_pays"]
            out += ["", "When sharing pays (06 § 2): the scarce task's test accuracy, multi-task minus single-task, "
                    "the whole encoder trained, paired over seeds and test sentences; a related pair (headline "
                    "topic beside body-sentence topic) and an unrelated one (topic beside sentiment):", "",
                    "| pair | scarce task's labels | multi-task | single-task | multi − single | verdict |",
                    "|---|---|---|---|---|---|"]
            for row in pays["comparisons"]:
                out.append(f"| {row['pair']} | {row['labels']} | {row['A accuracy']:.3f} | {row['B accuracy']:.3f} | "
                           f"{_interval(row)} | {_verdict(row)} |")
        if "fast_search" in m:
            out += ["", *_fast_search(m["fast_search"])]
        if "sharing_pays" in m or "fast_search" in m:
            out += ["", _forest("06")]
    if r.get("07"):
        out += ["", _scaling(r["07"], _record(paths.RESULTS_DIR / "07.json").get("environment", {}))]
    return "\n".join(out) if out else "*No committed results yet: run `make refresh`.*"


def _fast_search(m: dict) -> list[str]:
    """Notebook 06 § 5: the static model against BM25 and MiniLM, the smaller indexes against fp32 search,
    and the transformer against the CPU's fp32 bound, every speed a median measured in one process."""
    st, rate = m["static"], {row["encoder"]: row["sentences/s (median)"] for row in m["encode"]}
    mrr, minilm = st["MRR@10"], st["MRR@10"]["MiniLM as shipped"]
    out = ["Search at the CPU's limit (06 § 5), headline → passage retrieval (02's benchmark); encoding speed "
           "on its passages, medians in one process:", "",
           "| encoder | sentences/s | MRR@10 | % of MiniLM's |", "|---|---|---|---|"]
    speeds = {"MiniLM as shipped": rate["MiniLM fp32"], "static, trained": rate["static"]}
    for name, value in mrr.items():
        label = f"{name} ({st['seeds']} seeds)" if name == "static, trained" else name
        speed = f"{speeds[name]:,.0f}" if name in speeds else "–"
        out.append(f"| {label} | {speed} | {value:.3f} | {100 * value / minilm:.0f} % |")
    out += ["", *_verdicts(st["comparisons"] + st["probes"], lambda row: f"{row['A']} − {row['B']}, {row['task']}"),
            "", f"Smaller indexes of MiniLM's vectors against fp32 (margin ±{m['index_margin']}); search speed over "
            f"{m['search_corpus']:,} random 384-dimensional unit vectors (64 queries, top 10), medians:", "",
            "| index | bytes per passage in memory | MRR@10 (% of fp32) | queries/s (× fp32) | − fp32 | verdict |",
            "|---|---|---|---|---|---|"]
    found = {row["index"]: row["queries/s (median)"] for row in m["search"]}
    rows = {row["A"]: row for row in m["index_comparisons"]}
    for row in m["indexes"]:
        name = row["index"]
        speed = f"{found[name]:,.0f} ({found[name] / found['fp32']:.2f}×)" if name in found else "–"
        cells = f"{_interval(rows[name])} | {_verdict(rows[name])}" if name in rows else "– | reference"
        out.append(f"| {name} | {row['bytes per passage in memory']:,.0f} | {row['MRR@10']:.3f} "
                   f"({row['% of fp32']:.1f} %) | {speed} | {cells} |")
    b = m["bound"]
    reached = "; ".join(f"{row['measured']}: {row['sentences/s (median)']:.0f} sentences/s, "
                        f"{row['% of the fp32 bound']:.0f} % of the bound" for row in b["rows"])
    out += ["", f"The transformer against this CPU's arithmetic: {b['MFLOP per piece']:.1f} MFLOP per word piece (plus "
            f"attention's, which grows with the length) and "
            f"{b['GFLOP/s']:.0f} GFLOP/s of fp32 products (measured) bound fp32 encoding; {reached}."]
    return out


def _hard_and_nested(m: dict) -> list[str]:
    """02 § 4-5's verdicts: mined hard negatives and Matryoshka training, each against § 2's runs."""
    if "hard_negatives" not in m or "matryoshka" not in m:
        return []
    return ["", "Mined hard negatives against in-batch negatives alone, and Matryoshka training against plain "
            "training at each number of dimensions kept (02 § 4-5; the same pairs, batches and steps as § 2's "
            "runs, paired over seeds and queries):", "",
            *_verdicts([*m["hard_negatives"]["comparisons"], *m["matryoshka"]["comparisons"]])]


def _sentence_training(m: dict) -> list[str]:
    """Notebook 02: the retrieval benchmark's baselines and contrastive run, the batch sizes, hard negatives,
    Matryoshka, SetFit and human-judged similarity."""
    bench, base = m["benchmark"], {row["encoder"]: row for row in m["baselines"]}
    tuned = m["contrastive"]["per seed"]
    mean = {k: sum(row[k] for row in tuned) / len(tuned) for k in ("recall@1", "MRR@10", "nDCG@10",
                                                                     "V-measure (topic)")}
    rows = [*base.items(), (f"contrastive training (§ 2, mean of {len(tuned)} seeds)", mean)]
    out = [f"**02 · Sentence training**: headline → passage retrieval on the shipped BBC articles "
           f"({bench['queries']:,} test headlines, {bench['passages']:,} validation and test passages, "
           f"{bench['training pairs']:,} training pairs):", "",
           "| encoder | recall@1 | MRR@10 | nDCG@10 | clustering V-measure |", "|---|---|---|---|---|"]
    for name, row in rows:
        v = row["V-measure (topic)"]
        out.append(f"| {name} | {row['recall@1']:.3f} | {row['MRR@10']:.3f} | {row['nDCG@10']:.3f} | "
                   f"{'–' if v is None else f'{v:.3f}'} |")

    batches = m["batch_sizes"]["table"]
    big = batches[-1]
    out += ["", "Contrastive training against MiniLM as shipped, and batch size at equal examples (paired over "
            "seeds and queries); SetFit on "
            f"{m['setfit']['labels']} labelled topic sentences (01 § 9's subsets, topic test accuracy):", "",
            *_verdicts([*m["contrastive"]["comparisons"], *m["batch_sizes"]["comparisons"],
                        *m["setfit"]["comparisons"]]),
            "", f"GradCache keeps {big['saved activations (MB)']:.0f} MB of activations for a batch of "
            f"{big['batch']} where the whole batch's graph keeps {big['full-batch activations (MB)']:.0f} MB.",
            *_hard_and_nested(m), *_sts(m), *_cross_encoder(m), *_pair_sets(m)]
    return [*out, "", _forest("02")]


def _cross_encoder(m: dict) -> list[str]:
    """02 § 8: the cross-encoder re-ranking each first stage's top 10, and the cost of all pairs."""
    if "cross_encoder" not in m:
        return []
    c = m["cross_encoder"]
    rate = {row["encoder"]: row for row in c["rates"]}
    big = c["all pairs"][-1]
    return ["", f"A cross-encoder ({c['epochs']} passes over {c['labelled pairs']:,} labelled pairs) re-ranking "
            f"each first stage's top {c['top']}, against that stage alone (02 § 8, paired over seeds and "
            "queries):", "", *_verdicts(c["comparisons"]), "",
            f"Its cost: {rate['cross-encoder']['items/s (median)']:.0f} pairs/s against "
            f"{rate['bi-encoder']['items/s (median)']:.0f} sentences/s for the bi-encoder, so the most similar "
            f"pair among {big['sentences']:,} sentences takes {big['cross-encoder (hours)']:.1f} hours of "
            f"cross-encoder passes, or {big['bi-encoder (seconds)']:.0f} s with the bi-encoder (this machine)."]


def _pair_sets(m: dict) -> list[str]:
    """02 § 9: one encoder trained over two pair sets, round-robin against proportional."""
    if "pair_sets" not in m:
        return []
    p = m["pair_sets"]
    table = {row["encoder"]: row for row in p["table"]}
    return ["", f"Training over two pair sets ({p['sizes'][0]:,} headline and {p['sizes'][1]:,} film-synopsis pairs, "
            f"{sum(p['steps']['proportional'])} steps of {p['batch size']} for both samplers), round-robin against "
            "proportional on each set's benchmark (02 § 9, paired over seeds and queries; MiniLM as shipped: "
            f"{table['MiniLM as shipped']['headlines']:.3f} and {table['MiniLM as shipped']['films']:.3f} MRR@10):",
            "", *_verdicts(p["comparisons"])]


def _sts(m: dict) -> list[str]:
    """A record's human-judged similarity verdicts as a table (02 § 7; 04's classification encoders)."""
    if "sts" not in m:
        return []
    sts = m["sts"]
    published = sts.get("published", {}).get("all-MiniLM-L6-v2 (MTEB, STSBenchmark)")
    mteb = f"; MTEB publishes {published / 100:.4f} for MiniLM as shipped" if published else ""
    return ["", f"Human-judged similarity ({sts['pairs']:,} STS benchmark test pairs; Spearman correlation of "
            f"each pair's cosine with the ratings, paired over seeds and pairs{mteb}):", "",
            "| A − B | A | B | A − B [95%] | verdict |", "|---|---|---|---|---|",
            *[f"| {row['A']} − {row['B']} | {row['A accuracy']:.3f} | {row['B accuracy']:.3f} | "
              f"{_interval(row)} | {_verdict(row)} |" for row in sts["comparisons"]]]


def _embedding_cost(m: dict) -> list[str]:
    """04's last section: what classification training does to retrieval and to human-judged similarity, and
    the contrastive task added to the multi-task model."""
    if "series" not in m:
        return []
    return ["", "What classification training does to the embedding: retrieval (MRR@10, paired over seeds and "
            "queries), and the contrastive task added to the multi-task model (paired over test items):", "",
            *_verdicts([*m["series"]["comparisons"], *m["contrastive_task"]["comparisons"]]), *_sts(m)]


def _scaling(m: dict, environment: dict) -> str:
    """Notebook 07: two processes against one, same global batch; the speed of each arm on the machine that
    ran it (``environment`` of its record)."""
    agree, arms = m["agreement"], m["arms"]
    two, threads = agree["2 processes vs 1 (same global batch)"], agree["2 threads vs 1 (one process)"]
    base = arms["1 process × 1 thread"]["s per step"]
    return (f"**07 · Two processes (torchrun, DDP, gloo)** train what one process trains with the same global "
            f"batch: after {m['steps']} steps of the multi-task run the weights differ by at most "
            f"{two['max |difference|']:.1e} (two threads against one: {threads['max |difference|']:.1e}; half the "
            f"batch: {agree['half batch vs full (yardstick)']['max |difference|']:.1e}). Speed against one process "
            f"with one thread, on the run's {environment.get('cpu cores', '?')}-core "
            f"{environment.get('cpu', 'CPU')}: two processes "
            f"{base / arms['2 processes × 1 thread']['s per step']:.2f}×, one process with two threads "
            f"{base / arms['1 process × 2 threads']['s per step']:.2f}×.")


def claims() -> str:
    """The original write-up's claims, each with the experiment that tests it and the verdict of the committed run."""
    r = _results()
    rows = ["| the original write-up says | tested in | verdict of the committed run |", "|---|---|---|"]

    def add(claim: str, where: str, verdict: str | None) -> None:
        rows.append(f"| {claim} | {where} | {verdict or 'not run yet'} |")

    m = r["01"]
    add("mean pooling gives an embedding of shape `[1, 256]`", "01 § 1",
        m and f"no: `[1, {m['embedding_dim']}]` (the hidden size); 256 needs a trained projection")
    if m:
        best = {t: max(v.items(), key=lambda kv: kv[1]["accuracy"])[0] for t, v in m["probe"].items()}
        add("mean pooling offers simplicity without sacrificing contextual information (vs max; cls added)",
            "01 § 6: frozen probes, paired (McNemar)", "; ".join(f"{t}: best probe {b}, raw mean "
                                                                 f"{m['mean_probe'][t]['accuracy']:.3f}"
                                                                 for t, b in best.items()))
    if r["02"] and "pooling_retrieval" in r["02"]:
        add("... judged on retrieval (no probe: the raw vectors' cosine)", "02 § 1: MiniLM as shipped, mean vs "
            "cls and max pooling, MRR@10, paired over queries",
            "; ".join(f"{row['A']} − {row['B']}: {_interval(row)}, {_verdict(row)}"
                      for row in r["02"]["pooling_retrieval"]))
    if m and "attention_vs_mean" in m:
        add("... against attention pooling", "01 § 6: learned-query attention vs mean, same probe, paired over seeds",
            "; ".join(f"{row['task']}: {_verdict(row)}" for row in m["attention_vs_mean"]))
        genre = next(row for row in m["encoder_vs_bag_of_words"] if row["task"] == "genre")
        add("task A: *News / Opinion / Entertainment*", "01 § 7: built from the two corpora; frozen probe vs bag of "
            "words", f"learnable, but a corpus shortcut: bag of words {m['bag_of_words']['genre']['accuracy']:.3f}, "
            f"frozen mean-pooling probe {genre['A accuracy']:.3f} ({_verdict(genre)})")
    m = r["06"]
    add("a shared encoder reduces the overall number of parameters", "06 § 1",
        m and f"yes: half the parameters and {m['shared_throughput_ratio']:.2f}× the throughput of two models")
    m = r["03"]
    add("... and can lead to improved performance due to shared learning", "03: multi- vs single-task, full "
        "fine-tuning, paired over seeds: the same examples per task, then the same encoder updates",
        m and "; ".join(f"{'same examples' if row['A'] == 'multi-task' else 'same updates'}, {row['task']}: "
                        f"{_verdict(row)}" for row in m["sharing"]))
    m = r["06"]
    if m and "sharing_pays" in m:
        add("... (when one task's labels are scarce, and the tasks related or not)", "06 § 2: the scarce task at "
            "few and at all labels, multi- vs single-task, full fine-tuning, paired over seeds",
            "; ".join(f"{row['pair']}, {row['labels']} labels: {_verdict(row)}" for row in m["sharing_pays"]["comparisons"]))
    m4 = r["05"]
    add("losses summed or weighted", "05: summed steps (half a batch of each task) vs alternating steps, the same "
        "steps and examples, the whole encoder trained, paired over seeds",
        m4 and "loss_combination" in m4 and "; ".join(
            f"{row['A']} − {row['B']}, {row['task']}: {_interval(row)}, {_verdict(row)}"
            for row in m4["loss_combination"]["comparisons"]))
    m = r["04"]
    add("freezing certain layers ... avoiding overfitting", "04: bottom-k sweep, paired against k = 0",
        m and "; ".join(f"{row['A']} {row['task']}: {_verdict(row)}" for row in m["sweep_comparisons"]))
    if r["01"] and "few_labels" in r["01"]:
        add("... (against full fine-tuning, by training-set size)", "01 § 9: full fine-tuning vs the frozen encoder + "
            "probe on the same topic labels, paired over seeds",
            "; ".join(f"fine-tuning − frozen, {row['labels']} labels: {_interval(row)}, {_verdict(row)}"
                      for row in r["01"]["few_labels"]["comparisons"]))
    if m and "frozen_head" in m:
        add("freezing a task head (scenario 3)", f"04: joint training ({_top_layer(m)}), topic head frozen vs "
            "trainable, paired",
            "; ".join(f"{row['task']}: {_verdict(row)}" for row in m["frozen_head"])
            + " (the frozen head stays bit-identical)")
        add("the choice of pretrained model matters", "04: frozen probe, pretrained vs random weights",
            "; ".join(f"{row['task']}: {_interval(row)}, {_verdict(row)}" for row in m["pretrained_vs_random"]))
    m = r["05"]
    add("layer-wise rates help foundational layers retain general knowledge", "05: each arm vs uniform, paired; "
        "mean rate over depth matched",
        m and "; ".join(f"{row['A']}: {_verdict(row)}" for row in m["comparisons"])
        + " (lower layers do move less: bottom/top weight change "
        + ", ".join(f"{k} {v:.2f}" for k, v in m["bottom_over_top"].items()) + ")")
    if m and "forgetting_protection" in m:
        topic = [row for row in m["forgetting_protection"] if row["task"] == "topic"]
        kept = {row["A"]: row["share of topic's gain kept"] for row in m["forgetting"]}
        add("... retain (the other task's knowledge, multi-task)", "05: continued on sentiment, topic watched, each "
            "decay vs uniform", "topic: " + "; ".join(f"{row['A']} {_interval(row)}, {_verdict(row)}" for row in topic)
            + "; share of topic's gain kept " + ", ".join(f"{k} {v:.0%}" for k, v in kept.items()) + " (one seed)")
    return "\n".join(rows)


def benchmarks() -> str:
    """Tables of the benchmark scripts' last committed runs (``benchmarks/results/*.json``)."""
    blocks = []
    for path in sorted(BENCHMARKS.glob("*.json")):
        record = json.loads(path.read_text())
        blocks += [f"**{record['title']}** (`{record['command']}`; {record['setting']})", "", record["table"], ""]
    return "\n".join(blocks).strip() or "*No benchmark results committed yet: run `make benchmark`.*"


SECTIONS: dict[str, Callable[[], str]] = {"runtimes": runtimes, "results": results, "claims": claims,
                                          "benchmarks": benchmarks}


def render(text: str) -> str:
    """``text`` (a README) with every generated section replaced by what the results say now."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> section")
        text = pattern.sub(lambda match: match.group(1) + make() + "\n" + match.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is not up to date")
    args = parser.parse_args(argv)
    current = README.read_text()
    fresh = render(current)
    if args.check:
        stale = stale_forests()
        if fresh != current or stale:
            print(f"README.md{' and ' + ', '.join(stale) if stale else ''} differ from the committed results: "
                  "run `python -m tools.readme`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    figures = write_forests()
    print(f"updated {paths.relative(README)} and {len(figures)} forest plots in {paths.relative(FIGURES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
