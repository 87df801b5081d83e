"""The workbench page in a real headless browser: Debian's chromium driven by Playwright for Python.

No browser is downloaded: `make browser` (a prerequisite of `make test`) installs the `chromium`
package. The test skips, saying why, only when no chromium binary exists. Set
SHOPLENS_WORKBENCH_SCREENSHOT=PATH to keep the screenshot (the README's image is made that way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.service.conftest import LiveServer

CHROMIUM = next((path for path in (os.environ.get("SHOPLENS_CHROMIUM"), "/usr/bin/chromium",
                                   shutil.which("chromium"), shutil.which("chromium-browser")) if path and Path(path).is_file()), None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary: `make browser` installs Debian's "
                                                         "chromium package (needs apt-get as root)")


@pytest.fixture(scope="module")
def live(served_index, served_engine):
    from shoplens.service.app import create_app
    from shoplens.service.settings import ServiceSettings

    with LiveServer(create_app(ServiceSettings(index=served_index, device="cpu"), engine=served_engine)) as server:
        yield server


@pytest.fixture(scope="module")
def page(live):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1500, "height": 940})
        context.set_default_timeout(60_000)  # a shared 2-core machine: searches can be slow
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(live.url + "/")
        yield page
        assert not problems, problems
        browser.close()


def test_query_cards_explain_compare_and_screenshot(page, tmp_path):
    page.keyboard.press("/")  # the keyboard shortcut focuses the search box
    page.keyboard.type("black shirt")
    page.keyboard.press("Enter")
    page.wait_for_selector(".card img")
    page.wait_for_function("() => [...document.querySelectorAll('.card img')].slice(0, 4)"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    cards = page.locator(".card")
    assert cards.count() == 12
    assert page.locator(".card .title").first.inner_text().strip()
    assert "index version" in page.locator("#status").inner_text()

    page.locator("#filter-input").fill("price<=2000")  # a filter chip narrows the results
    page.locator("#filter-input").press("Enter")
    page.wait_for_selector('.chip[data-filter="price<=2000"]')
    page.wait_for_function("() => document.querySelectorAll('.card').length > 0 && "
                           "[...document.querySelectorAll('.card .price')].every("
                           "p => Number(p.textContent.replace(/[^0-9.]/g, '')) <= 2000)")

    page.locator(".card").first.focus()  # keyboard: move to the second card and explain it
    page.keyboard.press("ArrowRight")
    page.keyboard.press("e")
    panel = page.locator("#explain")
    panel.wait_for(state="visible")
    assert "retrieval signals" in panel.inner_text()
    bars = page.locator("#explain .bars .bar")
    assert bars.count() >= 3  # the reranker's per-feature contributions, as bars
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")

    page.keyboard.press("c")  # compare A (hybrid + rerank) with B (hybrid, no rerank)
    page.wait_for_selector(".results.compare .column[data-side='1'] .card")
    assert page.locator(".results.compare .column").count() == 2
    assert "+ rerank" in page.locator(".column h2").first.inner_text()
    moved = page.locator(".column[data-side='1'] .move")
    assert moved.count() >= 1  # the reranker moves products; each move is marked
    screenshot = tmp_path / "workbench.png"
    page.locator(".column[data-side='0'] .card").nth(1).click()  # an explanation open beside the comparison
    panel.wait_for(state="visible")
    page.screenshot(path=str(screenshot))
    assert page.locator("#explain .bars .bar").count() >= 3
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("SHOPLENS_WORKBENCH_SCREENSHOT"):  # kept small: 256 colours
        from PIL import Image

        with Image.open(screenshot) as image:
            image.convert("RGB").quantize(256).save(os.environ["SHOPLENS_WORKBENCH_SCREENSHOT"], optimize=True)
