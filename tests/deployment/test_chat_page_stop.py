"""Stop on the chat page (issue 25, point 1), in a real browser: while Vera answers, a Stop
button stops the turn; what came is kept and marked as stopped, on the page and in the
transcript (also after a reload), and the next message is answered."""

from __future__ import annotations

import asyncio
from typing import Any

from selenium.webdriver.common.by import By

from tests.browser import live_server
from tests.chat_page import (
    QUESTION,
    WAIT,
    PausingModel,
    answer_done,
    answer_text,
    app_for,
    js,
    last_answer_state,
    open_page,
    send,
    session_id,
    transcript,
    wait_for,
)


def test_stop_keeps_what_came_and_the_next_message_is_answered(
    page: Any, database_dsn: str
) -> None:
    model = PausingModel(resume=asyncio.Event(), paused=asyncio.Event())
    with live_server(app_for(database_dsn, model)) as server:
        open_page(page, server.url)
        stop = page.find_element(By.ID, "stop")
        assert not stop.is_displayed()
        send(page, QUESTION)
        server.run(asyncio.wait_for(model.paused.wait(), WAIT))
        wait_for(page, lambda d: answer_text(d) != "")
        assert stop.is_displayed() and last_answer_state(page) == "streaming"
        stop.click()
        wait_for(page, lambda d: last_answer_state(d) == "stopped")
        assert not stop.is_displayed()
        shown = answer_text(page)
        assert js(page, "return document.querySelector('.turn-stopped').textContent") == ("Stopped")
        kept = transcript(server.url, session_id(page)).json()["messages"][-1]
        assert kept["role"] == "assistant" and kept["content"] == shown
        assert kept["data"]["response_metadata"]["stopped"] is True

        # After a reload the stored answer, from the transcript, is marked stopped too.
        page.refresh()
        wait_for(page, lambda d: last_answer_state(d) == "stopped")
        assert answer_text(page) == shown
        stops = "return [...document.querySelectorAll('.turn-stopped')].map(p => p.textContent)"
        assert js(page, stops) == ["Stopped"]

        server.call(model.resume.set)  # the next answer streams whole
        send(page, "And tomorrow?")
        wait_for(page, answer_done)
        roles = [m["role"] for m in transcript(server.url, session_id(page)).json()["messages"]]
        assert roles[-2:] == ["user", "assistant"] and roles.count("user") == 2
