"""Open every page of the built book in headless Chromium at 1280×900 and at a phone's 390×844: fail on a
console error, a page error, an image that did not load, a table whose columns the text column cuts off at
1280 px (a table wider than the scrolling box around it, or than the article) or a phone page wider than the
phone (a reader would scroll the whole page sideways; a wide table scrolls in its own box); check that the
search page finds a word of the book, and save a screenshot of each page at each width (to look at what a
reader sees).

    make book
    python tools/check_book.py [--site build/book/_build/html] [--screenshots build/book/screenshots]

Needs Chromium (Debian: ``apt-get install chromium``) and the ``playwright`` Python package
(``pip install playwright``; no browser download: it drives the installed Chromium).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SEARCH_WORD = "pooling"
# Tables cut off by the column: wider than a box around them that scrolls or hides (up to the article), or
# reaching past the article's right edge. Each as "table N (first header cells)".
CLIPPED_TABLES = """() => {
  const article = document.querySelector("article") || document.querySelector("main") || document.body;
  const right = article.getBoundingClientRect().right;
  return [...article.querySelectorAll("table")].flatMap((table, i) => {
    let cut = table.getBoundingClientRect().right > right + 1;
    for (let box = table.parentElement; box && box !== article.parentElement; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow !== "visible" && box.scrollWidth > box.clientWidth + 1) cut = true;
    }
    if (!cut) return [];
    const heads = [...table.querySelectorAll("th")].slice(0, 3).map((h) => h.textContent.trim());
    return [`table ${i + 1} (${heads.join(" | ").slice(0, 70)})`];
  });
}"""
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log on the terminal
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` on a free localhost port (pages load their assets over HTTP, as on a web host)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check(site: Path, screenshots: Path, browser_path: str) -> list[str]:
    """Problems found on the site's top-level pages (empty: all good)."""
    problems: list[str] = []
    screenshots.mkdir(parents=True, exist_ok=True)
    server, base = serve(site)
    pages = sorted(p.name for p in site.glob("*.html") if p.name not in ("genindex.html", "search.html"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_path, args=FLAGS)
            for name in pages:
                problems += check_page(browser, base, name, screenshots, VIEWPORT)
                problems += check_page(browser, base, name, screenshots, PHONE)
            problems += check_search(browser, base, screenshots)
            browser.close()
    finally:
        server.shutdown()
    return problems


def check_page(browser, base: str, name: str, screenshots: Path, viewport: dict) -> list[str]:
    """One page at one viewport: console and page errors, broken images, and (at the desktop width) tables
    the column cuts off or (at a phone's) a page wider than the screen; a screenshot saved."""
    errors: list[str] = []
    page = browser.new_page(viewport=viewport)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.location.get("url", "").endswith("/favicon.ico") else None)  # the browser's own
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/{name}", wait_until="networkidle")
    broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.alt || i.src.slice(0, 60))")
    images = page.evaluate("document.images.length")
    tables = page.evaluate("document.querySelectorAll('article table').length")
    phone = viewport is PHONE
    clipped = [] if phone else page.evaluate(CLIPPED_TABLES)
    width = page.evaluate("document.documentElement.scrollWidth") if phone else viewport["width"]
    prefix = "phone-" if phone else ""
    page.screenshot(path=str(screenshots / f"{prefix}{Path(name).stem}.png"), full_page=False)
    page.close()
    where = f"{name} at {viewport['width']} px"
    problems = [f"{where}: console error: {e}" for e in errors]
    problems += [f"{where}: image did not load: {b}" for b in broken]
    problems += [f"{where}: clipped: {t}" for t in clipped]
    problems += [f"{where}: the page is {width} px wide" for _ in range(width > viewport["width"] + 1)]
    print(f"{where}: {images} images ({len(broken)} broken), {tables} tables ({len(clipped)} clipped), "
          f"{len(errors)} console errors{f', page {width} px wide' if phone else ''}")
    return problems


def check_search(browser, base: str, screenshots: Path) -> list[str]:
    """The search page, served over HTTP, finds pages for a word every chapter uses."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/search.html?q={SEARCH_WORD}", wait_until="networkidle")
    try:
        page.wait_for_selector("#search-results li", timeout=20_000)
    except Exception:  # playwright's TimeoutError: reported below as no results
        pass
    found = page.evaluate("document.querySelectorAll('#search-results li').length")
    page.screenshot(path=str(screenshots / "search.png"), full_page=False)
    page.close()
    print(f"search.html?q={SEARCH_WORD}: {found} results, {len(errors)} page errors")
    problems = [f"search.html: page error: {e}" for e in errors]
    return problems + ([] if found else [f"search.html: no result for '{SEARCH_WORD}'"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "build" / "book" / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "build" / "book" / "screenshots")
    parser.add_argument("--browser", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not (args.site / "index.html").is_file():
        print(f"no book at {args.site}: run `make book` first", file=sys.stderr)
        return 2
    problems = check(args.site, args.screenshots, args.browser)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{'FAILED' if problems else 'OK'}: screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
