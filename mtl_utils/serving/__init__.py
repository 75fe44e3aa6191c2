"""Serving: one model answering every task, faster inference, static models, smaller vectors, the command lines.
ONNX Runtime and OpenVINO are imported only where used; notebook 06 measures all in :mod:`series.serving_measurements`.

* :mod:`~mtl_utils.serving.variants`: inference variants (fp32, int8, ONNX Runtime) of the model, on the CPU;
* :mod:`~mtl_utils.serving.static_int8`: static int8 (OpenVINO with NNCF, ONNX Runtime), calibrated once;
* :mod:`~mtl_utils.serving.padding`: encoding speed by batching order, and the padding it avoids;
* :mod:`~mtl_utils.serving.predict`: ``python -m mtl_utils.serving.predict``, a checkpoint on the command line;
* :mod:`~mtl_utils.serving.static_embedding`: a static model distilled from the transformer, then trained;
* :mod:`~mtl_utils.serving.quantized_search`: int8 and binary vectors for search, and rescoring;
* :mod:`~mtl_utils.serving.search`: ``python -m mtl_utils.serving.search``, a corpus searched on the command line.
"""
