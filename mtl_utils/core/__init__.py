"""Core: what every layer above may use and nothing here imports from above.

* :mod:`~mtl_utils.core.paths`: every folder read or written;
* :mod:`~mtl_utils.core.assets`: the bundled model and corpora, found without importing their packages;
* :mod:`~mtl_utils.core.runtime`: the device (a GPU if there is one) and the thread setting;
* :mod:`~mtl_utils.core.seeding`: one seeding call;
* :mod:`~mtl_utils.core.progress`: progress bars, one policy;
* :mod:`~mtl_utils.core.batching`: length-sorted batches, padding, an eval-mode context;
* :mod:`~mtl_utils.core.digests`: file and text digests, atomic writes (the one place they are defined);
* :mod:`~mtl_utils.core.folders`: sealed folders, written whole and verified before read (the run store's entries).
"""
