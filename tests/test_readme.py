"""The README: its numbers are generated from the committed results, and its layout matches the tree."""
import re
from pathlib import Path

import mtl_utils
import series
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
    machinery = tree.split("\nseries/", 1)[1].split("\ntools/", 1)[0]
    listed = {m.group(1) for m in re.finditer(r"^  (\w+)(?:\.py|/)\s", machinery, flags=re.M)}
    found = {p.stem for p in Path(series.__file__).parent.glob("*.py") if p.stem != "__init__"}
    found |= {p.name for p in Path(series.__file__).parent.glob("*/") if (p / "__init__.py").is_file()}
    assert listed == found, (sorted(found - listed), sorted(listed - found))
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


def test_a_refresh_from_the_cache_keeps_the_time_of_the_run_that_trained():
    from tools.run_notebooks import keep_cold_run

    trained = {"metrics": {"runtime_minutes": 15.38}, "written": "2026-12-02T16:43:27+0000"}
    warm = {"metrics": {"runtime_minutes": 1.5}, "written": "2026-12-03T10:00:00+0000"}
    first = keep_cold_run(trained, warm)
    assert first["cold run"] == {"minutes": 15.38, "measured": "2026-12-02"}
    assert first["metrics"]["runtime_minutes"] == 1.5  # this run's own time stays what it was
    again = keep_cold_run(first, {**warm, "written": "2026-12-04T09:00:00+0000"})
    assert again["cold run"] == first["cold run"]  # a second warm refresh keeps the run that trained
    assert keep_cold_run({}, warm) == warm
    never = {"metrics": {"runtime_minutes": 0.12}, "written": "2026-12-06T10:00:00+0000"}
    assert keep_cold_run(never, {**never, "metrics": {"runtime_minutes": 0.11}}) == {
        **never, "metrics": {"runtime_minutes": 0.11}}  # trains nothing: no cold run to keep


def test_a_refresh_that_trains_only_pair_runs_counts_as_trained(tmp_path, monkeypatch):
    """Notebook 02 trains pair runs only (``pairs/``): its cold render must not be mistaken for a warm one."""
    from tools.run_notebooks import run_entries

    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path))
    assert run_entries() == set()
    (tmp_path / "runs" / "a").mkdir(parents=True)
    before = run_entries()
    (tmp_path / "pairs" / "b").mkdir(parents=True)
    assert run_entries() != before and run_entries() == {"runs/a", "pairs/b"}


def test_the_index_shows_a_cold_run_marked_with_the_warm_time_below(tmp_path, monkeypatch):
    import json

    record = {"metrics": {"runtime_minutes": 1.5}, "written": "2026-12-03T10:00:00+0000",
              "cold run": {"minutes": 15.4, "measured": "2026-12-02"}}
    (tmp_path / "04.json").write_text(json.dumps(record))
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    table = readme.runtimes()
    assert "| 15.4 min † | 2026-12-02 |" in table
    assert "04 (1.5 min on 2026-12-03)" in table and "**15.4 min**" in table


def test_each_chapter_has_a_fresh_forest_plot_of_its_verdicts(tmp_path, monkeypatch):
    assert readme.stale_forests() == []
    chapters = readme.forests(readme._results())
    assert set(chapters) >= {"01", "02", "03"}
    text = readme.README.read_text()
    for number, (path, _, drawn) in chapters.items():
        assert f"notebooks/results/figures/{path.name}" in text and drawn
    # a figure drawn from other rows is stale
    monkeypatch.setattr(readme, "FIGURES", tmp_path)
    assert len(readme.stale_forests()) == len(chapters)
    readme.write_forests()
    assert readme.stale_forests() == []
    chapters = readme.family_by_chapter
    monkeypatch.setattr(readme, "family_by_chapter", lambda r: {
        n: [{**row, "high": row["high"] + 1} for row in rows] if n == "01" else rows
        for n, rows in chapters(r).items()})
    assert readme.stale_forests() == [paths.relative(tmp_path / "verdicts-01.png")]
