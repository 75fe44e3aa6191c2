"""One call seeds everything."""
from __future__ import annotations

import os

import torch
import transformers


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed ``random``, NumPy and PyTorch (``transformers.set_seed``); ``deterministic``: deterministic kernels too."""
    transformers.set_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when CUDA initialises
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
