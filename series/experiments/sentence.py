"""Notebook 02's experiments: encoders judged as embeddings (retrieval and clustering), human-judged
similarity (STS), SetFit's few-label arm, the cross-encoder's re-ranking and cost, and the search box over the
benchmark's passages; notebook 04 re-measures the series' classification-trained encoders with them."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mtl_utils.core.progress import progress
from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.data.tasks import Task
from mtl_utils.evaluation import sts
from mtl_utils.evaluation.probing import ProbeResult, probe_cv
from mtl_utils.evaluation.retrieval import (
    clustering_score,
    evaluate_encoder,
    rank_metrics,
    semantic_search,
    summary,
)
from mtl_utils.evaluation.similarity import cosine_matrix
from mtl_utils.modeling.encoder import SentenceEncoder
from mtl_utils.training import cross_encoder
from mtl_utils.training.config import TrainConfig
from mtl_utils.training.cross_encoder import CrossEncoder
from mtl_utils.training.sentence_training import PairConfig, setfit_pairs
from mtl_utils.training.trainer import TrainResult
from series import explore, fast_search, protocol
from series.comparisons import compare_correlations, compare_scores, compare_seeds
from series.corpora import with_train_labels
from series.headline_passages import HeadlinePassages
from series.pair_runs import pairs_or_load
from series.report import shorten
from series.runs import train_or_load

MAIN = "MRR@10"  # the metric the comparisons are on


def series_arms(quick: bool, model: str | None = None) -> dict[str, TrainConfig]:
    """The classification-trained encoders notebook 04's last section re-measures, by the names it gives
    them: 03's single-task and multi-task models, 04's multi-task model with the bottom 3 (and, in a full run,
    5) layers frozen. The configurations are exactly those notebooks' (same protocol call), so every run loads
    from the run cache."""
    n_layers = 6
    both = protocol.config(("topic", "sentiment"), quick, model)
    sentiment = protocol.config(("sentiment",), quick, model)
    arms = {"single-task topic (03)": protocol.config(("topic",), quick, model),
            "single-task sentiment (03)": sentiment, "multi-task (03)": both,
            "multi-task, k = 3 frozen (04)": both.replace(frozen_layers=n_layers // 2)}
    if not quick:
        arms["multi-task, k = 5 frozen (04)"] = both.replace(frozen_layers=n_layers - 1)
    return arms


def profile(encoder: SentenceEncoder, bench: HeadlinePassages, topic: Task, seed: int = 0
            ) -> tuple[pd.DataFrame, float]:
    """An encoder as an embedding: per-query retrieval metrics on ``bench`` and the V-measure of k-means on
    its vectors of the topic test sentences. No progress bar of its own: callers loop over encoders under
    one bar."""
    per_query = evaluate_encoder(encoder, bench.evaluation, show_progress=False)
    vectors = encoder.encode(list(topic["test"]["text"]), batch_size=64, show_progress=False,
                             warn_truncation=False)
    return per_query, clustering_score(vectors, topic["test"]["label"].to_numpy(), seed)


def profile_row(name: str, per_query: pd.DataFrame, v_measure: float | None, **extra) -> dict:
    """One row of a retrieval table: the mean metrics and the clustering score (``None``: no vectors to
    cluster, as for BM25)."""
    return {"encoder": name, **summary(per_query), "V-measure (topic)": v_measure, **extra}


def records_of(table: pd.DataFrame) -> list[dict]:
    """``table``'s rows as dicts for a metrics record, a missing number (NaN) as ``None``."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def measure_runs(configs: Mapping[str, TrainConfig], tasks: Mapping[str, Task], bench: HeadlinePassages,
                 seeds: Sequence[int], force: bool = False) -> tuple[pd.DataFrame, dict, dict]:
    """Every configuration and seed loaded from the run cache (trained if missing), its encoder profiled:
    rows (encoder, seed, the metrics, test accuracy of each task it trained, cached), the per-query
    metrics and the runs, both by ``(name, seed)``. The clustering score is left out (``None``) for an
    encoder trained on topic: k-means would be judged on the labels its head was trained to separate."""
    rows, per_query, results = [], {}, {}
    bar = progress([(n, s) for n in configs for s in seeds], desc="encoders", unit="encoder")
    for name, seed in bar:
        result: TrainResult = train_or_load(configs[name].replace(seed=seed), tasks, force=force,
                                            progress_bar=False)
        table, v = profile(result.model.encoder, bench, tasks["topic"], seed)
        per_query[name, seed], results[name, seed] = table, result
        accuracy = {f"{t} accuracy": float(result.correct(tasks, t).mean()) for t in result.config.tasks}
        v = None if "topic" in result.config.tasks else v
        rows.append(profile_row(name, table, v, seed=seed, cached=result.cached, **accuracy))
    return pd.DataFrame(rows), per_query, results


