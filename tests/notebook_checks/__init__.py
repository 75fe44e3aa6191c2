"""One module per notebook, named after its stem (``01_sentence_embeddings.py`` -> ``nb01.py``), each with
``check(metrics: dict) -> None`` asserting on the numbers that notebook records in its ``metrics.json``."""
