"""Static int8: activation ranges calibrated once on training sentences, then fixed in the graph.

Dynamic int8 (:func:`~mtl_utils.serving.variants.quantize_onnx`) measures every activation's range on
the fly; static int8 measures them once, on calibration batches, so the graph runs int8 from one matrix
product to the next without that work. Two engines:

* OpenVINO Runtime: :func:`openvino_int8` calibrates the exported graph with NNCF
  (``nncf.quantize``, its transformer preset: SmoothQuant, then bias correction) and
  :func:`openvino_variant` runs any OpenVINO model (fp32, bf16 where the CPU has AMX, int8);
* ONNX Runtime: :func:`onnx_static_int8`, the weight matrices' products in QDQ form, activation
  ranges by min/max over the calibration batches (attention's score products stay fp32).

:func:`save_openvino_int8` stores the calibrated model beside a checkpoint for the command line's
``--backend openvino-int8``, with a manifest (the SHA-256 of its two files and of the checkpoint weights it was
calibrated from); it calibrates into a temporary folder swapped in whole, so a killed calibration keeps what
was there. :func:`saved_openvino_int8` serves it only while the manifest matches: a damaged, half-written or
copied-in model, or one calibrated from other weights, is refused with an error saying to re-create it.
Taught in notebook 06, section 3.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..core.batching import length_sorted_batches
from ..core.digests import first_mismatch, manifest_of, publish_folder, write_text_atomic
from ..modeling.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint_config
from ..modeling.model import MultiTaskModel
from .variants import Variant, batched, export_onnx, on_cpu

#: Where :func:`save_openvino_int8` puts the calibrated model inside a checkpoint folder.
OPENVINO_INT8 = "openvino-int8/model.xml"
#: Beside it, written last: the SHA-256 of ``model.xml``, ``model.bin`` and of the checkpoint weights they were
#: calibrated from (a re-saved checkpoint makes it stale).
MANIFEST = "openvino-int8/manifest.json"
_STALE_SECONDS = 3600  # a temporary folder this old is a killed calibration's, not a running one's


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
    """NNCF's four progress bars (rich) switched off: each phase takes seconds, and in Jupyter rich
    draws them as widgets, which a saved notebook keeps as empty ``Output()`` lines."""
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
    """The exported (unfused) ONNX graph read by OpenVINO and quantised to static int8 by NNCF on
    ``batches`` (:func:`calibration_batches`); saved as OpenVINO IR at ``target`` if given."""
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
    """Run ``graph`` (an OpenVINO model, or a path to ONNX / IR) with OpenVINO Runtime on the CPU.

    ``precision`` is OpenVINO's inference precision hint for what is not int8: ``"f32"``, or
    ``"bf16"`` (the default OpenVINO picks by itself on a CPU with AMX; asked for explicitly here so
    that "fp32" means fp32 on every CPU)."""
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
        result = request.infer({"input_ids": ids.cpu().numpy(),
                                "attention_mask": mask.cpu().numpy()})
        return [result[o] for o in outputs]

    return Variant(name, lambda tok, bs: batched(model, forward, tok, bs),
                   f"OpenVINO Runtime, {precision} hint")


class _Reader:
    """ONNX Runtime's calibration data reader over :func:`calibration_batches`."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches: Iterator = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - called by some calibrators only
        pass