def held_out_pairs(bench: HeadlinePassages, n: int) -> pd.DataFrame:
    """``n`` evaluation headlines spread evenly over the set (and so over its topics), each with its own
    passage (``headline``, ``passage``): a batch of held-out pairs, as § 2's in-batch loss sees one."""
    e = bench.evaluation
    if not 2 <= n <= len(e):
        raise ValueError(f"n must be between 2 and the {len(e)} evaluation headlines, got {n}")
    passage = dict(zip(e.corpus_ids, e.passages))
    picks = np.linspace(0, len(e) - 1, n).round().astype(int)
    return pd.DataFrame([{"headline": e.queries[i], "passage": passage[min(e.relevant[e.query_ids[i]])]}
                         for i in picks])


def sts_runs(encoders: Mapping[str, Mapping[int, SentenceEncoder]], pairs: pd.DataFrame
             ) -> tuple[pd.DataFrame, dict]:
    """Every encoder (by name, then seed; one object listed under several seeds is encoded once) scored on
    rated sentence pairs (:func:`series.corpora.load_sts`): rows (encoder, seed, Spearman, Pearson) and
    the cosines by ``(name, seed)``, for :func:`~series.comparisons.compare_correlations`."""
    rows, cosines, done = [], {}, {}
    for name, by_seed in encoders.items():
        for seed, encoder in by_seed.items():
            if id(encoder) not in done:
                done[id(encoder)] = sts.pair_cosines(encoder, pairs["sentence1"], pairs["sentence2"])
            cosines[name, seed] = done[id(encoder)]
            rows.append({"encoder": name, "seed": seed, **sts.sts_scores(cosines[name, seed], pairs["score"])})
    return pd.DataFrame(rows), cosines


