"""The series as a static site: the committed, executed notebooks as a Jupyter Book (``make book``).

    python -m tools.book [--output build/book]

Nothing is executed: the pages show the outputs of the committed full runs. The preface
(``notebooks/preface.md``: what the series teaches, for whom, how to read it, the chapter map) is the front
page; then the original write-up the series tests (``notebooks/original_writeup.md``), each notebook as a
chapter, and the README (set-up, results, layout) as the last page. The site lands in
``build/book/_build/html``; serve it (``python -m http.server -d build/book/_build/html``) for its search to
work, or open its ``index.html`` in a browser.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mtl_utils.core import paths

CONFIG = """\
title: Sentence transformers and multi-task learning
author: the mtl-notebooks authors
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_repository_button: false
  home_page_in_navbar: true
sphinx:
  config:
    html_show_copyright: false
    nb_merge_streams: true
    html_context:
      default_mode: light
"""
#: Jupyter Book adds every ``.css``/``.js`` file of the source's ``_static/`` to each page.
CSS = """\
/* Result tables: small enough that the series' tables fit the text column at 1280 px (tools/check_book.py
   checks it), header cells wrap instead of widening the table. */
.cell_output table { font-size: 0.78rem; }
.cell_output table th, .cell_output table td { padding: 0.2em 0.45em; }
.cell_output table th { white-space: normal; max-width: 12em; }
.cell_output table td { white-space: normal; max-width: 22em; overflow-wrap: break-word; }
.cell_output table { table-layout: auto; }
article table { font-size: 0.85rem; }
/* On a phone: a long module path in inline code wraps instead of widening the page (tools/check_book.py). */
article code.literal, article code.literal span.pre { white-space: normal; overflow-wrap: anywhere; }
/* Figures: a click opens the image at full size. */
.cell_output img { cursor: zoom-in; }
.mtl-zoom { position: fixed; inset: 0; z-index: 2000; display: flex; align-items: center;
            justify-content: center; background: rgba(0, 0, 0, 0.8); cursor: zoom-out; }
.mtl-zoom img { max-width: 98vw; max-height: 98vh; background: white; }
"""
JS = """\
// A click on a figure opens it at full size over the page; a click or Escape closes it.
document.addEventListener("DOMContentLoaded", () => {
  const close = () => document.querySelectorAll(".mtl-zoom").forEach((e) => e.remove());
  document.querySelectorAll(".cell_output img").forEach((img) => {
    img.title = img.title || "click to enlarge";
    img.addEventListener("click", () => {
      const overlay = document.createElement("div");
      overlay.className = "mtl-zoom";
      const big = document.createElement("img");
      big.src = img.src;
      big.alt = img.alt;
      overlay.appendChild(big);
      overlay.addEventListener("click", close);
      document.body.appendChild(overlay);
    });
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
});
"""
THEBE_SCRIPT = re.compile(r"<script>const THEBE_JS_URL = [^\n]*?</script>\n?")


def notebooks() -> list[Path]:
    return sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


#: The book's pages besides the notebooks, from ``notebooks/``: the front page and the page after it.
PREFACE, ORIGINAL = "preface.md", "original_writeup.md"


def readme_page(readme: str) -> str:
    """The README as the book's last page: its own title, links to notebooks point at their chapters."""
    readme = re.sub(r"\A# [^\n]*", "# Set-up, results and layout", readme)
    readme = re.sub(r"\]\(notebooks/results/figures/", "](figures/", readme)  # copied beside it by prepare()
    return re.sub(r"\]\(notebooks/(\d\d_[\w]+)\.ipynb\)", r"](\1.ipynb)", readme)


def prepare(source: Path) -> Path:
    """Write the book's sources (config, table of contents, front page, notebooks) into ``source``."""
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    (source / "_config.yml").write_text(CONFIG)
    (source / "_static").mkdir()
    (source / "_static" / "book.css").write_text(CSS)
    (source / "_static" / "book.js").write_text(JS)
    pages = [Path(ORIGINAL).stem, *(nb.stem for nb in notebooks()), "readme"]
    chapters = "\n".join(f"  - file: {page}" for page in pages)
    (source / "_toc.yml").write_text(f"format: jb-book\nroot: index\nchapters:\n{chapters}\n")
    (source / "index.md").write_text((paths.NOTEBOOKS_DIR / PREFACE).read_text())
    shutil.copy(paths.NOTEBOOKS_DIR / ORIGINAL, source / ORIGINAL)
    (source / "readme.md").write_text(readme_page((paths.REPO_ROOT / "README.md").read_text()))
    shutil.copytree(paths.RESULTS_DIR / "figures", source / "figures")  # the README's forest plots
    for nb in notebooks():
        shutil.copy(nb, source / nb.name)
    return source


def build(output: Path | None = None, quiet: bool = True) -> Path:
    """Build the site; return the folder of its HTML (``index.html`` inside)."""
    output = Path(output or paths.REPO_ROOT / "build" / "book")
    source = prepare(output / "src")
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source), "--path-output",
               str(output), "--all"]
    if quiet:
        command.append("--quiet")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"jupyter-book failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    html = output / "_build" / "html"
    for page in html.glob("*.html"):
        page.write_text(single_thebe_config(page.read_text()))
    return html


def single_thebe_config(page: str) -> str:
    """Keep the first of the duplicated ``const THEBE_JS_URL`` scripts that sphinx-thebe 0.3.1 writes into every
    page under Jupyter Book 1.0 (the second one is a console error in every browser: a redeclared constant)."""
    seen = False

    def keep_first(match: re.Match) -> str:
        nonlocal seen
        keep, seen = not seen, True
        return match.group(0) if keep else ""
    return THEBE_SCRIPT.sub(keep_first, page)


def figures(notebook: Path) -> int:
    """Number of figures a committed notebook shows (image outputs)."""
    cells = json.loads(notebook.read_text())["cells"]
    return sum(1 for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="default: build/book")
    args = parser.parse_args(argv)
    html = build(args.output, quiet=False)
    print(f"the book is in {paths.relative(html)}: open {paths.relative(html / 'index.html')} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
