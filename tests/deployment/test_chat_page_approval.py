"""Approve before acting on the chat page (issue 25, point 3), in a real browser as a person
uses it: a tool of `AGENT_CONFIRM_TOOLS` is asked about with Approve / Deny; approving runs
it and the answer goes on in the same bubble, denying answers it as declined (also after a
reload), and a new message meanwhile is held back on the page."""

from __future__ import annotations

from collections.abc import Iterator
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
def page() -> Iterator[Any]:
    """Headless Chromium, with the page's console checked for errors after the test."""
    browser = chromium()
    try:
        yield browser
        assert page_errors(browser) == []
    finally:
        browser.quit()


def wait_for(browser: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT).until(condition)


def js(browser: Any, script: str) -> Any:
    return browser.execute_script(script)


def send(browser: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element(By.ID, "message")
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def answer_states(browser: Any) -> list[str]:
    return js(
        browser,
        "return [...document.querySelectorAll('#conversation .msg.assistant')]"
        ".map(a => a.dataset.state)",
    )


def answer_done(browser: Any, count: int = 1) -> bool:
    return answer_states(browser) == ["done"] * count


def tool_cards(browser: Any) -> list[tuple[str, str]]:
    return [
        tuple(card)
        for card in js(
            browser,
            "return [...document.querySelectorAll('#conversation .tool-card')]"
            ".map(c => [c.dataset.tool, c.dataset.status])",
        )
    ]


def last_answer_text(browser: Any) -> str:
    return js(
        browser,
        "const a = [...document.querySelectorAll('#conversation .msg.assistant .answer')];"
        "return a.length ? a[a.length - 1].textContent : ''",
    )


def transcript(url: str, sid: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/sessions/{sid}/messages", timeout=10).json()["messages"]


STATUS_TEXT = "return document.getElementById('status').textContent"


def approval(browser: Any) -> dict[str, Any] | None:
    return js(
        browser,
        """const box = document.querySelector('#conversation .approval');
        return box && {question: box.querySelector('.approval-question').textContent,
                       calls: box.querySelector('.approval-calls').textContent}""",
    )


def click(browser: Any, selector: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, selector).click()


def test_approve_and_deny_a_tool_call_on_the_page(page: Any, database_dsn: str) -> None:
    settings = settings_for(
        database_dsn, rate_limit_per_minute=100_000, agent_confirm_tools="get_stock_price"
    )
    with live_server(create_app(settings, model=FakeModel())) as server:
        page.get(server.url)
        wait_for(page, lambda d: js(d, "return document.documentElement.dataset.ready"))

        # Asked: both calls of the step wait; the stock call is the one asked about.
        send(page, QUESTION)
        wait_for(page, lambda d: approval(d) is not None)
        asked = approval(page)
        assert asked is not None and asked["question"] == "Run get_stock_price?"
        assert "get_stock_price" in asked["calls"] and "AAPL" in asked["calls"]
        assert answer_states(page) == ["waiting"]
        assert tool_cards(page) == [("get_weather", "waiting"), ("get_stock_price", "waiting")]
        sid = js(page, "return location.hash.slice(1)")
        assert [m["role"] for m in transcript(server.url, sid)] == ["user", "assistant"]

        # A new message meanwhile stays in the box; nothing is sent.
        send(page, "Never mind")
        wait_for(page, lambda d: "Approve or deny" in js(d, STATUS_TEXT))
        assert len(transcript(server.url, sid)) == 2
        assert js(page, "return document.getElementById('message').value") == "Never mind"

        # Approve: the tools run and the answer goes on in the same bubble.
        click(page, "#conversation .approval button.approve")
        wait_for(page, answer_done)
        assert approval(page) is None
        assert tool_cards(page) == [("get_weather", "ok"), ("get_stock_price", "ok")]
        assert "AAPL is at" in last_answer_text(page)
        stored = transcript(server.url, sid)
        assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
        assert last_answer_text(page) == stored[-1]["content"]

        # Deny: the call is not run and shows as declined, also after a reload.
        page.find_element("id", "message").clear()
        send(page, "And the price of MSFT?")
        wait_for(page, lambda d: "MSFT" in ((approval(d) or {}).get("calls") or ""))
        click(page, "#conversation .approval button.deny")
        wait_for(page, lambda d: answer_done(d, 2))
        assert tool_cards(page)[-1] == ("get_stock_price", "declined")
        declined = [m for m in transcript(server.url, sid) if m["role"] == "tool"][-1]
        assert declined["name"] == "get_stock_price" and "declined" in declined["content"]
        page.refresh()
        wait_for(page, lambda d: answer_done(d, 2))
        assert [status for _, status in tool_cards(page)] == ["ok", "ok", "declined"]

        # Paused, then the page is opened again: a new message brings the question back,
        # and the message stays in the box until it is answered.
        send(page, "What about the price of NVDA?")
        wait_for(page, lambda d: "NVDA" in ((approval(d) or {}).get("calls") or ""))
        page.refresh()
        wait_for(page, lambda d: len(answer_states(d)) == 3)
        assert approval(page) is None
        send(page, "Hello again")
        wait_for(page, lambda d: "NVDA" in ((approval(d) or {}).get("calls") or ""))
        assert answer_states(page) == ["done", "done", "waiting"]
        assert js(page, "return document.getElementById('message').value") == "Hello again"
        stored = transcript(server.url, sid)
        assert [m["content"] for m in stored if m["role"] == "user"][-1] != "Hello again"
        assert stored[-1]["role"] == "assistant" and stored[-1]["tool_calls"]  # still waits
        click(page, "#conversation .approval button.approve")
        wait_for(page, lambda d: answer_done(d, 3))
        assert "NVDA is at" in last_answer_text(page)
        assert tool_cards(page)[-1] == ("get_stock_price", "ok")
