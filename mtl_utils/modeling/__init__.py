"""Modeling: the sentence encoder and the multi-task model built on it.

* :mod:`~mtl_utils.modeling.pooling`: mean / cls / max pooling (no parameters);
* :mod:`~mtl_utils.modeling.attention_pooling`: attention pooling with a learned query (an encoder can use it);
* :mod:`~mtl_utils.modeling.backbone`: the transformer loaded, encoders only, never code from a model folder;
* :mod:`~mtl_utils.modeling.encoder`: the sentence encoder (transformer + pooling), what inputs it accepts;
* :mod:`~mtl_utils.modeling.heads`: a task head, and the task specification a model is built from;
* :mod:`~mtl_utils.modeling.checkpoint`: a checkpoint folder written and read back, verified;
* :mod:`~mtl_utils.modeling.model`: the multi-task model (shared encoder, one head per task);
* :mod:`~mtl_utils.modeling.anatomy`: the parts of a model found once: embeddings, layers, heads, depth;
* :mod:`~mtl_utils.modeling.data_flow`: a batch's shapes stage by stage through the model.
"""
