"""Static int8: activation ranges calibrated once on training sentences (not on the fly, as dynamic int8), then fixed in
the graph. OpenVINO: :func:`openvino_int8` calibrates with NNCF (SmoothQuant, then bias correction), and
:func:`openvino_variant` runs any OpenVINO model (fp32, bf16 where the CPU has AMX, int8); ONNX Runtime:
:func:`onnx_static_int8`. :func:`save_openvino_int8` seals it beside a checkpoint (``--backend openvino-int8``) with the
weights' SHA-256: :func:`saved_openvino_int8` serves it only while they match. Taught in notebook 06, section 3."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from mtl_utils.core import folders
from mtl_utils.core.batching import length_sorted_batches
from mtl_utils.modeling.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint_config
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.serving.variants import Variant, batched, export_onnx, on_cpu

#: Where :func:`save_openvino_int8` puts the calibrated model inside a checkpoint folder.
OPENVINO_INT8 = "openvino-int8/model.xml"
#: Beside it: the SHA-256 of the checkpoint weights it was calibrated from (a re-saved checkpoint makes it stale).
SOURCE = "openvino-int8/source.json"


def calibration_batches(model: MultiTaskModel, texts: Sequence[str], batch_size: int = 8
                        ) -> list[dict[str, np.ndarray]]:
    """``texts`` tokenised into length-sorted batches of ids and masks, as the graph's inputs."""
    if not texts:
        raise ValueError("calibration needs at least one sentence (e.g. training sentences)")
    tokens = model.encoder.token_ids(list(texts))
    batches = []
    for idx in length_sorted_batches(tokens.lengths, batch_size):
        batch = model.encoder.collate([tokens.ids[i] for i in idx])
        batches.append({k: batch[k].cpu().numpy() for k in ("input_ids", "attention_mask")})
    return batches


def _quiet_nncf() -> None:
    os.environ.setdefault("NNCF_DISABLE_TELEMETRY", "1")  # no network here, and none wanted
    logging.getLogger("nncf").setLevel(logging.ERROR)


