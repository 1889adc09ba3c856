"""A real browser for the tests: Debian's headless Chromium driven by Selenium.

    def test_page(browser: Browser) -> None:
        browser.open(path_or_url, width=390)
        assert browser.scroll_width() <= 390

Tests that use the `browser` fixture skip, saying why, when Chromium or its driver is missing;
where `BOT_REQUIRE_BROWSER=1` (CI, which installs them with apt) they fail instead.
Screenshots go under `build/screenshots/`, for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("BOT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BOT_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
# The flags of a closed network: no background connections that would be refused.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def browser_problem() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (shutil.which(path) or os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


class Browser:
    """One headless Chromium window."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, target: str | Path, *, width: int, height: int = 900) -> None:
        """Load a file or URL in a window `width` CSS pixels wide."""
        self.driver.set_window_size(width, height)
        # The window size includes no browser chrome in headless mode; make the viewport exact.
        inner = self.driver.execute_script("return window.innerWidth")
        if inner != width:
            self.driver.set_window_size(width + (width - inner), height)
        url = target.resolve().as_uri() if isinstance(target, Path) else target
        self.driver.get(url)

    def scroll_width(self) -> int:
        """How wide the page is laid out (more than the window: it scrolls sideways)."""
        return int(
            self.driver.execute_script(
                "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            )
        )

    def viewport_width(self) -> int:
        """The layout viewport's width in CSS pixels."""
        return int(self.driver.execute_script("return document.documentElement.clientWidth"))

    def console_errors(self) -> list[str]:
        """Errors the page logged to the console (or threw) since it loaded."""
        entries = self.driver.get_log("browser")
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]

    def text_of(self, selector: str) -> str:
        """The visible text of the first element matching a CSS selector."""
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.CSS_SELECTOR, selector).text)

    def screenshot(self, name: str) -> Path:
        """A PNG of the whole page under build/screenshots/NAME.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        size = self.driver.get_window_size()
        self.driver.set_window_size(size["width"], max(height + 100, 400))
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(size["width"], size["height"])
        return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless Chromium shared by the tests of one worker (skipped where there is none)."""
    problem = browser_problem()
    if problem is not None:
        if os.environ.get("BOT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BOT_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="bot-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
