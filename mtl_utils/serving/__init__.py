"""Serving: one model answering every task, faster inference, the command line.

* :mod:`~mtl_utils.serving.variants`: inference variants (fp32, int8, ONNX Runtime), timed and scored;
* :mod:`~mtl_utils.serving.speed`: encoding speed and padding;
* :mod:`~mtl_utils.serving.predict`: ``python -m mtl_utils.serving.predict``, a checkpoint on the command line.

The inference variants' names are re-exported lazily (``from mtl_utils import serving;
serving.measure_variants(...)``), so the command line does not import ONNX Runtime.
"""
import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    variants = importlib.import_module(f"{__name__}.variants")
    if name.startswith("_") or not hasattr(variants, name):
        raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
    return getattr(variants, name)
