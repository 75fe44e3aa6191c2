"""Serving: one model answering every task, faster inference, the command line.

* :mod:`~mtl_utils.serving.variants`: inference variants (fp32, int8, ONNX Runtime), timed and scored;
* :mod:`~mtl_utils.serving.static_int8`: static int8 (OpenVINO with NNCF, ONNX Runtime), calibrated once;
* :mod:`~mtl_utils.serving.measure`: notebook 06's measurements of every variant in one call;
* :mod:`~mtl_utils.serving.capped`: the variants re-timed as on CPUs without AMX or VNNI;
* :mod:`~mtl_utils.serving.speed`: encoding speed and padding;
* :mod:`~mtl_utils.serving.predict`: ``python -m mtl_utils.serving.predict``, a checkpoint on the command line.

The inference variants' names are re-exported lazily (``from mtl_utils import serving;
serving.measure_variants(...)``); ONNX Runtime and OpenVINO are imported only where they run.
"""
import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if not name.startswith("_"):
        for module in ("variants", "measure"):
            found = importlib.import_module(f"{__name__}.{module}")
            if hasattr(found, name):
                return getattr(found, name)
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
