"""The README: its numbers are generated from the committed results, and its layout matches the tree."""
import re
from pathlib import Path

import mtl_utils
from mtl_utils import paths
from tools import readme

README = (paths.REPO_ROOT / "README.md").read_text()


def test_generated_sections_match_the_committed_results():
    assert readme.render(README) == README, "README.md is out of date: run `python -m tools.readme`"


def test_every_results_file_the_readme_needs_is_committed():
    for number, (stem, _) in readme.NOTEBOOKS.items():
        assert (paths.NOTEBOOKS_DIR / f"{stem}.ipynb").is_file()
        assert paths.results_file(stem).is_file(), f"notebooks/results/{number}.json is missing: run make refresh"


def test_layout_lists_every_module_and_only_existing_files():
    layout = README.split("## Layout", 1)[1]
    tree = layout.split("```")[1]
    package = Path(mtl_utils.__file__).parent
    listed, folder = set(), None
    for line in tree.splitlines():  # "  core/" opens a subpackage; "    paths.py" is a module in it
        match = re.match(r"^( +)(\w+)(/|\.py)\s", line)
        if match and match.group(3) == "/" and len(match.group(1)) == 2 and folder is not None:
            folder = match.group(2)
        elif match and match.group(3) == "/" and len(match.group(1)) == 4 and folder:
            listed.add(f"{folder}/{match.group(2)}")
        elif match and match.group(3) == ".py" and len(match.group(1)) == 4 and folder:
            listed.add(f"{folder}/{match.group(2)}")
        elif line.startswith("mtl_utils/"):
            folder = ""
        elif line and not line.startswith(" "):
            folder = None
    modules = {str(p.relative_to(package).with_suffix("")) for p in package.glob("*/*.py") if p.stem != "__init__"}
    modules |= {str(p.relative_to(package)) for p in package.glob("*/*/") if (p / "__init__.py").is_file()}
    assert listed == modules, (sorted(modules - listed), sorted(listed - modules))
    for name in ("readme", "book", "run_notebooks", "check_book"):
        assert f"  {name}.py" in tree and (paths.REPO_ROOT / "tools" / f"{name}.py").is_file(), name
    for name in ("Dockerfile", ".dockerignore", "Makefile", "pyproject.toml", ".ci/run", "data/README.md",
                 "tools/check_book.py"):
        assert (paths.REPO_ROOT / name).exists(), name


def test_make_targets_the_readme_names_exist():
    makefile = (paths.REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    for target in set(re.findall(r"`make ([\w-]+)", README)):
        assert target in targets, f"README names `make {target}`, which the Makefile lacks"
