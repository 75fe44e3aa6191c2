"""Serving: one model answering every task, faster inference, the command line.

* :mod:`~mtl_utils.serving.variants`: inference variants (fp32, int8, ONNX Runtime) of the model, on the CPU;
* :mod:`~mtl_utils.serving.static_int8`: static int8 (OpenVINO with NNCF, ONNX Runtime), calibrated once;
* :mod:`~mtl_utils.serving.padding`: encoding speed by batching order, and the padding it avoids;
* :mod:`~mtl_utils.serving.predict`: ``python -m mtl_utils.serving.predict``, a checkpoint on the command line.

ONNX Runtime and OpenVINO are imported only where they run. Notebook 06's measurements of every variant in
one call, and their re-timing as on older CPUs, are the series' (:mod:`series.serving_measurements`,
:mod:`series.older_cpus`).
"""
