"""The static site (make book): every chapter and every figure of the committed notebooks, working links."""
import re

import pytest

from tools import book


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return book.build(tmp_path_factory.mktemp("book"))


def test_every_notebook_is_a_page_with_its_figures(site):
    index = (site / "index.html").read_text()
    for notebook in book.notebooks():
        page = site / f"{notebook.stem}.html"
        assert page.is_file(), page
        assert f'href="{notebook.stem}.html"' in index, f"the front page does not link {notebook.stem}"
        html = page.read_text()
        images = len(re.findall(r"<img[^>]+src=\"(?:data:image/png|_images/)", html))
        assert images >= book.figures(notebook), (notebook.name, images, book.figures(notebook))
        assert "alt=" in html or book.figures(notebook) == 0


def test_front_page_is_the_preface_then_the_original_write_up_and_the_readme(site):
    index = (site / "index.html").read_text()
    assert "Preface" in index and "The chapters" in index
    assert 'href="original_writeup.html"' in index and 'href="readme.html"' in index
    original = (site / "original_writeup.html").read_text()
    assert "The original write-up" in original and 'href="01_sentence_embeddings.html' in original
    readme = (site / "readme.html").read_text()
    assert "Set-up, results and layout" in readme and "Two commands" in readme
    for html in (index, readme):
        assert "notebooks/0" not in re.sub(r"<pre.*?</pre>", "", html, flags=re.S)  # links point at chapters


def test_no_page_points_outside_the_repository():
    """The write-up the series grew from is not in the repository: pages describe it, never link to it."""
    pages = [book.paths.REPO_ROOT / "README.md", book.paths.NOTEBOOKS_DIR / book.PREFACE,
             book.paths.NOTEBOOKS_DIR / book.ORIGINAL, *book.notebooks()]
    for page in pages:
        assert "shared/" not in page.read_text(), f"{page.name} refers to a file outside the repository"


def test_pages_declare_their_scripts_once_and_a_theme_mode(site):
    """What the browser check (tools/check_book.py) caught as console errors: a redeclared constant and an
    empty theme mode."""
    for page in site.glob("*.html"):
        html = page.read_text()
        assert html.count("const THEBE_JS_URL") <= 1, page.name
        assert 'data-theme="light"' in html, page.name


def test_the_book_reads_in_a_browser(site, tmp_path):
    """tools/check_book.py at 1280×900 and at a phone's 390×844: no console error, every image loads, no table
    cut off by the column, no phone page wider than the phone, the search finds pages. Needs Chromium and
    playwright (skipped without them)."""
    import shutil

    pytest.importorskip("playwright")
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    from tools import check_book

    problems = check_book.check(site, tmp_path, browser)
    assert problems == []  # no broken image, console error, dead search, nor a table cut off at 1280 px
    assert (tmp_path / "04_freezing_tradeoffs.png").is_file() and (tmp_path / "search.png").is_file()
    assert (tmp_path / "phone-04_freezing_tradeoffs.png").is_file()