def sts_versus(cosines: Mapping[tuple[str, int], np.ndarray], pairs: pd.DataFrame,
               arms: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """A − B in Spearman correlation with the ratings of ``pairs`` for each ``(A, B)`` of ``arms``, from
    :func:`sts_runs`' cosines, paired by seed and pair (:func:`~series.comparisons.compare_correlations`)."""
    def seeds(name: str) -> list[int]:
        return sorted(s for n, s in cosines if n == name)

    rows = []
    for a, b in arms:
        if not seeds(a) or seeds(a) != seeds(b):
            raise ValueError(f"{a!r} and {b!r} need cosines for the same seeds (got {seeds(a)} and {seeds(b)})")
        rows.append(compare_correlations(a, [cosines[a, s] for s in seeds(a)], b,
                                         [cosines[b, s] for s in seeds(b)], pairs["score"].to_numpy()))
    return pd.DataFrame(rows)


def versus(name: str, runs: Sequence[pd.DataFrame], other: str, others: Sequence[pd.DataFrame],
           metric: str = MAIN) -> dict:
    """``name`` − ``other`` on the per-query ``metric``, paired by seed (``others`` may repeat one fixed
    encoder for every seed) and query (:func:`~series.comparisons.compare_scores`)."""
    return compare_scores(name, [r[metric].to_numpy() for r in runs], other,
                          [o[metric].to_numpy() for o in others], f"retrieval ({metric})", metric)


def setfit_arm(model: str | None, task: Task, n: int, seeds: Sequence[int], iterations: int,
               config: PairConfig, force: bool = False) -> tuple[dict[int, ProbeResult], pd.DataFrame]:
    """SetFit on ``n`` labelled sentences per seed (the subset :func:`~series.corpora.with_train_labels`
    draws, as the fine-tuning and probe arms use): contrastive pairs of those sentences, the encoder trained
    on them with the cosine loss, then a logistic head (``C`` fixed at 1, SetFit's default and the probe
    arm's: no model selection) on its vectors, scored on the full test set. Returns the heads by seed and a table."""
    results, rows = {}, []
    test_y = task["test"]["label"].to_numpy()
    for seed in progress(list(seeds), desc="SetFit", unit="seed"):
        subset = with_train_labels(task, n, seed)["train"]
        pairs = setfit_pairs(list(subset["text"]), subset["label"].to_numpy(), iterations, seed)
        run = pairs_or_load(config.replace(model=model or config.model, seed=seed), pairs, force=force,
                            progress_bar=False)
        train_X = run.encoder.encode(list(subset["text"]), show_progress=False, warn_truncation=False)
        test_X = run.encoder.encode(list(task["test"]["text"]), batch_size=64, show_progress=False,
                                    warn_truncation=False)
        results[seed] = probe_cv(train_X, subset["label"].to_numpy(), test_X, test_y, C_grid=(1.0,), seed=seed)
        rows.append({"experiment": "SetFit", "seed": seed, "labels": len(subset), "pairs": len(pairs),
                     "accuracy": results[seed].accuracy, "C": results[seed].C,
                     "train seconds": run.train_seconds, "cached": run.cached})
    return results, pd.DataFrame(rows)


def versus_arm(name: str, correct: Mapping[int, np.ndarray], other: str, other_correct: Mapping[int, np.ndarray],
               task: str) -> dict:
    """Two few-label arms on the same seeds (the same labelled subsets) and test set."""
    seeds = sorted(correct)
    if sorted(other_correct) != seeds:
        raise KeyError(f"{name} has seeds {seeds}, {other} has {sorted(other_correct)}: pair the same seeds")
    return compare_seeds(name, [correct[s] for s in seeds], other, [other_correct[s] for s in seeds], task)


def search_box(encoders: Mapping[str, SentenceEncoder], data: RetrievalSet, query: str, k: int = 3):
    """A text box whose search runs as the reader types (JupyterLab); under papermill or in the static book,
    the table for ``query``. Passage vectors are computed once per encoder
    (:func:`series.explore.explorer`)."""
    import ipywidgets as widgets

    control = widgets.Text(value=query, description="query", continuous_update=False,
                           layout=widgets.Layout(width="80%"))
    return explore.explorer(control, lambda text: explore.table_html(semantic_search(encoders, data, text, k)),
                            lambda: explore.table_html(semantic_search(encoders, data, query, k)),
                            "the box searches as you type", f"the query \u201c{query}\u201d")


def set_aside_examples(set_aside: pd.DataFrame, headlines: Sequence[str], passages: Sequence[str],
                       n: int = 4, width: int = 90) -> pd.DataFrame:
    """The ``n`` passages the miner set aside with the highest cosines (one per headline), beside the
    headline and its own passage: false negatives, mostly, to read."""
    rows = set_aside.drop_duplicates("query").head(n)
    return pd.DataFrame({"headline": [headlines[q] for q in rows["query"]],
                         "its own passage": [shorten(passages[q], width) for q in rows["query"]],
                         "own cosine": rows["positive cosine"].round(2).to_numpy(),
                         "passage set aside": [shorten(passages[p], width) for p in rows["passage"]],
                         "cosine": rows["cosine"].round(2).to_numpy()})


def prefix_table(prefixes: Mapping[tuple[str, int], Mapping[int, pd.DataFrame]], metric: str = MAIN
                 ) -> pd.DataFrame:
    """Long table of ``(encoder, seed) -> {dims: per-query metrics}``: one row per encoder, seed and
    dimensions kept, with the mean ``metric`` over the queries."""
    return pd.DataFrame([{"encoder": name, "seed": seed, "dims": d, metric: float(per_query[metric].mean())}
                         for (name, seed), by_dims in prefixes.items() for d, per_query in by_dims.items()])


def prefix_versus(prefixes: Mapping[tuple[str, int], Mapping[int, pd.DataFrame]], name: str, other: str,
                  seeds: Sequence[int], labels: tuple[str, str] | None = None) -> pd.DataFrame:
    """``name`` − ``other`` at each number of dimensions kept (:func:`versus`, paired by seed and query); rows
    named ``"<label>, <d> dims"`` (``labels``: the two arms' short names, default ``name`` and ``other``)."""
    a, b = labels or (name, other)
    dims = list(prefixes[name, seeds[0]])
    return pd.DataFrame([versus(f"{a}, {d} dims", [prefixes[name, s][d] for s in seeds], f"{b}, {d} dims",
                                [prefixes[other, s][d] for s in seeds]) for d in dims])


def reranked(models: Mapping[int, CrossEncoder], firsts: Mapping[str, np.ndarray | Mapping[int, np.ndarray]],
             data: RetrievalSet, k: int = 10) -> dict[str, dict[int, pd.DataFrame]]:
    """Per first stage and seed: :func:`~mtl_utils.evaluation.retrieval.rank_metrics` after seed ``s``'s
    cross-encoder re-ranks the stage's top ``k``. A stage is one score matrix (queries × passages) or one per
    seed. Every (query, passage) candidate is scored once per seed, whichever stages share it."""
    per_seed = {name: f if isinstance(f, Mapping) else dict.fromkeys(models, f) for name, f in firsts.items()}
    for name, f in per_seed.items():
        if set(f) != set(models):
            raise ValueError(f"first stage {name!r} has scores for seeds {sorted(f)}, the cross-encoders for "
                             f"{sorted(models)}")
    out: dict[str, dict[int, pd.DataFrame]] = {name: {} for name in firsts}
    for s, model in models.items():
        tops = {name: cross_encoder.top_k(f[s], k, data.corpus_ids) for name, f in per_seed.items()}
        pairs = sorted({(q, int(p)) for top in tops.values() for q, row in enumerate(top) for p in row})
        scores = model.score([data.queries[q] for q, _ in pairs], [data.passages[p] for _, p in pairs])
        of = dict(zip(pairs, scores))
        for name, top in tops.items():
            cross = np.array([[of[q, int(p)] for p in row] for q, row in enumerate(top)])
            out[name][s] = rank_metrics(cross_encoder.rerank(per_seed[name][s], top, cross), data)
    return out


def two_sets(encoders: Mapping[tuple[str, int], SentenceEncoder], benchmarks: Mapping[str, RetrievalSet],
             shipped: SentenceEncoder, metric: str = MAIN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Encoders trained over two pair sets (keyed by sampler and seed) scored on each set's benchmark: the mean
    ``metric`` per benchmark (MiniLM as shipped beside each sampler's mean over seeds), and round-robin minus
    proportional on each benchmark, paired by seed and query (:func:`versus`)."""
    seeds = sorted({s for _, s in encoders})
    scores = {(name, s, bench): evaluate_encoder(e, data) for (name, s), e in encoders.items()
              for bench, data in benchmarks.items()}
    table = pd.DataFrame({bench: {"MiniLM as shipped": float(evaluate_encoder(shipped, data)[metric].mean()),
                                  **{name: float(np.mean([scores[name, s, bench][metric].mean() for s in seeds]))
                                     for name in dict.fromkeys(n for n, _ in encoders)}}
                          for bench, data in benchmarks.items()})
    rows = [{**versus("round-robin", [scores["round-robin", s, bench] for s in seeds], "proportional",
                      [scores["proportional", s, bench] for s in seeds], metric), "task": f"{bench} ({metric})"}
            for bench in benchmarks]
    return table, pd.DataFrame(rows)


def all_pairs_cost(cross: CrossEncoder, bi: SentenceEncoder, a: Sequence[str], b: Sequence[str],
                   sizes: Sequence[int] = (1_000, 10_000), repeats: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cost side, measured in one process: pairs per second of ``cross`` on the pairs (``a[i]``, ``b[i]``),
    texts per second of ``bi`` on the same texts and the seconds of one cosine matrix of ``max(sizes)`` vectors
    (medians over interleaved repeats, with the slowest and fastest), then what finding the most similar pair
    among n sentences would take at those rates: n(n − 1)/2 cross-encoder passes, or n encodings and the matrix."""
    texts, largest = [*a, *b], max(sizes)
    vectors = np.random.default_rng(0).standard_normal((largest, bi.dim), dtype=np.float32)
    times = fast_search.interleaved({"cross-encoder": lambda: cross.score(a, b, batch_size=64),
                                     "bi-encoder": lambda: bi.encode(texts, batch_size=64, warn_truncation=False),
                                     "matrix": lambda: cosine_matrix(vectors, vectors)}, repeats)
    rates = pd.concat([fast_search.rate_table({name: times[name]}, items, "items", "encoder").assign(item=unit)
                       for name, items, unit in (("cross-encoder", len(a), "pairs"),
                                                 ("bi-encoder", len(texts), "sentences"))])
    matrix = float(np.median(times["matrix"]))
    per_pair, per_text = (1 / rates.loc[name, "items/s (median)"] for name in ("cross-encoder", "bi-encoder"))
    cost = pd.DataFrame([{"sentences": n, "cross-encoder (hours)": n * (n - 1) / 2 * per_pair / 3600,
                          "bi-encoder (seconds)": n * per_text + matrix * (n / largest) ** 2} for n in sizes])
    return rates, cost
