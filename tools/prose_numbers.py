"""Numbers in the notebooks' typed prose that no run produced: the check that keeps reading cells from
drifting away from the records.

A reading cell typed by hand can quote a result (``0.587 on topic``) that a later run changed. Every number
with a decimal point, and every number with a unit (%, ×, min, s, ms, hours, MB, GB, M, points), in a
notebook's markdown cells must be *sourced*:

* printed by that notebook's own run (its code cells' outputs) or held in its record
  (``notebooks/results/NN.json``), or in the record of a notebook the cell names ("notebook 01"), at the
  precision the prose writes it (``0.587`` is sourced by 0.5874, not by 0.585; ``58.7 %`` by 0.587;
  ``22.6 M`` by 22,565,376); or
* listed in ``notebooks/cited_numbers.yaml`` for that notebook, with where it comes from: a published result
  the chapter cites, a property of a model, or arithmetic the cell shows.

Bare integers (layers, seeds, years, counts) are not checked, nor numbers in code spans, math, links or
HTML. Numbers written as words ("a fifth", "eight times") escape it: write results as numbers. A Holm
p-value is never typed: it belongs to the README's family, which every refresh recomputes.

    python -m tools.prose_numbers        # every committed notebook; exit 1 if a number is unsourced
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RESULTS = NOTEBOOKS / "results"
CITED = NOTEBOOKS / "cited_numbers.yaml"

_UNIT = r"%|×|min\b|minutes?\b|s\b|seconds?\b|ms\b|hours?\b|MB\b|GB\b|M\b|points?\b"
# A number, then perhaps a unit; "30,522 × 384" is a product, not a ratio (× followed by a number).
NUMBER = re.compile(rf"(?<![\w.−-])([−+-]?\d[\d,]*(?:\.\d+)?)(?:\s?({_UNIT})(?!\s?\d))?")
_VALUE = re.compile(r"([−+-]?\d[\d,]*(?:\.\d+)?(?:e[−+-]?\d+)?)(\s?%)?")
_NAMED = re.compile(r"[Nn]otebook\s+(\d\d)|\((\d\d)_[a-z_]+\.ipynb\)")
_SCALE = {"%": 100.0, "points": 100.0, "point": 100.0, "M": 1e-6}
HOLM = re.compile(r"Holm\s+p\s*=\s*[\d.]+")


def prose(markdown: str, keep_inline: bool = False) -> str:
    """``markdown`` without what is not prose: fenced code, link targets, URLs, HTML tags and table rules,
    and (unless ``keep_inline``: words a reader still reads, as the reading limits count them) inline code and
    math."""
    patterns = [r"```.*?```", r"\]\([^)]*\)", r"https?://\S+", r"</?[A-Za-z][^>]*>", r"(?m)^\s*\|?[-:| ]+\|?\s*$"]
    if not keep_inline:
        patterns += [r"`[^`]*`", r"\$\$.*?\$\$", r"\$[^$\n]*\$"]
    for pattern in patterns:
        markdown = re.sub(pattern, " ", markdown, flags=re.S)
    return markdown


def numbers_in(obj, out: set[float]) -> set[float]:
    """Every finite number in a JSON value or a text (keys and strings included), added to ``out``."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            numbers_in(key, out)
            numbers_in(value, out)
    elif isinstance(obj, list):
        for value in obj:
            numbers_in(value, out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        if math.isfinite(obj):
            out.add(float(obj))
    elif isinstance(obj, str):
        for match in _VALUE.finditer(obj):
            try:
                value = float(match.group(1).replace(",", "").replace("−", "-"))
            except ValueError:
                continue
            if math.isfinite(value):
                out.add(value / 100 if match.group(2) else value)  # "7.86%" is 0.0786
    return out


def outputs_of(notebook: dict) -> set[float]:
    """The numbers a notebook's run printed: every text output of its code cells."""
    found: set[float] = set()
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            numbers_in("".join(output.get("text", "")), found)
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/"):
                    numbers_in("".join(value), found)
    return found


def record_numbers(number: str) -> set[float]:
    """The numbers in notebook ``number``'s record (empty if it has none)."""
    path = RESULTS / f"{number}.json"
    return numbers_in(json.loads(path.read_text()), set()) if path.exists() else set()


def sourced(token: str, unit: str | None, values: Iterable[float]) -> bool:
    """Whether ``token`` (as written, with its ``unit``) is some value of ``values`` rounded to the digits
    the prose shows. A whole number with a unit ("22 minutes", "8×") is a measurement rounded: only a
    value with a fraction sources it (whole numbers in outputs are counts)."""
    text = token.replace(",", "").replace("−", "-")
    digits = len(text.split(".")[1]) if "." in text else 0
    written = abs(float(text))
    scale = _SCALE.get(unit or "", 1.0)
    tolerance = 0.5 * 10 ** -digits + 1e-9
    if digits == 0:  # "22 minutes", "8×": measured, so not a count; counts are what integers in outputs are
        values = [v for v in values if abs(v) < 1e12 and v * scale != round(v * scale)]
    return any(abs(abs(v) * scale - written) <= tolerance for v in values)


def unsourced(path: Path, cited: dict[str, dict[str, str]] | None = None) -> list[tuple[int, str, str]]:
    """``(cell index, number as written, context)`` of every unsourced number in ``path``'s markdown."""
    notebook = json.loads(path.read_text())
    cited = (load_cited() if cited is None else cited).get(path.stem, {})
    own = outputs_of(notebook) | record_numbers(path.stem[:2])
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = prose("".join(cell["source"]))
        found += [(index, match.group(), "a Holm p-value typed by hand: the README's family recomputes it")
                  for match in HOLM.finditer(" ".join(text.split()))]
        values = set(own)
        for match in _NAMED.finditer(text):
            values |= record_numbers(match.group(1) or match.group(2))
        for match in NUMBER.finditer(text):
            token, unit = match.group(1), match.group(2)
            if "." not in token and unit is None:
                continue
            written = token + (f" {unit}" if unit else "")
            if token.lstrip("−+-") in cited or written.lstrip("−+-") in cited or sourced(token, unit, values):
                continue
            context = " ".join(text[max(0, match.start() - 60):match.end() + 30].split())
            found.append((index, written, context))
    return found


def load_cited() -> dict[str, dict[str, str]]:
    """``notebooks/cited_numbers.yaml``: per notebook, the numbers its prose cites and where each is from."""
    cited = yaml.safe_load(CITED.read_text()) or {}
    for stem, numbers in cited.items():
        if not (NOTEBOOKS / f"{stem}.ipynb").exists():
            raise ValueError(f"{CITED.name}: no notebook {stem}.ipynb")
        for number, source in (numbers or {}).items():
            if not isinstance(source, str) or not source.strip():
                raise ValueError(f"{CITED.name}: {stem} cites {number!r} without saying where it is from")
    return {stem: {str(n): s for n, s in (numbers or {}).items()} for stem, numbers in cited.items()}


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv else sys.argv[1:])] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    cited, missing = load_cited(), 0
    for path in paths:
        for index, written, context in unsourced(path, cited):
            print(f"{path.name} cell {index}: {written!r} is in no output or record: …{context}…")
            missing += 1
    print(f"{missing} unsourced number(s) in {len(paths)} notebook(s)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
