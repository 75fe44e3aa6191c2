"""The notebooks' live controls (series.explore), driven headless as a reader would drive them:
set the control's value, read what the view shows; and their static fallback under papermill."""
import re

import pandas as pd
import pytest

from mtl_utils import anatomy, freezing
from mtl_utils.core.progress import HEADLESS_ENV
from series import explore
from series.experiments import search_box


@pytest.fixture
def live(monkeypatch):
    monkeypatch.setenv(HEADLESS_ENV, "0")


@pytest.fixture
def static(monkeypatch):
    monkeypatch.setenv(HEADLESS_ENV, "1")


@pytest.fixture
def sweep():
    """A sweep table as notebook 04 shows it, for k = 0 and k = 2 of the tiny model's 2 layers."""
    return pd.DataFrame({"experiment": ["k=0", "k=2"], "k": [0, 2], "trainable parameters": [1, 1],
                         "train seconds per run": [20.0, 5.0], "speed-up": [1.0, 4.0],
                         "topic accuracy": [0.9, 0.85], "sentiment accuracy": [0.8, 0.7],
                         "topic − k=0": ["", "-0.050 [-0.07, -0.03]"],
                         "sentiment − k=0": ["", "-0.100 [-0.12, -0.08]"]})


def numbers(text: str) -> list[str]:
    return re.findall(r"\d[\d,]*\.?\d*", re.sub(r"<[^>]+>", " ", text))


def test_freezing_explorer_follows_the_slider(live, served, sweep):
    shown = explore.freezing_explorer(served, sweep)
    counts = explore.trainable_by_k(served)
    assert shown.control.max == anatomy.num_layers(served) == 2
    assert f"{counts[0]:,} trainable parameters" in shown.view.value
    shown.control.value = 1  # not in the sweep: counted, said not trained
    assert f"{counts[1]:,} trainable parameters" in shown.view.value
    assert "did not train k = 1" in shown.view.value
    shown.control.value = 2
    assert "4.0×" in shown.view.value and "-0.100 [-0.12, -0.08]" in shown.view.value
    assert counts[0] > counts[1] > counts[2]
    assert anatomy.trainable_parameters(served) == counts[0]  # the model is left unfrozen
    freezing.freeze_bottom(served, 2)
    assert anatomy.trainable_parameters(served) == counts[2]
    freezing.unfreeze_all(served)


def test_a_cell_ending_with_an_explorer_shows_its_widget(live, served, sweep):
    """JupyterLab displays a cell's last value by its mime bundle: the widget's view, not a dataclass repr."""
    shown = explore.freezing_explorer(served, sweep)
    bundle = shown._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == shown.widget.model_id


def test_freezing_explorer_is_one_table_headless(static, served, sweep):
    shown = explore.freezing_explorer(served, sweep)
    page = shown.data
    assert "In JupyterLab a slider picks k" in page
    assert page.count("</tr>") == 1 + 3  # header, k = 0, 1, 2
    assert "20.0" in page and "–" in page  # k = 1 was not run


def test_freezing_view_rejects_an_unknown_k(served, sweep):
    with pytest.raises(ValueError, match="k must be one of"):
        explore.freezing_view(7, explore.freezing_by_k(served), sweep)


def test_the_layer_strip_shows_what_freeze_bottom_froze(served):
    by_k = explore.freezing_by_k(served)
    assert list(by_k[0].parts) == ["embeddings", "layer 1", "layer 2", "heads"]
    assert not any(by_k[0].parts.values())
    assert by_k[1].parts == {"embeddings": True, "layer 1": True, "layer 2": False, "heads": False}
    assert explore.layer_strip(by_k[1].parts).count('title="frozen"') == 2


