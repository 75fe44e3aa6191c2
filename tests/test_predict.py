"""The command line, end to end on a checkpoint trained here (tiny model): arguments, file, stdin, formats,
and one-line errors with exit status 2."""
import io
import json

import pytest

from mtl_utils.serving import predict
from mtl_utils.training.config import TrainConfig
from series.runs import train_or_load


@pytest.fixture(scope="module")
def checkpoint(small_tasks, tiny_model_dir, tmp_path_factory):
    config = TrainConfig(model=tiny_model_dir, examples=32, batch_size=8, max_length=32, lr=1e-3, head_lr=1e-2)
    result = train_or_load(config, small_tasks, cache=tmp_path_factory.mktemp("cache"), progress_bar=False)
    return result.model.save(tmp_path_factory.mktemp("ckpt") / "model")


class FakeStdin(io.StringIO):
    def isatty(self):
        return False


def run(argv, stdin=""):
    out = io.StringIO()
    code = predict.main([str(a) for a in argv], stdin=FakeStdin(stdin), stdout=out)
    return code, out.getvalue()


def test_sentences_from_arguments_as_csv(checkpoint):
    code, out = run([checkpoint, "Shares rose.", "A dull film."])
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3 and lines[0].startswith("sentence,topic,topic: p(business)")


def test_file_and_stdin_as_json(checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("Shares rose.\n\nA dull film.\n")
    code, out = run([checkpoint, "--file", tmp_path / "in.txt", "--format", "json", "--tasks", "sentiment"])
    rows = json.loads(out)
    assert code == 0 and [r["sentence"] for r in rows] == ["Shares rose.", "A dull film."]
    assert set(rows[0]) == {"sentence", "sentiment", "sentiment: p(negative)", "sentiment: p(positive)"}
    assert abs(rows[0]["sentiment: p(negative)"] + rows[0]["sentiment: p(positive)"] - 1) < 0.01
    code, out = run([checkpoint, "--format", "json"], stdin="From stdin.\n")
    assert code == 0 and json.loads(out)[0]["sentence"] == "From stdin."


@pytest.mark.parametrize("argv, stdin, message", [
    (["{missing}", "x"], "", "is not a folder"),
    (["{missing}", "x"], "", "notebook 06 (`make run`) writes outputs/06_serving/multitask_checkpoint"),
    (["{ckpt}"], "", "no sentences to answer"),
    (["{ckpt}"], "\n  \n", "no sentences to answer"),
    (["{ckpt}", "x", "--tasks", "ner"], "", "unknown task 'ner'"),
    (["{ckpt}", "--file", "{missing}"], "", "no such file"),
    (["{corrupt}", "x"], "", "does not match its checksum"),
])
def test_errors_are_one_line_with_exit_2(checkpoint, tmp_path, capsys, argv, stdin, message):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for f in checkpoint.rglob("*"):
        if f.is_file():
            target = corrupt / f.relative_to(checkpoint)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    names = {"ckpt": checkpoint, "missing": tmp_path / "nope", "corrupt": corrupt}
    code, out = run([a.format(**names) for a in argv], stdin)
    err = capsys.readouterr().err
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
