"""The book's reading limits, measured on the committed notebooks: what a learner can hold in one cell.

A *reading cell* is a markdown cell or a Markdown output a code cell writes (a finding rendered from the
run), exercises and their worked solutions aside (everything from a heading ``## Exercises`` on, and
``<details>`` solutions). The limits:

* at most :data:`MAX_WORDS` words in a reading cell;
* at most :data:`MAX_INTERVALS` intervals (``[low, high]``) quoted in a reading cell;
* at most :data:`MAX_LONG_SENTENCES` sentences of more than :data:`LONG_SENTENCE` words per notebook;
* at most :data:`MAX_NOTEBOOK_WORDS` words of reading per notebook;
* every figure discussed: the next reading cell after a figure comes before the next figure.

    python -m tools.reading_limits          # the table for every notebook
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.prose_numbers import prose

ROOT = Path(__file__).resolve().parents[1]
MAX_WORDS, MAX_INTERVALS, LONG_SENTENCE, MAX_LONG_SENTENCES, MAX_NOTEBOOK_WORDS = 150, 2, 40, 3, 3000
INTERVAL = re.compile(r"\[\s*[−+-]?\d[\d.,]*\s*,\s*[−+-]?\d[\d.,]*\s*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+(?=[A-Z*(\"'])")
_BLOCK = re.compile(r"\n\s*\n|\n(?=\s*(?:[*-]|\d+\.)\s)|\n(?=#)")  # paragraphs, list items, headings


def reading_cells(notebook: dict) -> list[tuple[int, str, bool]]:
    """``(cell index, text, figure?)`` in reading order: each reading cell, and a marker for each figure
    (``figure?`` true, empty text), exercises and solutions left out."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if source.lstrip().startswith("<details>"):
                continue
            if re.search(r"^#+\s+Exercises", source, flags=re.M):
                before = re.split(r"^#+\s+Exercises", source, flags=re.M)[0]
                if before.strip():
                    found.append((index, before, False))
                break
            found.append((index, source, False))
        elif "hide-input" not in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "image/png" in data:
                    found.append((index, "", True))
                elif "text/markdown" in data:
                    found.append((index, "".join(data["text/markdown"]), False))
    return found


@dataclass
class Reading:
    """One notebook's measures against the limits."""

    notebook: str
    words: int
    figures: int
    longest_cell: int
    cells_over_limit: int
    most_intervals: int
    mean_sentence: float
    long_sentences: int
    undiscussed_figures: int

    def problems(self) -> list[str]:
        """What breaks a limit, in words."""
        out = []
        if self.cells_over_limit:
            out.append(f"{self.cells_over_limit} reading cell(s) over {MAX_WORDS} words (longest {self.longest_cell})")
        if self.most_intervals > MAX_INTERVALS:
            out.append(f"a reading cell quotes {self.most_intervals} intervals (at most {MAX_INTERVALS})")
        if self.long_sentences > MAX_LONG_SENTENCES:
            out.append(f"{self.long_sentences} sentences over {LONG_SENTENCE} words (at most {MAX_LONG_SENTENCES})")
        if self.words > MAX_NOTEBOOK_WORDS:
            out.append(f"{self.words} words of reading (at most {MAX_NOTEBOOK_WORDS})")
        if self.undiscussed_figures:
            out.append(f"{self.undiscussed_figures} figure(s) with no reading cell after them")
        return out


def measure(path: Path) -> Reading:
    """:class:`Reading` of the notebook at ``path``."""
    cells = reading_cells(json.loads(path.read_text()))
    texts = [prose(text, keep_inline=True) for _, text, figure in cells if not figure]
    words = [len(t.split()) for t in texts]
    sentences = [len(s.split()) for t in texts for block in _BLOCK.split(t)
                 for s in _SENTENCE_END.split(" ".join(block.split())) if s.strip()]
    undiscussed = 0
    for i, (_, _, figure) in enumerate(cells):
        if figure and not any(not f for _, _, f in cells[i + 1:i + 2]):
            undiscussed += 1
    return Reading(notebook=path.stem, words=sum(words), figures=sum(f for _, _, f in cells),
                   longest_cell=max(words, default=0), cells_over_limit=sum(w > MAX_WORDS for w in words),
                   most_intervals=max((len(INTERVAL.findall(t)) for t in texts), default=0),
                   mean_sentence=round(sum(sentences) / max(len(sentences), 1), 1),
                   long_sentences=sum(s > LONG_SENTENCE for s in sentences), undiscussed_figures=undiscussed)


def table(paths: list[Path]) -> str:
    """The measures of ``paths`` as a Markdown table."""
    rows = [asdict(measure(p)) for p in paths]
    head = list(rows[0])
    lines = ["| " + " | ".join(h.replace("_", " ") for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv else sys.argv[1:])] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    print(table(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