def test_decay_explorer_redraws_the_rates_and_the_schedule(live, served):
    shown = explore.decay_explorer(served, lr=5e-5, head_lr=1e-3, weight_decay=0.01, steps=20, xi=1.0)
    uniform = shown.view.value
    assert uniform.count("5.00e-05") >= 3  # every layer at the same rate
    assert "<img" in uniform and "ξ = 1" in uniform
    shown.control.value = 0.5
    decayed = shown.view.value
    assert decayed != uniform and "0.25" in decayed  # two layers below the top: 0.5²
    top = explore.decay_groups(served, 0.5, 5e-5, 1e-3, 0.01)
    table = explore.optim.lr_table(served, top)
    mean = table[table["group"].str.startswith(("layer", "embeddings"))]["learning rate"].mean()
    assert mean == pytest.approx(5e-5)  # the mean over depth is kept


def test_decay_explorer_shows_several_settings_headless(static, served):
    shown = explore.decay_explorer(served, 5e-5, 1e-3, 0.01, 20, static_values=(1.0, 0.5))
    assert "ξ = 1" in shown.data and "ξ = 0.5" in shown.data and "<img" not in shown.data


def test_sentence_explorer_answers_with_both_heads_and_neighbours(live, served, served_texts):
    space = explore.Neighbourhood.of(served, served_texts, ["x"] * len(served_texts))
    shown = explore.sentence_explorer(space, served_texts[0], k=3)
    first = shown.view.value
    assert "topic" in first and "sentiment" in first
    assert "1.000" in first  # the sentence itself is its nearest neighbour
    shown.control.value = "A warm and funny film."
    assert shown.view.value != first and "A warm and funny film." in shown.view.value
    shown.control.value = "   "
    assert "type a sentence" in shown.view.value  # said, not raised


def test_neighbourhood_needs_a_label_per_text(served):
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        explore.Neighbourhood.of(served, ["a", "b", "c"], ["x", "y"])


def test_search_box_searches_as_the_reader_types(live, served, served_texts):
    from mtl_utils.data.retrieval import RetrievalSet

    data = RetrievalSet(queries=("q",), query_ids=("a",), passages=tuple(served_texts[:6]),
                        corpus_ids=tuple(f"p{i}" for i in range(6)), relevant={"a": frozenset({"p0"})})
    shown = search_box({"tiny": served.encoder}, data, served_texts[0], k=2)
    assert "p0" in shown.view.value
    shown.control.value = ""
    assert "type a query" in shown.view.value


def test_sentence_explorer_answers_with_probes_on_frozen_vectors(live, served, served_texts, small_tasks):
    """Notebook 01's box: a fitted probe per task on the encoder's vectors, neighbours from given vectors."""
    from sklearn.linear_model import LogisticRegression

    encoder = served.encoder
    probes = {}
    for name, task in small_tasks.items():
        train = task["train"]
        probe = LogisticRegression(max_iter=200).fit(
            encoder.encode(list(train["text"]), warn_truncation=False), train["label"])
        probes[name] = (probe, task.labels)
    vectors = encoder.encode(served_texts, warn_truncation=False)
    space = explore.Neighbourhood.of_probes(encoder, probes, served_texts, ["x"] * len(served_texts), vectors)
    shown = explore.sentence_explorer(space, served_texts[0], k=2)
    first = shown.view.value
    assert all(name in first for name in small_tasks) and "1.000" in first
    text = "A warm and funny film."
    query = encoder.encode([text], warn_truncation=False)
    shown.control.value = text
    for name, (probe, labels) in probes.items():  # each answer is the probe's own
        assert f"<td>{labels[int(probe.predict(query)[0])]}</td>" in shown.view.value
    with pytest.raises(ValueError, match="3 texts but 2 vectors"):
        explore.Neighbourhood.of_probes(encoder, probes, ["a", "b", "c"], ["x"] * 3, vectors[:2])
    with pytest.raises(ValueError, match="not a fitted classifier"):
        explore.Neighbourhood.of_probes(encoder, {"topic": (None, ["a"])}, ["a"], ["x"], vectors[:1])


def test_explorer_tables_are_padded():
    import pandas as pd

    from series.explore import TABLE_STYLE, table_html
    html = table_html(pd.DataFrame({"task": ["topic"], "accuracy": [0.9]}))
    assert html.startswith(TABLE_STYLE) and 'class="dataframe mtl-explorer"' in html and "padding" in TABLE_STYLE
