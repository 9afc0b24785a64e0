"""Approve before acting on the chat page (issue 25, point 3), in a real browser as a person
uses it: a tool of `AGENT_CONFIRM_TOOLS` is asked about with Approve / Deny; approving runs
it and the answer goes on in the same bubble, denying answers it as declined (also after a
reload), and a new message meanwhile is held back on the page."""

from __future__ import annotations

from typing import Any

from tests.browser import live_server
from tests.deployment.test_chat_page import (  # noqa: F401 (the fixtures)
    QUESTION,
    answer_done,
    answer_text,
    answers,
    app_for,
    driver,
    js,
    last_answer_state,
    open_page,
    page,
    send,
    session_id,
    tool_cards,
    transcript,
    wait_for,
)

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


def test_approve_and_deny_a_tool_call_on_the_page(page: Any, database_dsn: str) -> None:  # noqa: F811
    app = app_for(database_dsn, agent_confirm_tools="get_stock_price")
    with live_server(app) as server:
        open_page(page, server.url)

        # Asked: both calls of the step wait; the stock call is the one asked about.
        send(page, QUESTION)
        wait_for(page, lambda d: approval(d) is not None)
        asked = approval(page)
        assert asked is not None and asked["question"] == "Run get_stock_price?"
        assert "get_stock_price" in asked["calls"] and "AAPL" in asked["calls"]
        assert last_answer_state(page) == "waiting"
        assert [(c["tool"], c["status"]) for c in tool_cards(page)] == [
            ("get_weather", "waiting"),
            ("get_stock_price", "waiting"),
        ]
        sid = session_id(page)
        stored = transcript(server.url, sid).json()["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"]  # nothing ran

        # A new message meanwhile stays in the box; nothing is sent.
        send(page, "Never mind")
        wait_for(
            page,
            lambda d: (
                "Approve or deny" in js(d, "return document.getElementById('status').textContent")
            ),
        )
        assert len(transcript(server.url, sid).json()["messages"]) == 2
        assert js(page, "return document.getElementById('message').value") == "Never mind"

        # Approve: the tools run and the answer goes on in the same bubble.
        click(page, "#conversation .approval button.approve")
        wait_for(page, answer_done)
        assert approval(page) is None and len(answers(page)) == 1
        assert [(c["tool"], c["status"]) for c in tool_cards(page)] == [
            ("get_weather", "ok"),
            ("get_stock_price", "ok"),
        ]
        assert "AAPL is at" in answer_text(page)
        stored = transcript(server.url, sid).json()["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]

        # Deny: the call is not run and shows as declined, also after a reload.
        page.find_element("id", "message").clear()
        send(page, "And the price of MSFT?")
        wait_for(page, lambda d: approval(d) is not None and "MSFT" in approval(d)["calls"])
        click(page, "#conversation .approval button.deny")
        wait_for(page, lambda d: len(answers(d)) == 2 and answer_done(d))
        assert tool_cards(page)[-1]["status"] == "declined"
        stored = transcript(server.url, sid).json()["messages"]
        declined = [m for m in stored if m["role"] == "tool"][-1]
        assert declined["name"] == "get_stock_price" and "declined" in declined["content"]
        page.refresh()
        wait_for(page, lambda d: len(answers(d)) == 2 and answer_done(d))
        assert [c["status"] for c in tool_cards(page)] == ["ok", "ok", "declined"]
