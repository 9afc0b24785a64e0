"""The chat page's "Download conversation" (issue 27, point 3), in headless Chromium: the
file it saves is the session's export, as Markdown or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from src.api.app import create_app
from tests.api_harness import settings_for
from tests.browser import chromium, live_server, page_errors
from tests.fakes import FakeModel

QUESTION = "What's the weather in Montevideo and the price of AAPL?"
WAIT = 20


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A browser that saves downloads in `tmp_path`; no console error by the end."""
    driver = chromium()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    try:
        yield driver
        assert page_errors(driver) == []
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def downloaded(folder: Path, name: str) -> str:
    """The text of the file the browser saves as `name`, once complete."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        path = folder / name
        if path.is_file() and not list(folder.glob("*.crdownload")):
            return path.read_text(encoding="utf-8")
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {sorted(p.name for p in folder.iterdir())}")


def undated(markdown: str) -> str:
    return "\n".join(line for line in markdown.splitlines() if "- Exported: " not in line)


def test_download_conversation_saves_the_export(
    page: Any, database_dsn: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    app = create_app(settings_for(database_dsn, rate_limit_per_minute=100_000), model=FakeModel())
    with live_server(app) as server:
        page.get(server.url)
        wait_for(page, lambda d: d.execute_script("return document.documentElement.dataset.ready"))
        menu = page.find_element(By.ID, "download")
        assert not menu.is_displayed()  # nothing to download in an empty chat
        box = page.find_element(By.ID, "message")
        box.click()
        box.send_keys(QUESTION, Keys.ENTER)
        wait_for(
            page,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, '#conversation .msg.assistant[data-state="done"]'
            ),
        )
        sid = page.execute_script("return location.hash.slice(1)")
        assert menu.is_displayed()

        menu.find_element(By.TAG_NAME, "summary").click()
        menu.find_element(By.CSS_SELECTOR, 'button[data-format="markdown"]').click()
        markdown = downloaded(tmp_path, f"vera-{sid}.md")
        expected = httpx.get(f"{server.url}/sessions/{sid}/export?format=markdown&branches=true")
        assert undated(markdown) == undated(expected.text)
        assert QUESTION in markdown and "**Tool `get_weather`**" in markdown
        wait_for(page, lambda d: "Downloaded" in d.find_element(By.ID, "status").text)

        menu.find_element(By.TAG_NAME, "summary").click()
        menu.find_element(By.CSS_SELECTOR, 'button[data-format="json"]').click()
        exported = json.loads(downloaded(tmp_path, f"vera-{sid}.json"))
        stored = httpx.get(f"{server.url}/sessions/{sid}/messages").json()["messages"]
        assert exported["messages"] == stored
        assert [b["shown"] for b in exported["branches"]] == [True]
