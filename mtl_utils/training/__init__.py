"""Training: one configuration, one run, cached.

* :mod:`~mtl_utils.training.config`: ``TrainConfig``, validated field by field;
* :mod:`~mtl_utils.training.sampling`: which task trains next, and its next mini-batch;
* :mod:`~mtl_utils.training.freezing`: freezing by intent;
* :mod:`~mtl_utils.training.frozen_cache`: frozen bottom layers computed once (exact);
* :mod:`~mtl_utils.training.optim`: parameter groups, layer-wise rates, the optimizer and its schedule;
* :mod:`~mtl_utils.training.rounds`: the Trainer's collaborators: each round's freezing and caches, the
  best round kept;
* :mod:`~mtl_utils.training.trainer`: the ``Trainer`` and its step (one task, or all summed);
* :mod:`~mtl_utils.training.runs`: finished runs cached by everything they depend on (train-or-load);
* :mod:`~mtl_utils.training.distributed`: who this process is when ``torchrun`` starts several, and how a
  step's batch is shared (DistributedDataParallel);
* :mod:`~mtl_utils.training.launch`: the command line that trains one protocol run, on one process or several;
* :mod:`~mtl_utils.training.protocol`: the one protocol of the series (splits, budget, rates);
* :mod:`~mtl_utils.training.contrastive`: the contrastive losses and GradCache;
* :mod:`~mtl_utils.training.sentence_training`: pair runs, SetFit's pairs, the contrastive task in the Trainer.
"""
