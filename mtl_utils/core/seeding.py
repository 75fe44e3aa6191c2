"""One call seeds everything."""
from __future__ import annotations

import os

import torch
import transformers


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (every device) with ``transformers.set_seed``; with ``deterministic``
    also ask torch for deterministic kernels, warning (not failing) where an operation has none. Call it at the top of a
    notebook and before each run that must be reproducible. On purpose it does not use
    ``transformers.set_seed(deterministic=True)`` (an operation without a deterministic kernel would be an error), nor
    set ``PYTHONHASHSEED``, which only takes effect before the interpreter starts."""
    transformers.set_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when CUDA initialises
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
