"""Regenerate, edit and the "‹ n/m ›" switch on the chat page, as a person uses them (issue
25, point 2), in headless Chromium against the app under uvicorn with the offline model:
each new answer streams in, the page then shows where the branches differ, and the arrows
bring the other branch back, as stored (`GET /sessions/{id}/messages`)."""

from __future__ import annotations

from typing import Any

from tests.browser import live_server
from tests.chat_page import (  # the page's helpers and browser fixtures
    answer_done,
    answers,
    app_for,
    js,
    open_page,
    send,
    session_id,
    transcript,
    wait_for,
)


def click(browser: Any, selector: str, index: int = -1) -> None:
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, selector)
    assert found, selector
    found[index].click()


def shown(browser: Any) -> list[str]:
    """The conversation as the page shows it: each message's text, with its "n/m"."""
    return js(
        browser,
        """return [...document.querySelectorAll('#conversation .msg')].map(a => {
            const text = (a.querySelector('.bubble') || a.querySelector('.answer') || a)
                .textContent.trim();
            const where = a.querySelector('.branch-index');
            return where ? `${text} [${where.textContent}]` : text;
        })""",
    )


def stored_ids(url: str, sid: str) -> list[str]:
    return [m["id"] for m in transcript(url, sid).json()["messages"]]


def settled(browser: Any, count: int, answered: int | None = None) -> bool:
    """The page shows `count` branch controls (and `answered` answers), its last answer
    done and no turn running, all read in one script: the page re-renders the
    conversation when a fork starts and ends."""
    return bool(
        js(
            browser,
            """const [count, answered] = arguments;
            const a = [...document.querySelectorAll('#conversation .msg.assistant')];
            return a.length > 0 && a[a.length - 1].dataset.state === 'done'
                && (answered === null || a.length === answered)
                && document.querySelectorAll('.branch-nav').length === count
                && !document.getElementById('send').disabled""",
            count,
            answered,
        )
    )


def test_regenerate_edit_and_switch_on_the_page(page: Any, database_dsn: str) -> None:
    from selenium.webdriver.common.by import By

    with live_server(app_for(database_dsn)) as server:
        open_page(page, server.url)
        send(page, "Hello")
        wait_for(page, answer_done)
        send(page, "What's the weather in Montevideo?")
        wait_for(page, lambda d: len(answers(d)) == 2 and answer_done(d))
        sid = session_id(page)
        first = stored_ids(server.url, sid)
        # Regenerate is offered on the last answer only.
        wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".regenerate")) == 1)
        assert answers(page)[-1].find_elements(By.CSS_SELECTOR, ".regenerate")

        click(page, ".regenerate")
        wait_for(page, lambda d: settled(d, 1))
        regenerated = stored_ids(server.url, sid)
        assert regenerated[:3] == first[:3] and regenerated[3] != first[3]
        view = shown(page)
        assert len(view) == 4 and view[3].endswith("[2/2]")  # the new answer, 2 of 2
        assert view[:3] == ["Hello", view[1], "What's the weather in Montevideo?"]

        # Edit the first message: its editor, then the new branch streams in.
        click(page, ".msg.user .edit-button", 0)
        box = page.find_element(By.CSS_SELECTOR, "form.edit textarea")
        assert box.get_attribute("value") == "Hello"
        box.clear()
        box.send_keys("What is the price of AAPL?")
        click(page, "form.edit button[type=submit]")
        wait_for(page, lambda d: settled(d, 1, answered=1))
        edited = stored_ids(server.url, sid)
        assert shown(page)[0] == "What is the price of AAPL? [2/2]"
        assert transcript(server.url, sid).json()["messages"][0]["content"] == (
            "What is the price of AAPL?"
        )

        # ‹ on the first message: the first question's branch again, with its newest answer.
        click(page, ".branch-nav button[aria-label='Previous version']")
        wait_for(page, lambda d: settled(d, 2, answered=2) and shown(d)[0] == "Hello [1/2]")
        assert stored_ids(server.url, sid) == regenerated and len(answers(page)) == 2
        # ‹ on the regenerated answer: the first answer; › there: the regenerated one again.
        click(page, ".msg.assistant .branch-nav button[aria-label='Previous version']")
        wait_for(page, lambda d: shown(d)[3].endswith("[1/2]") and settled(d, 2))
        assert stored_ids(server.url, sid) == first and shown(page)[0] == "Hello [1/2]"
        click(page, ".branch-nav button[aria-label='Next version']", 0)
        wait_for(page, lambda d: shown(d)[0].endswith("[2/2]") and settled(d, 1))
        assert stored_ids(server.url, sid) == edited
        # After a reload the page shows the same branch and controls.
        page.refresh()
        wait_for(page, lambda d: settled(d, 1))
        assert shown(page)[0] == "What is the price of AAPL? [2/2]"
