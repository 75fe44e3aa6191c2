"""Answer every task of a saved multi-task model from the command line.

    python -m mtl_utils.serving.predict CHECKPOINT "A first sentence." "A second one."
    python -m mtl_utils.serving.predict CHECKPOINT --file sentences.txt --format json
    cat sentences.txt | python -m mtl_utils.serving.predict CHECKPOINT --tasks sentiment

Sentences come from the arguments, else from ``--file`` (one per line), else from standard input (one per
line; blank lines are skipped). Each task's predicted label and each label's probability are printed as CSV
(default) or JSON. A missing or corrupted checkpoint, no input, or a task the model does not have ends with a
one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..core import paths
from ..modeling.encoder import check_encodable
from ..modeling.model import CheckpointError, MultiTaskModel

#: Where the README's example checkpoint comes from, named in the error when a checkpoint is missing.
EXAMPLE = "outputs/06_serving/multitask_checkpoint"


def _where_models_live() -> str:
    return (f"notebook 06 (`make run`) writes {EXAMPLE}; every trained run keeps its model in "
            f"{paths.relative(paths.cache_dir() / 'runs')}/<run key>/model")


def read_sentences(args: argparse.Namespace, stdin) -> list[str]:
    """The sentences to answer: arguments, else the file, else standard input (blank lines skipped). Text that
    is not valid UTF-8 raises ``ValueError`` naming the argument or line."""
    if args.sentences:
        for i, sentence in enumerate(args.sentences, start=1):
            check_encodable(sentence, f"sentence argument {i}")
        return list(args.sentences)
    if args.file:
        path = Path(args.file)
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


def main(argv: list[str] | None = None, stdin=None, stdout=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_utils.serving.predict", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a folder written by MultiTaskModel.save: "
                        + _where_models_live())
    parser.add_argument("sentences", nargs="*", help="sentences to answer (default: --file or standard input)")
    parser.add_argument("--file", help="a UTF-8 text file with one sentence per line")
    parser.add_argument("--tasks", nargs="+", help="tasks to answer (default: every task of the model)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_intermixed_args(argv)  # sentences may come before or after the options
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        sentences = read_sentences(args, stdin)
        model = MultiTaskModel.load(args.checkpoint)
        table = model.predict(sentences, tasks=args.tasks, batch_size=args.batch_size)
    except (CheckpointError, ValueError, KeyError) as err:
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
