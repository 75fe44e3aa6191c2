"""Shared fixtures. Most tests use a tiny random BERT (2 layers, hidden 32) built here, so they run in seconds;
tests whose subject is the real model (the reference check, the cache on real sentences) load the bundled
all-MiniLM-L6-v2."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MTL_DEVICE", "cpu")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertModel  # noqa: E402

from mtl_utils import assets  # noqa: E402
from mtl_utils.modeling.model import MultiTaskModel  # noqa: E402
from series import corpora as data  # noqa: E402

TASKS = {"topic": data.TOPIC_LABELS, "sentiment": data.SENTIMENT_LABELS}
SENTENCES = [
    "Shares in the carmaker rose sharply after the results.",
    "A dull, lifeless film.",
    "The minister resigned on Tuesday amid a row over funding.",
    "Warm, funny and beautifully acted, it is a small gem of a movie.",
    "United won 2-0.",
    "The band's new album tops the charts for a third week.",
]


def tiny_bert(folder, **config) -> str:
    """Save a randomly initialised 2-layer BERT (hidden 32; ``config`` overrides) with the real MiniLM
    tokenizer into ``folder``."""
    tokenizer = AutoTokenizer.from_pretrained(assets.bundled_model_dir())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, **config)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding a randomly initialised 2-layer BERT (hidden 32) with the real MiniLM tokenizer."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def small_tasks():
    """Real data, small fixed stratified splits: enough for a few training steps."""
    return data.load_tasks(sizes={"train": 48, "validation": 24, "test": 24})


@pytest.fixture(scope="session")
def tasks():
    """Both tasks with their full splits."""
    return data.load_tasks()


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2 with mean pooling and L2 normalisation (as sentence-transformers ships it)."""
    from mtl_utils import SentenceEncoder

    return SentenceEncoder(normalize=True)


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """A multi-task model on the tiny BERT (both test tasks, random heads), as serving's tests serve it."""
    torch.manual_seed(0)
    return MultiTaskModel(TASKS, model=tiny_model_dir, max_length=32).eval()


@pytest.fixture(scope="module")
def served_texts(small_tasks):
    """Both small tasks' test sentences."""
    return list(small_tasks["topic"]["test"]["text"]) + list(small_tasks["sentiment"]["test"]["text"])
