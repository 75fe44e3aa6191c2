"""The variants' speed on this CPU with its instruction sets capped: what an older CPU would give.

oneDNN (behind PyTorch's bf16 products and OpenVINO's CPU kernels) and MKL (PyTorch's fp32 products)
pick their kernels by the CPU's instruction sets, and both accept a ceiling from the environment
(``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``). Each capped setting runs in a fresh process
(the libraries read the variables once). ONNX Runtime's kernels ignore them, so its variants are not
in these tables. Same cores, clocks and caches: only the instructions differ.

    python -m series.older_cpus CHECKPOINT INT8_XML TEXTS_JSON WORKDIR [--repeats 2]

prints one JSON object: sentences per second per variant and the profile of bf16 autocast. Taught in
notebook 06, section 3.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from mtl_utils.core import runtime
from mtl_utils.modeling.model import MultiTaskModel
from mtl_utils.serving import static_int8, variants
from series import serving_measurements

#: Name → (oneDNN ceiling, MKL ceiling); ``None``: the CPU as it is.
SETTINGS: dict[str, tuple[str, str] | None] = {
    "this CPU": None,
    "AVX-512 + VNNI, no AMX": ("AVX512_CORE_VNNI", "AVX512_E1"),
    "AVX-512, no VNNI, no AMX": ("AVX512_CORE", "AVX512"),
}


def bf16_profile(variant, tokenized, top: int = 4) -> list[dict[str, float | str]]:
    """The ops taking most of a PyTorch variant's CPU time (self time, share of the total)."""
    with serving_measurements.silent_stderr(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        variant.run(tokenized, 32)
    events = sorted(((e.key, e.self_cpu_time_total) for e in prof.key_averages()),
                    key=lambda kv: -kv[1])
    total = sum(t for _, t in events) or 1.0
    return [{"op": key, "share": t / total, "ms": t / 1000} for key, t in events[:top]]


def measure(checkpoint: Path, int8: Path, texts: Sequence[str], repeats: int, workdir: Path) -> dict:
    """Speed of PyTorch fp32 / bf16 autocast and OpenVINO fp32 / bf16 / int8 in this process (the
    fp32 graph exported into ``workdir``)."""
    model = MultiTaskModel.load(checkpoint, device="cpu")
    raw = variants.export_onnx(model, workdir / "model.onnx", fuse=False)
    bf16 = variants.torch_variant(model, autocast=torch.bfloat16)
    chosen = [variants.torch_variant(model), bf16,
              static_int8.openvino_variant(model, raw, "OpenVINO fp32"),
              static_int8.openvino_variant(model, raw, "OpenVINO bf16",
                                           precision="bf16"),
              static_int8.openvino_variant(model, int8, "OpenVINO static int8")]
    tokenized = model.encoder.token_ids(list(texts))
    speed = serving_measurements.speed_table(chosen, tokenized, repeats=repeats)
    return {"speed": speed["sentences/s (best)"].to_dict(),
            "bf16 profile": bf16_profile(bf16, tokenized)}


def capped_speeds(checkpoint: Path, int8: Path, texts: Sequence[str], repeats: int = 2,
                  settings: dict[str, tuple[str, str] | None] | None = None
                  ) -> dict[str, pd.DataFrame]:
    """Run :func:`measure` once per setting of :data:`SETTINGS`, each in a fresh process with the
    ceilings set; ``speed``: sentences/s and × PyTorch fp32 per variant and setting; ``profile``:
    bf16 autocast's top ops per setting."""
    speed, profile = [], []
    with tempfile.TemporaryDirectory() as folder:  # the sentences and exports, not the checkpoint's
        texts_file = Path(folder) / "texts.json"
        texts_file.write_text(json.dumps(list(texts)))
        for name, ceiling in (settings or SETTINGS).items():
            env = dict(os.environ)
            for var in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
                env.pop(var, None)
            if ceiling:
                env["ONEDNN_MAX_CPU_ISA"], env["MKL_ENABLE_INSTRUCTIONS"] = ceiling
            done = subprocess.run([sys.executable, "-m", __name__, str(checkpoint), str(int8),
                                   str(texts_file), folder, "--repeats", str(repeats)],
                                  capture_output=True, text=True, env=env)
            if done.returncode:
                raise RuntimeError(f"capped run '{name}' failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            base = result["speed"]["PyTorch fp32"]
            speed += [{"CPU": name, "variant": v, "sentences/s": s, "× PyTorch fp32": s / base}
                      for v, s in result["speed"].items()]
            profile += [{"CPU": name, **row} for row in result["bf16 profile"]]
    return {"speed": pd.DataFrame(speed), "profile": pd.DataFrame(profile)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("int8", type=Path, help="the OpenVINO static int8 model (.xml)")
    parser.add_argument("texts", type=Path, help="a JSON list of sentences")
    parser.add_argument("workdir", type=Path, help="a folder for the exported graph")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    runtime.set_threads()
    texts = json.loads(args.texts.read_text())
    print(json.dumps(measure(args.checkpoint, args.int8, texts, args.repeats, args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