def onnx_static_int8(onnx_path: Path, batches: list[dict[str, np.ndarray]]) -> Path:
    """ONNX Runtime's static int8 (QDQ, uint8 activations, per-channel int8 weights) of the exported
    unfused graph, for the products with a weight matrix; ranges by min/max over ``batches``.

    Not the fused graph: ONNX Runtime's quantiser cannot infer the types around the fused attention
    and would skip most products. Not attention's score products either: their fixed ranges cost
    accuracy (measured while building this: about −1 point on sentiment)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(onnx_path))
    weights = {i.name for i in graph.graph.initializer}
    products = [n.name for n in graph.graph.node
                if n.op_type == "MatMul" and any(x in weights for x in n.input)]
    target = onnx_path.with_suffix(".static-int8.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process (its shape pass fails here)
    try:
        quantize_static(str(onnx_path), str(target), _Reader(batches),
                        quant_format=QuantFormat.QDQ, nodes_to_quantize=products,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
    return target


def unfused(onnx_path: Path) -> Path:
    """The graph :func:`~mtl_utils.serving.variants.export_onnx` wrote before fusing it."""
    return onnx_path.with_name(onnx_path.name.replace(".opt.onnx", ".onnx"))


def _put_back(folder: Path, store: Path) -> None:
    """A calibration killed between the two renames of its swap left the stored model aside: put the newest
    such copy back; where the model is in place, remove copies left aside (a folder that cannot be written is
    left as it is)."""
    aside = sorted(folder.glob(f".{store.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    try:
        if aside and not store.exists():
            os.replace(aside.pop(0), store)
        for old in aside:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


def save_openvino_int8(model: MultiTaskModel, checkpoint: str | Path, texts: Sequence[str],
                       batch_size: int = 8) -> Path:
    """Calibrate static int8 on ``texts`` and store it in ``checkpoint`` (:data:`OPENVINO_INT8`, with
    :data:`MANIFEST`), where ``predict --backend openvino-int8`` finds it. ``model`` must be the checkpoint's
    model. Calibrates into a hidden temporary folder, swapped in when complete. Returns the model's path."""
    folder, model = Path(checkpoint), on_cpu(model)  # OpenVINO serves on the CPU
    weights = read_checkpoint_config(folder)["files"][WEIGHTS_FILE]
    store = (folder / OPENVINO_INT8).parent
    _put_back(folder, store)
    for stale in folder.glob(f".{store.name}.tmp-*"):
        if time.time() - stale.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = folder / f".{store.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        raw = export_onnx(model, tmp / "export" / "model.onnx", fuse=False)
        xml = tmp / Path(OPENVINO_INT8).name
        openvino_int8(raw, calibration_batches(model, texts, batch_size), xml)
        shutil.rmtree(raw.parent)
        files = manifest_of(tmp, [xml, xml.with_suffix(".bin")])
        write_text_atomic(tmp / Path(MANIFEST).name, json.dumps(
            {"files": files, WEIGHTS_FILE: weights, "calibration sentences": len(texts)}, indent=2))
        publish_folder(tmp, store, folder / f".{store.name}.old-{uuid.uuid4().hex[:8]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / OPENVINO_INT8


def saved_openvino_int8(checkpoint: str | Path) -> Path:
    """The static int8 model :func:`save_openvino_int8` stored in ``checkpoint``, checked against its
    manifest and to come from the checkpoint's present weights; ``FileNotFoundError`` (none stored) and
    ``ValueError`` (damaged, incomplete, copied in, or stale) say to re-create it."""
    folder = Path(checkpoint)
    how = (f"calibrate it with mtl_utils.serving.static_int8.save_openvino_int8(model, "
           f"'{folder}', training_sentences) (notebook 06, section 3, does so for its checkpoint)")
    target, manifest = folder / OPENVINO_INT8, folder / MANIFEST
    store = target.parent
    _put_back(folder, store)
    if not store.is_dir():
        raise FileNotFoundError(f"{folder} has no static int8 model ({OPENVINO_INT8}): {how}")
    if not manifest.is_file():
        raise ValueError(f"{store} has no {manifest.name} (a calibration was interrupted, or an older version "
                         f"stored it): re-create it; {how}")
    try:
        stored = json.loads(manifest.read_text(encoding="utf-8"))
        files, source = stored["files"], stored[WEIGHTS_FILE]
        if not isinstance(files, dict) or set(files) != {target.name, target.with_suffix(".bin").name} \
                or not all(isinstance(v, str) for v in files.values()) or not isinstance(source, str):
            raise ValueError("unexpected entries")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{manifest} is damaged ({type(err).__name__}: {err}): re-create it; {how}") from None
    weights = read_checkpoint_config(folder)["files"][WEIGHTS_FILE]
    if source != weights:
        raise ValueError(f"{target} was calibrated from other weights than {folder / WEIGHTS_FILE} "
                         f"(the checkpoint was saved again since, see {CONFIG_FILE}, or it was copied from another "
                         f"checkpoint): re-create it; {how}")
    mismatch = first_mismatch(store, files)
    if mismatch:
        problem = "is missing" if mismatch[1] == "missing" else f"does not match its checksum in {manifest.name}"
        raise ValueError(f"{store / mismatch[0]} {problem} (damaged, half-written, or copied from another "
                         f"checkpoint): re-create it; {how}")
    return target
