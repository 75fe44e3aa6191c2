"""One call seeds everything."""
from __future__ import annotations

import os

import torch
import transformers


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (every device) with ``transformers.set_seed``; with
    ``deterministic`` also ask torch for deterministic kernels, warning (not failing) where an operation has none.

    Call it once at the top of a notebook, and again before each run that must be reproducible. Two things it
    does not do, on purpose: ``transformers.set_seed(deterministic=True)`` would make an operation without a
    deterministic kernel an error, hence the ``warn_only`` switch here; and hash randomisation
    (``PYTHONHASHSEED``) can only be fixed before the interpreter starts: setting it at run time, as this
    function once did, changes nothing in the running process.
    """
    transformers.set_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when CUDA initialises
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
