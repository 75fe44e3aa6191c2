"""Training: one configuration, one run.

* :mod:`~mtl_utils.training.config`: ``TrainConfig``, validated field by field;
* :mod:`~mtl_utils.training.sampling`: which task trains next, and its next mini-batch;
* :mod:`~mtl_utils.training.freezing`: freezing by intent;
* :mod:`~mtl_utils.training.frozen_cache`: frozen bottom layers computed once (exact);
* :mod:`~mtl_utils.training.optim`: parameter groups, layer-wise rates, the optimizer, its schedule and step;
* :mod:`~mtl_utils.training.validation_rounds`: each round's freezing and caches, the best round kept;
* :mod:`~mtl_utils.training.step_inputs`: where a step's inputs come from (token ids, or the frozen cache);
* :mod:`~mtl_utils.training.distributed`: several processes (``torchrun``, DistributedDataParallel) sharing a step;
* :mod:`~mtl_utils.training.trainer`: the ``Trainer`` and its step (one task, or all summed);
* :mod:`~mtl_utils.training.contrastive`: the contrastive losses and GradCache;
* :mod:`~mtl_utils.training.sentence_training`: pair training, SetFit's pairs, the contrastive task in the Trainer;
* :mod:`~mtl_utils.training.hard_negatives`, :mod:`~mtl_utils.training.matryoshka`: mined negatives, nested prefixes;
* :mod:`~mtl_utils.training.cross_encoder`: a cross-encoder, its training and re-ranking;
* :mod:`~mtl_utils.training.pair_sets`: several pair sets, round-robin or proportional.

Finished runs are kept by the series' run store (:mod:`series.runs`); the series' protocol and its launch command are
:mod:`series.protocol` and :mod:`series.launch`."""
