"""Answer every task of a saved multi-task model from the command line.

    python -m mtl_utils.serving.predict CHECKPOINT "A first sentence." "A second one."
    cat sentences.txt | python -m mtl_utils.serving.predict CHECKPOINT --tasks sentiment --format json
    python -m mtl_utils.serving.predict CHECKPOINT --backend openvino-int8 "Shares rose."

``--backend``: ``torch`` (fp32, as trained), ``onnx-int8`` (ONNX Runtime dynamic int8), ``openvino`` (fp32) or
``openvino-int8`` (static int8, :func:`~mtl_utils.serving.static_int8.save_openvino_int8`). Sentences: the arguments,
else ``--file``, else stdin, a line each; labels and probabilities print as CSV or JSON; errors: one line, status 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_utils.core import paths
from mtl_utils.modeling.encoder import check_encodable, check_sentences
from mtl_utils.modeling.model import CheckpointError, MultiTaskModel
from mtl_utils.serving import static_int8, variants

BACKENDS = ("torch", "onnx-int8", "openvino", "openvino-int8")

#: Where the README's example checkpoint comes from, named in the error when a checkpoint is missing.
EXAMPLE = "outputs/06_serving/multitask_checkpoint"


def _where_models_live() -> str:
    return (f"notebook 06 (`make run`) writes {EXAMPLE}; every trained run keeps its model in "
            f"{paths.relative(paths.cache_dir() / 'runs')}/<run key>/model")


def read_sentences(args: argparse.Namespace, stdin) -> list[str]:
    """The arguments, else the file's or stdin's non-blank lines; ``ValueError`` names text not UTF-8 encodable."""
    if args.sentences:
        for i, sentence in enumerate(args.sentences, start=1):
            check_encodable(sentence, f"sentence argument {i}")
        return list(args.sentences)
    if args.file:
        path = Path(args.file)
        if path.is_dir():
            raise ValueError(f"--file {path} is a folder, not a file: pass a text file with one sentence per line")
        if not path.is_file():
            raise ValueError(f"--file {path}: no such file")
        source, raw = f"--file {path}", path.read_bytes()
    elif stdin is not None and not stdin.isatty():
        source = "standard input"
        raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
    else:
        source, raw = "", b""
    text = raw.decode("utf-8", errors="surrogateescape") if isinstance(raw, bytes) else raw
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            check_encodable(line, f"line {number} of {source}")
            sentences.append(line.strip())
    if not sentences:
        raise ValueError("no sentences to answer: pass them as arguments, with --file, or on standard input")
    return sentences


def backend_variant(model: MultiTaskModel, checkpoint: str | Path, backend: str, folder: Path) -> variants.Variant:
    """The :class:`~mtl_utils.serving.variants.Variant` serving ``model`` with ``backend``; exports go to ``folder``."""
    if backend == "torch":
        return variants.torch_variant(model)
    if backend == "openvino-int8":
        graph = static_int8.saved_openvino_int8(checkpoint)
        return static_int8.openvino_variant(model, graph, "OpenVINO static int8")
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "openvino":
        raw = variants.export_onnx(model, folder / "model.onnx", fuse=False)
        return static_int8.openvino_variant(model, raw, "OpenVINO fp32")
    fused = variants.export_onnx(model, folder / "model.onnx")
    return variants.onnx_variant(model, variants.quantize_onnx(fused), "ONNX Runtime int8")


def answer(model: MultiTaskModel, variant: variants.Variant, sentences: Sequence[str],
           tasks: Sequence[str] | None = None, batch_size: int = 64) -> pd.DataFrame:
    """What :meth:`MultiTaskModel.predict` returns (one row per sentence), computed by ``variant``."""
    names = model.check_tasks(tasks)
    texts = check_sentences(sentences)
    tokens = model.encoder.token_ids(texts)
    if tokens.truncated:
        warnings.warn(f"{tokens.truncated} of {len(texts)} texts are longer than max_length="
                      f"{model.encoder.max_length} word pieces and were truncated", stacklevel=2)
    _, logits = variant.run(tokens, batch_size)
    table = pd.DataFrame({"sentence": texts})
    for name in names:
        shifted = np.exp(logits[name] - logits[name].max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        labels = model.task_labels[name]
        table[name] = [labels[i] for i in probs.argmax(axis=1)]
        for j, label in enumerate(labels):
            table[f"{name}: p({label})"] = probs[:, j].astype(float).round(3)
    return table


def main(argv: list[str] | None = None, stdin=None, stdout=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_utils.serving.predict", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a folder written by MultiTaskModel.save: " + _where_models_live())
    parser.add_argument("sentences", nargs="*", help="sentences to answer (default: --file or standard input)")
    parser.add_argument("--file", help="a UTF-8 text file with one sentence per line")
    parser.add_argument("--tasks", nargs="+", help="tasks to answer (default: every task of the model)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="the engine: PyTorch fp32 (default), "
                        "ONNX Runtime dynamic int8, OpenVINO fp32, or OpenVINO static int8 stored in the checkpoint")
    args = parser.parse_intermixed_args(argv)  # sentences may come before or after the options
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        sentences = read_sentences(args, stdin)
        # the exported engines run on the CPU; PyTorch on the series' device
        model = MultiTaskModel.load(args.checkpoint, device=None if args.backend == "torch" else "cpu")
        if args.backend == "torch":
            table = model.predict(sentences, tasks=args.tasks, batch_size=args.batch_size)
        else:
            model.check_tasks(args.tasks)
            with tempfile.TemporaryDirectory() as folder:
                variant = backend_variant(model, args.checkpoint, args.backend, Path(folder))
                table = answer(model, variant, sentences, args.tasks, args.batch_size)
    except (CheckpointError, ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, CheckpointError) and not Path(args.checkpoint).exists():
            message = f"{message} ({_where_models_live()})"
        print(f"error: {message}", file=sys.stderr)
        return 2
    if args.format == "json":
        json.dump(table.to_dict("records"), stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        table.to_csv(stdout, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
