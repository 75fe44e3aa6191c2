import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2 with mean pooling and L2 normalisation (as sentence-transformers ships it)."""
    from mtl_utils import SentenceEncoder

    return SentenceEncoder(normalize=True)


@pytest.fixture(scope="session")
def tasks():
    from mtl_utils import load_tasks

    return load_tasks()
