"""Open every page of the built book in headless Chromium, offline, and check
what a reader sees.

    python tests/browser/check_book.py [HTML_DIR] [--screens DIR] [--chromium PATH]

HTML_DIR defaults to ``_build/html`` (build it first: ``make book``). Pages are
loaded from ``file://`` URLs; every other request is blocked and counted as a
failure, so a page that needs the network (a script, a style sheet, a font,
an image from a CDN) fails here as it would for a reader without one. A page
fails on:

- raw TeX left after MathJax has run: a math element MathJax did not typeset,
  TeX delimiters or commands in the page's text, a MathJax error (an
  ``merror`` node, or an undefined control sequence MathJax draws in red);
- a broken image (``naturalWidth`` 0);
- a console error or an uncaught exception;
- an output that shows an error or a warning (myst-nb's ``output stderr`` and
  ``output traceback`` blocks, a traceback or an ``...Error:`` /
  ``...Warning:`` line in any output) or a widget, which needs a live kernel;
- an explorer (a code cell that calls ``sl.widgets.``, the definition
  tests/test_book.py uses) whose nearest code cell before it shows no image;
- a second search field, or a top bar with nothing in it.

It writes a full-page screenshot of every page to ``SCREENS/<page>.png``
(default ``_build/screens``), prints one line per page and exits 1 when any
page fails (2 when it cannot run). Chromium is the system one (Debian's
``chromium``), driven by Playwright; nothing is downloaded.

The decisions are pure functions of what the page reports (``page_problems``
and the functions it calls); tests/test_check_book.py tests them without a
browser.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {"_static", "_sources", "_images"}
EXPLORER_CALL = "sl.widgets."

# TeX that MathJax should have replaced. Text inside <pre>, <code> and
# MathJax's own output is never looked at (see COLLECT_JS).
RAW_TEX = [
    ("\\( \\)", re.compile(r"\\\(.*?\\\)", re.S)),
    ("\\[ \\]", re.compile(r"\\\[.*?\\\]", re.S)),
    ("$$ $$", re.compile(r"\$\$.+?\$\$", re.S)),
    # The dollarmath rule: no space after the opening $, none before the
    # closing one, no digit after it ("costs $5 and $10" is not maths).
    ("$ $", re.compile(r"(?<![\\$])\$(?![\s$])[^$\n]+?(?<![\s\\])\$(?![\d$])")),
    ("\\begin", re.compile(r"\\begin\{[A-Za-z*]+\}")),
    ("TeX command", re.compile(r"\\[A-Za-z]+\s*[{_^]")),
]
OUTPUT_ALARM = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Warning|Exception): ", re.M),
]
REDIRECT = re.compile(
    r"""<meta\s+http-equiv=["']refresh["']\s+content=["']\d+;\s*url=([^"']+)["']""", re.I
)

# One pass over the page once MathJax has finished; returns plain data.
COLLECT_JS = r"""
() => {
  const SKIP = 'mjx-container, script, style, pre, code, textarea, noscript, template, kbd, samp';
  const visible = (e) => {
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  const loaded = (i) => i.complete && i.naturalWidth > 0;
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.nodeValue;
    if (!t || (!t.includes('$') && !t.includes('\\'))) continue;
    // (formulas MathJax left alone are reported apart, as untypeset)
    if (n.parentElement && !n.parentElement.closest(SKIP + ', .math')) texts.push(t);
  }
  const untypeset = [...document.querySelectorAll('.math')]
    .filter((e) => !e.closest(SKIP) && !e.querySelector('mjx-container'))
    .map((e) => e.textContent.trim());
  const mj = window.MathJax;
  const mathErrors = [...document.querySelectorAll('mjx-merror')]
    .map((e) => e.getAttribute('data-mjx-error') || e.textContent);
  try {
    // MathJax's noundefined package draws an unknown \macro as red text, not
    // as an merror: find it in MathJax's internal tree of each formula.
    for (const item of (mj && mj.startup && mj.startup.document) ? mj.startup.document.math : []) {
      item.root.walkTree((node) => {
        if (node.isKind('mtext') && node.attributes.get('mathcolor') === 'red') {
          mathErrors.push('undefined control sequence in ' + item.math);
        }
      });
    }
  } catch (e) { mathErrors.push('could not read MathJax\'s formulas: ' + e); }
  const header = document.querySelector('#pst-header');
  return {
    texts,
    untypeset,
    mathErrors,
    mathjaxLoaded: !!(mj && mj.startup && mj.startup.document),
    images: [...document.images].map((i) => ({src: i.getAttribute('src') || '', ok: loaded(i)})),
    outputs: [...document.querySelectorAll('div.output')].map((o) => ({
      classes: [...o.classList], text: o.innerText.slice(0, 4000)})),
    widgetViews: document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length,
    cells: [...document.querySelectorAll('div.cell')].map((c) => {
      const input = c.querySelector('.cell_input'), output = c.querySelector('.cell_output');
      return {
        source: input ? input.innerText : '',
        images: output ? [...output.querySelectorAll('img')].map(loaded) : [],
      };
    }),
    searchFields: [...document.querySelectorAll('.search-button-field')].filter(visible).length,
    emptyHeader: !!header && visible(header) && header.innerText.trim() === '',
  };
}
"""

WAIT_FOR_MATHJAX_JS = r"""
async (ms) => {
  const mj = window.MathJax;
  const done = (mj && mj.startup && mj.startup.promise)
    ? mj.startup.promise.then(() => 'done', (e) => 'failed: ' + e)
    : Promise.resolve('absent');
  const typeset = await Promise.race([done, new Promise((r) => setTimeout(() => r('timed out'), ms))]);
  if (document.fonts) { await document.fonts.ready; }
  return typeset;
}
"""


@dataclass
class Events:
    """What the browser reported while a page loaded."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)
    failed_files: list[str] = field(default_factory=list)
    mathjax: str = "absent"  # done | absent | failed: ... | timed out


def raw_tex(text: str) -> list[str]:
    """The pieces of ``text`` that look like TeX a reader would see unrendered."""
    found = []
    for _, pattern in RAW_TEX:
        for match in pattern.finditer(text):
            piece = match.group(0)
            if not any(piece in seen for seen in found):
                found.append(piece)
    return found


def output_problems(outputs: list[dict]) -> list[str]:
    """Outputs that show an error or a warning.

    Each output is ``{"classes": [...], "text": "..."}`` as myst-nb renders it
    (``div.output`` with ``stream``, ``stderr``, ``traceback``, ``text_plain``,
    ``text_html``, ...).
    """
    problems = []
    for output in outputs:
        classes = set(output["classes"])
        text = output["text"].strip()
        first = text.splitlines()[0][:100] if text else ""
        if "traceback" in classes:
            problems.append(f"an error output: {first}")
        elif "stderr" in classes:
            problems.append(f"output on stderr: {first}")
        else:
            for pattern in OUTPUT_ALARM:
                match = pattern.search(text)
                if match:
                    line = text[match.start():].strip().splitlines()[0][:100]
                    problems.append(f"an output shows an error or warning: {line}")
                    break
    return problems


def explorer_problems(cells: list[dict]) -> list[str]:
    """Explorers without a static figure in the code cell before them.

    Each cell is ``{"source": "...", "images": [loaded, ...]}`` in page order;
    an explorer is a cell whose source calls ``sl.widgets.``.
    """
    problems = []
    for k, cell in enumerate(cells):
        if EXPLORER_CALL not in cell["source"]:
            continue
        call = cell["source"][cell["source"].index(EXPLORER_CALL):].split("(")[0]
        if k == 0:
            problems.append(f"explorer {call} is the first cell: no static figure before it")
        elif not any(cells[k - 1]["images"]):
            problems.append(f"explorer {call}: the cell before it shows no image")
    return problems


def page_problems(facts: dict, events: Events) -> list[str]:
    """Everything wrong with one page, from COLLECT_JS's facts and the events."""
    problems = [f"blocked {kind} request: {url}" for kind, url in events.blocked]
    problems += [f"missing file: {url}" for url in events.failed_files]
    problems += [f"console error: {text[:200]}" for text in events.console_errors]
    problems += [f"uncaught exception: {text[:200]}" for text in events.page_errors]
    if facts["untypeset"] and not facts["mathjaxLoaded"]:
        problems.append(f"MathJax did not load; {len(facts['untypeset'])} formulas show raw TeX")
    elif events.mathjax.startswith(("failed", "timed out")):
        problems.append(f"MathJax {events.mathjax}")
    problems += [f"formula not typeset: {tex[:120]}" for tex in facts["untypeset"]]
    problems += [f"MathJax error: {error[:160]}" for error in facts["mathErrors"]]
    for text in facts["texts"]:
        problems += [f"raw TeX in the text: {piece[:120]}" for piece in raw_tex(text)]
    problems += [f"broken image: {image['src']}" for image in facts["images"] if not image["ok"]]
    problems += output_problems(facts["outputs"])
    if facts["widgetViews"]:
        problems.append(f"{facts['widgetViews']} widget outputs, which need a live kernel")
    problems += explorer_problems(facts["cells"])
    if facts["searchFields"] > 1:
        problems.append(f"{facts['searchFields']} search fields on the page")
    if facts["emptyHeader"]:
        problems.append("an empty top bar")
    return problems


def summarise(problems: list[str]) -> list[str]:
    """One entry per kind of problem ("kind: detail"), with its count and the
    first detail on one line."""
    kinds: dict[str, list[str]] = {}
    for problem in problems:
        kind, _, detail = problem.partition(": ")
        kinds.setdefault(kind, []).append(" ".join(detail.split()))
    out = []
    for kind, details in kinds.items():
        count = f" (x{len(details)})" if len(details) > 1 else ""
        first = details[0][:160] + ("..." if len(details[0]) > 160 else "")
        out.append(f"{kind}{count}: {first}" if first else f"{kind}{count}")
    return out


def redirect_target(html: str) -> str | None:
    """Where a page that only redirects (``<meta http-equiv="refresh">``) points."""
    match = REDIRECT.search(html)
    return match.group(1) if match and "<body" not in html.lower() else None


def pages_of(html_dir: Path) -> list[Path]:
    """Every page of the book, relative to ``html_dir``, in a stable order."""
    pages = [p.relative_to(html_dir) for p in html_dir.rglob("*.html")]
    return sorted(p for p in pages if not SKIPPED_DIRS & set(p.parts[:-1]))


def find_chromium(given: str | None) -> str | None:
    """The Chromium to drive: ``--chromium``, else ``$CHROMIUM``, else the one on PATH."""
    if given or os.environ.get("CHROMIUM"):
        return shutil.which(given or os.environ["CHROMIUM"])
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def check_page(browser, html_dir: Path, page: Path, screens: Path, timeout_ms: int) -> list[str]:
    """Load one page offline, wait for MathJax, collect the facts, take the screenshot."""
    events = Events()

    def block_the_network(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            events.blocked.append((route.request.resource_type, route.request.url))
            route.abort("internetdisconnected")

    def on_console(message):
        if message.type == "error":
            events.console_errors.append(message.text)

    def on_request_failed(request):
        if request.url.startswith("file:"):  # the blocked ones are counted apart
            events.failed_files.append(request.url)

    # A context of its own, as a reader's first visit: no storage from other pages.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", block_the_network)
    tab = context.new_page()
    tab.on("console", on_console)
    tab.on("pageerror", lambda error: events.page_errors.append(str(error)))
    tab.on("requestfailed", on_request_failed)
    try:
        tab.goto((html_dir / page).resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        events.mathjax = tab.evaluate(WAIT_FOR_MATHJAX_JS, timeout_ms)
        facts = tab.evaluate(COLLECT_JS)
        shot = screens / page.with_suffix(".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    return page_problems(facts, events)


def check_book(html_dir: Path, screens: Path, chromium: str, timeout_s: float) -> int:
    """Check every page; print one line each and a summary; 1 if any failed."""
    from playwright.sync_api import sync_playwright

    failed = 0
    pages = pages_of(html_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for page in pages:
            target = redirect_target((html_dir / page).read_text(encoding="utf-8"))
            if target is not None:
                exists = (html_dir / page.parent / target.split("#")[0]).is_file()
                problems = [] if exists else [f"redirects to a missing page: {target}"]
            else:
                try:
                    problems = check_page(browser, html_dir, page, screens, int(timeout_s * 1000))
                except Exception as error:  # the page fails; the others are still checked
                    problems = [f"could not be checked: {type(error).__name__}: {error}"]
            failed += bool(problems)
            print(f"{'FAIL' if problems else 'OK'}  {page}"
                  + (": " + "; ".join(summarise(problems)) if problems else ""), flush=True)
        browser.close()
    print(f"browser: {len(pages) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--screens", type=Path, default=ROOT / "_build" / "screens")
    parser.add_argument("--chromium", help="the Chromium binary (default: $CHROMIUM, then chromium on PATH)")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per page (default 60)")
    args = parser.parse_args(argv)
    if not (args.html_dir / "index.html").is_file():
        print(f"check_book: no built book in {args.html_dir} (run `make book` first)", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("check_book: no Chromium found (apt-get install chromium, or pass --chromium)", file=sys.stderr)
        return 2
    return check_book(args.html_dir, args.screens, chromium, args.timeout_s)


if __name__ == "__main__":
    sys.exit(main())