@contextlib.contextmanager
def _without_progress_bars() -> Iterator[None]:
    """NNCF's progress bars (rich) off: Jupyter draws them as widgets, kept as empty ``Output()`` lines."""
    from nncf.common.logging import track_progress
    original = track_progress.track.__init__

    def quiet(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.progress.disable = True
    track_progress.track.__init__ = quiet
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        track_progress.track.__init__ = original


def openvino_int8(onnx_path: Path, batches: list[dict[str, np.ndarray]], target: Path | None = None):
    """The exported unfused ONNX graph quantised to static int8 by NNCF on ``batches``; saved as IR at ``target``."""
    _quiet_nncf()
    import nncf
    import openvino as ov
    with _without_progress_bars():
        quantized = nncf.quantize(ov.Core().read_model(str(onnx_path)), nncf.Dataset(batches),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(target))
    return quantized


def openvino_variant(model: MultiTaskModel, graph, name: str, precision: str = "f32",
                     threads: int | None = None) -> Variant:
    """Run ``graph`` (an OpenVINO model, or an ONNX / IR path) on the CPU with OpenVINO Runtime; ``precision`` hints
    what is not int8: ``"f32"`` or ``"bf16"`` (OpenVINO's AMX default; asked for so "fp32" means fp32)."""
    import openvino as ov
    if precision not in ("f32", "bf16"):
        raise ValueError(f"precision must be 'f32' or 'bf16', not {precision!r}")
    core = ov.Core()
    graph = core.read_model(str(graph)) if isinstance(graph, (str, Path)) else graph
    config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
              "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(graph, "CPU", config)
    request = compiled.create_infer_request()
    outputs = [compiled.output(n) for n in ["vectors", *model.task_names]]

    def forward(ids, mask):
        result = request.infer({"input_ids": ids.cpu().numpy(), "attention_mask": mask.cpu().numpy()})
        return [result[o] for o in outputs]
    return Variant(name, lambda tok, bs: batched(model, forward, tok, bs), f"OpenVINO Runtime, {precision} hint")


class _Reader:
    """ONNX Runtime's calibration data reader over :func:`calibration_batches`."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches: Iterator = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - called by some calibrators only
        pass


def onnx_static_int8(onnx_path: Path, batches: list[dict[str, np.ndarray]]) -> Path:
    """ONNX Runtime's static int8 (QDQ, uint8 activations, per-channel int8 weights) of the unfused graph's weight
    products (not attention's scores: about −1 point on sentiment), min/max ranges over ``batches``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    graph = onnx.load(str(onnx_path))
    weights = {i.name for i in graph.graph.initializer}
    products = [n.name for n in graph.graph.node if n.op_type == "MatMul" and any(x in weights for x in n.input)]
    target = onnx_path.with_suffix(".static-int8.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process (its shape pass fails here)
    try:
        quantize_static(str(onnx_path), str(target), _Reader(batches), quant_format=QuantFormat.QDQ,
                        nodes_to_quantize=products, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
    return target


def unfused(onnx_path: Path) -> Path:
    """The graph :func:`~mtl_utils.serving.variants.export_onnx` wrote before fusing it."""
    return onnx_path.with_name(onnx_path.name.replace(".opt.onnx", ".onnx"))


def save_openvino_int8(model: MultiTaskModel, checkpoint: str | Path, texts: Sequence[str],
                       batch_size: int = 8) -> Path:
    """Calibrate static int8 on ``texts`` and store it in ``checkpoint`` as a sealed folder (:data:`OPENVINO_INT8`, its
    weights, :data:`SOURCE`) for ``--backend openvino-int8``; ``model`` must be the checkpoint's. Returns its path."""
    folder, model = Path(checkpoint), on_cpu(model)  # OpenVINO serves on the CPU
    weights = read_checkpoint_config(folder)["files"][WEIGHTS_FILE]

    def calibrate(tmp: Path) -> None:
        raw = export_onnx(model, tmp / "export" / "model.onnx", fuse=False)
        openvino_int8(raw, calibration_batches(model, texts, batch_size), tmp / Path(OPENVINO_INT8).name)
        shutil.rmtree(raw.parent)
        (tmp / Path(SOURCE).name).write_text(json.dumps({WEIGHTS_FILE: weights, "calibration sentences":
                                                         len(texts)}, indent=2))
    entry = (folder / OPENVINO_INT8).parent
    folders.recover(entry)
    folders.publish(entry, calibrate)
    return folder / OPENVINO_INT8


def saved_openvino_int8(checkpoint: str | Path) -> Path:
    """The static int8 model stored in ``checkpoint`` (:func:`save_openvino_int8`), verified against its manifest and
    the present weights; ``FileNotFoundError`` or ``ValueError`` (damaged, copied in, stale) say to re-create it."""
    folder = Path(checkpoint)
    how = (f"calibrate it with mtl_utils.serving.static_int8.save_openvino_int8(model, "
           f"'{folder}', training_sentences) (notebook 06, section 3, does so for its checkpoint)")
    target, source = folder / OPENVINO_INT8, folder / SOURCE
    entry = target.parent
    folders.recover(entry)
    if not entry.is_dir():
        raise FileNotFoundError(f"{folder} has no static int8 model ({OPENVINO_INT8}): {how}")
    try:
        folders.verify(entry, (target.name, target.with_suffix(".bin").name, source.name))
        calibrated_from = json.loads(source.read_text(encoding="utf-8"))[WEIGHTS_FILE]
    except (folders.DamagedEntry, ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{entry}: {err} (damaged, half-written, or copied from another checkpoint): "
                         f"re-create it; {how}") from None
    if calibrated_from != read_checkpoint_config(folder)["files"][WEIGHTS_FILE]:
        raise ValueError(f"{target} was calibrated from other weights than {folder / WEIGHTS_FILE} "
                         f"(the checkpoint was saved again since, see {CONFIG_FILE}, or it was copied from another "
                         f"checkpoint): re-create it; {how}")
    return target
