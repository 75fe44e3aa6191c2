"""What the notebooks of the sentence-transformers and multi-task learning series teach, one module per idea.

The package is in layers, one subpackage each; a module imports only from its own layer or the layers before
it (``tests/test_layout.py`` enforces it):

1. :mod:`mtl_utils.core`: paths, bundled assets, device and threads, seeding, progress bars, batching, digests,
   sealed folders;
2. :mod:`mtl_utils.data`: a task and a retrieval set as the trainer and the evaluations take them, checked;
3. :mod:`mtl_utils.modeling`: pooling, the sentence encoder, task heads, the multi-task model and its
   checkpoints, the model's anatomy, the data flow through it;
4. :mod:`mtl_utils.evaluation`: scores, frozen-encoder probes, embedding geometry, retrieval
   and semantic search, gradient conflict (below training, because a run scores itself);
5. :mod:`mtl_utils.training`: the configuration, task sampling, freezing and its cache, layer-wise rates, the
   ``Trainer``, contrastive losses and pair training, distributed training;
6. :mod:`mtl_utils.serving`: inference variants, static int8, speed, the command line.

The series' machinery (its corpora, the run store, the protocol and its grids, verdict tables, figures, live explorers, run
records, timing harnesses, the launch command) is the package :mod:`series` beside this one; nothing here
imports it. A notebook imports from both::

    from mtl_utils import SentenceEncoder, Trainer, anatomy, ...
    from series import experiments, plots, report, ...

The names below are imported plainly (go-to-definition lands on the function).
"""
from mtl_utils import data, serving
from mtl_utils.core import assets, paths, runtime
from mtl_utils.core.progress import progress
from mtl_utils.core.seeding import set_seed
from mtl_utils.data.retrieval import RetrievalSet
from mtl_utils.data.tasks import SPLITS, Task
from mtl_utils.evaluation import attention_probe, metrics, probing, retrieval, similarity, sts
from mtl_utils.evaluation.attention_probe import fit_probe, token_vectors, top_pieces
from mtl_utils.evaluation.gradient_conflict import gradient_conflict
from mtl_utils.evaluation.metrics import majority_scores
from mtl_utils.evaluation.probing import bag_of_words_probe, l2_normalize, probe, probe_cv, randomly_initialised
from mtl_utils.evaluation.retrieval import semantic_search
from mtl_utils.evaluation.similarity import cosine_matrix, nearest_neighbours, project_2d
from mtl_utils.modeling import anatomy, pooling
from mtl_utils.modeling.anatomy import relative_change, snapshot
from mtl_utils.modeling.data_flow import data_flow
from mtl_utils.modeling.encoder import DEFAULT_MODEL, SentenceEncoder
from mtl_utils.modeling.model import CheckpointError, MultiTaskModel
from mtl_utils.modeling.pooling import POOLING_MODES, mean_pool, pool
from mtl_utils.serving import padding, quantized_search, static_embedding, static_int8, variants
from mtl_utils.serving.padding import batching_speed
from mtl_utils.training import (
    contrastive,
    cross_encoder,
    distributed,
    freezing,
    frozen_cache,
    hard_negatives,
    matryoshka,
    optim,
    pair_sets,
    sentence_training,
)
from mtl_utils.training.config import TrainConfig, chance_loss_weights
from mtl_utils.training.frozen_cache import build_cache, check_equivalence
from mtl_utils.training.sampling import TaskSampler
from mtl_utils.training.trainer import StepLoss, Trainer, TrainResult, build_model, evaluate, train
