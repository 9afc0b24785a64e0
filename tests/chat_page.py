"""The chat page's browser helpers, shared by its browser tests: the app on the offline
model, a headless Chromium driver per test, and reads of what the page shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langchain_core.outputs import ChatGenerationChunk

from src.api.app import create_app
from tests.api_harness import settings_for
from tests.browser import chromium, page_errors
from tests.fakes import FakeModel

WAIT = 20
QUESTION = "What's the weather in Montevideo and the price of AAPL?"


def app_for(dsn: str, model: FakeModel | None = None, **overrides: Any) -> Any:
    settings = settings_for(dsn, rate_limit_per_minute=100_000, **overrides)
    return create_app(settings, model=model or FakeModel())


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    browser = chromium()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def page(driver: Any) -> Iterator[Any]:
    """The driver, with the page's console checked for errors after the test."""
    page_errors(driver)  # drop what an earlier test left
    yield driver
    assert page_errors(driver) == []


# -- page helpers ------------------------------------------------------------------------------


def wait_for(driver: Any, condition: Any, timeout: float = WAIT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: js(d, "return document.documentElement.dataset.ready === 'true'"))


def send(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "message")
    box.click()  # as a person does (focus() alone does not take keys after a modal closed)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def answers(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#conversation .msg.assistant")


def last_answer_state(driver: Any) -> str | None:
    found = answers(driver)
    return found[-1].get_attribute("data-state") if found else None


def answer_done(driver: Any) -> bool:
    return last_answer_state(driver) == "done"


def tool_cards(driver: Any) -> list[dict[str, str]]:
    return js(
        driver,
        """return [...document.querySelectorAll('#conversation .tool-card')].map(c => ({
            tool: c.dataset.tool, status: c.dataset.status,
            args: c.querySelector('.tool-args').textContent,
            preview: c.querySelector('.tool-preview').textContent}))""",
    )


def answer_text(driver: Any) -> str:
    return js(
        driver,
        "const a = [...document.querySelectorAll('#conversation .msg.assistant .answer')];"
        "return a.length ? a[a.length - 1].textContent : ''",
    )


def session_id(driver: Any) -> str:
    return js(driver, "return location.hash.slice(1)")


def sidebar_ids(driver: Any) -> list[str]:
    return js(
        driver,
        "return [...document.querySelectorAll('#session-list li')].map(li => li.dataset.sessionId)",
    )


def transcript(url: str, sid: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{url}/sessions/{sid}/messages", headers=headers, timeout=10)


# -- models ------------------------------------------------------------------------------------


class PausingModel(FakeModel):
    """The offline model; a text answer stops after its first words until `resume` is set
    (`paused` says it got there), so the test sees tokens arrive."""

    resume: asyncio.Event | None = None
    paused: asyncio.Event | None = None

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        first = True
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk
            if first and chunk.message.content and self.resume is not None:
                first = False
                assert self.paused is not None
                self.paused.set()
                await self.resume.wait()
