"""The chat page (`GET /`) in a real browser: headless Chromium against the app under
uvicorn with the offline model. Skipped only when no Chromium or chromedriver is found."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import AIMessage

from tests.browser import live_server
from tests.chat_page import (
    QUESTION,
    WAIT,
    PausingModel,
    answer_done,
    answer_text,
    answers,
    app_for,
    js,
    last_answer_state,
    open_page,
    send,
    session_id,
    sidebar_ids,
    tool_cards,
    transcript,
    wait_for,
)
from tests.fakes import FakeModel

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = (
    'Look: <img src=x onerror="window.__pwned = 1"> and <script>window.__pwned = 2</script> '
    "**bold** [click me](javascript:window.__pwned=3)"
)
# Records the bodies of the page's POST /chat requests in window.__chatBodies.
RECORD_CHAT_BODIES = """
window.__chatBodies = [];
const original = window.fetch;
window.fetch = (resource, init) => {
  if (String(resource) === "/chat") window.__chatBodies.push(init.body);
  return original(resource, init);
};
"""


class HostileModel(FakeModel):
    """Answers every message with HTML and a javascript: link."""

    def respond(self, messages: Any, tool_names: Any) -> AIMessage:
        return AIMessage(
            HOSTILE, usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
        )


# -- tests -------------------------------------------------------------------------------------


def test_page_and_files_are_served_under_their_own_csp(database_dsn: str) -> None:
    with live_server(app_for(database_dsn, api_key="k")) as server:
        page = httpx.get(server.url + "/", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        script = httpx.get(server.url + "/static/app.js", timeout=10)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == csp
        for missing in ("/static/nope.js", "/static/..%2Fapp.py", "/static/%2e%2e%2fpage.py"):
            assert httpx.get(server.url + missing, timeout=10).status_code == 404
        # The page holds no inline script or style (the CSP would block them).
        assert "<script>" not in page.text and "style=" not in page.text


def test_tool_turn_streams_then_history_sidebar_and_delete(
    page: Any, database_dsn: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    model = PausingModel(resume=asyncio.Event(), paused=asyncio.Event())
    with live_server(app_for(database_dsn, model)) as server:
        open_page(page, server.url)
        notice = page.find_element(By.ID, "notice")
        wait_for(page, lambda d: notice.is_displayed())
        assert "Offline demo" in notice.text

        send(page, QUESTION)
        # The answer stops after its first words: the tool cards are complete and the text
        # so far is on the page while the turn is still streaming.
        server.run(asyncio.wait_for(model.paused.wait(), WAIT))
        wait_for(page, lambda d: answer_text(d).strip() == "In")
        assert last_answer_state(page) == "streaming"
        cards = tool_cards(page)
        assert [c["tool"] for c in cards] == ["get_weather", "get_stock_price"]
        assert all(c["status"] == "ok" for c in cards)
        assert "Montevideo" in cards[0]["args"] and "AAPL" in cards[1]["args"]
        assert "Montevideo" in cards[0]["preview"] and "AAPL" in cards[1]["preview"]
        assert page.find_element(By.ID, "send").get_attribute("disabled") is not None
        server.call(model.resume.set)

        wait_for(page, answer_done)
        sid = session_id(page)
        stored = transcript(server.url, sid).json()["messages"]
        final = stored[-1]["content"]
        assert "AAPL is at" in final and final.startswith("In Montevideo")
        assert answer_text(page) == final
        assert page.find_element(By.ID, "send").get_attribute("disabled") is None
        article = answers(page)[-1]
        assert article.get_attribute("aria-busy") == "false"
        assert page.find_element(By.ID, "conversation").get_attribute("aria-live") == "polite"
        # The focus stays in the message box for the next question.
        assert page.switch_to.active_element.get_attribute("id") == "message"
        shot = tmp_path / "chat.png"
        page.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("VERA_UPDATE_SCREENSHOT"):
            (ROOT / "docs" / "chat.png").write_bytes(shot.read_bytes())

        # Reload: the session is in the sidebar (current) and its history is shown.
        page.refresh()
        wait_for(page, lambda d: sid in sidebar_ids(d) and answer_done(d))
        current = page.find_element(By.CSS_SELECTOR, f'li[data-session-id="{sid}"] .session-open')
        assert current.get_attribute("aria-current") == "page"
        assert QUESTION[:40] in current.text
        bubbles = page.find_elements(By.CSS_SELECTOR, "#conversation .msg.user .bubble")
        assert [b.text for b in bubbles] == [QUESTION]
        assert [(c["tool"], c["status"]) for c in tool_cards(page)] == [
            ("get_weather", "ok"),
            ("get_stock_price", "ok"),
        ]
        assert answer_text(page) == final

        # A new chat empties the view; the old one is one click away.
        page.find_element(By.ID, "new-chat").click()
        wait_for(page, lambda d: session_id(d) != sid and not answers(d))
        # ...without asking for the new session's messages (a 404 in the console).
        fresh = session_id(page)
        asked = [
            e["message"] for e in page.get_log("browser") if f"/sessions/{fresh}" in e["message"]
        ]
        assert asked == [], asked
        current = page.find_element(By.CSS_SELECTOR, f'li[data-session-id="{sid}"] .session-open')
        current.click()
        wait_for(page, lambda d: session_id(d) == sid and answer_text(d) == final)

        # Delete, after confirming: gone from the sidebar, the view and the server.
        page.find_element(By.CSS_SELECTOR, f'li[data-session-id="{sid}"] .session-delete').click()
        wait_for(page, expected_conditions.alert_is_present()).accept()
        wait_for(page, lambda d: sid not in sidebar_ids(d) and not answers(d))
        assert session_id(page) != sid
        assert transcript(server.url, sid).status_code == 404


def test_busy_session_says_so_and_retry_sends_the_same_turn(page: Any, database_dsn: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    model = FakeModel(gate=asyncio.Event(), started=asyncio.Event())
    with live_server(app_for(database_dsn, model)) as server:
        sid = "3f0e9c1a-8b7d-4e6f-9a2b-1c3d5e7f9a0b"
        held = threading.Thread(
            target=httpx.post,
            args=(f"{server.url}/chat",),
            kwargs={"json": {"session_id": sid, "message": "Price of MSFT?"}, "timeout": 60},
        )
        held.start()
        try:
            server.run(asyncio.wait_for(model.started.wait(), WAIT))
            open_page(page, f"{server.url}/#{sid}")
            wait_for(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.user")) == 1)
            js(page, RECORD_CHAT_BODIES)

            # Shift+Enter adds a line; Enter sends.
            box = page.find_element(By.ID, "message")
            box.send_keys("Weather in Lima?")
            box.send_keys(Keys.SHIFT, Keys.ENTER)
            box.send_keys("Thanks")
            assert box.get_attribute("value") == "Weather in Lima?\nThanks"
            assert len(page.find_elements(By.CSS_SELECTOR, ".msg.user")) == 1
            box.send_keys(Keys.ENTER)

            error = wait_for(
                page, lambda d: d.find_element(By.CSS_SELECTOR, ".msg.assistant .turn-error")
            )
            assert error.get_attribute("data-code") == "session_busy"
            assert error.get_attribute("role") == "alert"
            assert "still answering" in error.text
        finally:
            server.call(model.gate.set)
            held.join(timeout=WAIT)

        page.find_element(By.CSS_SELECTOR, ".turn-error .retry").click()
        # The retry's answer replaces the error; the reload shows it stored once.
        wait_for(page, answer_done)
        assert "Lima" in answer_text(page)
        messages = transcript(server.url, sid).json()["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert users == ["Price of MSFT?", "Weather in Lima?\nThanks"]
        sent = [json.loads(body) for body in js(page, "return window.__chatBodies")]
        assert len(sent) == 2 and sent[0] == sent[1]  # the retry resent the same turn_id
        assert sent[0]["turn_id"] and sent[0]["session_id"] == sid


def test_api_key_is_asked_for_and_a_wrong_one_is_said_plainly(page: Any, database_dsn: str) -> None:
    from selenium.webdriver.common.by import By

    with live_server(app_for(database_dsn, api_key="right-key")) as server:
        open_page(page, server.url)
        dialog = page.find_element(By.ID, "key-dialog")
        key_input = page.find_element(By.ID, "key-input")
        message = page.find_element(By.ID, "key-message")

        def dialog_open(_: Any) -> bool:
            return dialog.get_attribute("open") is not None

        # A server with GET /sessions asks at once; otherwise the first message asks.
        note = page.find_element(By.ID, "sessions-note")
        wait_for(page, lambda d: dialog_open(d) or note.is_displayed())
        asked_at_load = dialog_open(page)
        if not asked_at_load:
            send(page, "What is the price of MSFT?")
            wait_for(page, dialog_open)
        assert "needs an API key" in message.text
        assert page.switch_to.active_element.get_attribute("id") == "key-input"

        key_input.send_keys("wrong-key")
        page.find_element(By.ID, "key-submit").click()
        wait_for(page, lambda d: dialog_open(d) and "not accepted" in message.text)
        assert key_input.get_attribute("value") == ""

        key_input.send_keys("right-key")
        page.find_element(By.ID, "key-submit").click()
        wait_for(page, lambda d: not dialog_open(d))
        if asked_at_load:
            send(page, "What is the price of MSFT?")
        wait_for(page, answer_done)
        assert "MSFT is at" in answer_text(page)
        assert js(page, "return sessionStorage.getItem('vera.apiKey')") == "right-key"
        stored = transcript(server.url, session_id(page), **{"X-API-Key": "right-key"})
        assert stored.status_code == 200


def test_hostile_answer_and_message_render_as_text(page: Any, database_dsn: str) -> None:
    from selenium.webdriver.common.by import By

    with live_server(app_for(database_dsn, HostileModel())) as server:
        open_page(page, server.url)
        js(page, "delete window.__pwned")
        send(page, '<img src=y onerror="window.__pwned = 4"> hi')
        wait_for(page, answer_done)

        def check() -> None:
            log = page.find_element(By.ID, "conversation")
            assert log.find_elements(By.CSS_SELECTOR, "img, script, iframe, a") == []
            assert js(page, "return window.__pwned") is None
            text = answer_text(page)
            assert '<img src=x onerror="window.__pwned = 1">' in text
            assert "<script>window.__pwned = 2</script>" in text
            assert "[click me](javascript:window.__pwned=3)" in text
            strong = log.find_elements(By.CSS_SELECTOR, ".answer strong")
            assert [s.text for s in strong] == ["bold"]
            bubble = log.find_element(By.CSS_SELECTOR, ".msg.user .bubble")
            assert bubble.text == '<img src=y onerror="window.__pwned = 4"> hi'

        check()
        page.refresh()  # the same from the stored history
        wait_for(page, answer_done)
        check()


def test_phone_width_sidebar_toggles(page: Any, database_dsn: str) -> None:
    from selenium.webdriver.common.by import By

    size = page.get_window_size()
    page.set_window_size(390, 844)
    try:
        with live_server(app_for(database_dsn)) as server:
            open_page(page, server.url)
            sidebar = page.find_element(By.ID, "sidebar")
            toggle = page.find_element(By.ID, "toggle-sidebar")
            assert toggle.is_displayed() and not sidebar.is_displayed()
            width = js(page, "return document.documentElement.clientWidth")
            assert js(page, "return document.documentElement.scrollWidth") <= width
            box = page.find_element(By.ID, "message")
            assert box.rect["x"] + box.rect["width"] <= width
            toggle.click()
            wait_for(page, lambda d: sidebar.is_displayed())
            assert toggle.get_attribute("aria-expanded") == "true"
            page.find_element(By.ID, "new-chat").click()
            wait_for(page, lambda d: not sidebar.is_displayed())
    finally:
        page.set_window_size(size["width"], size["height"])


# Cuts the page's POST /chat stream (a network error) once its first token has arrived,
# and records the Last-Event-ID of the page's reconnections in window.__resumedFrom.
CUT_AFTER_FIRST_TOKEN = """
window.__resumedFrom = [];
const original = window.fetch;
window.fetch = async (resource, init) => {
  const url = String(resource);
  if (url.endsWith("/events"))
    window.__resumedFrom.push(new Headers(init.headers).get("Last-Event-ID"));
  const response = await original(resource, init);
  if (url !== "/chat" || !response.ok) return response;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  let cut = false;
  const body = new ReadableStream({
    async pull(controller) {
      if (cut) {
        reader.cancel();
        controller.error(new TypeError("network error"));
        return;
      }
      const { value, done } = await reader.read();
      if (done) return controller.close();
      seen += decoder.decode(value, { stream: true });
      controller.enqueue(value);
      cut = seen.includes("event: token");
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
};
"""


def test_lost_connection_resumes_the_turn_where_it_stopped(page: Any, database_dsn: str) -> None:
    model = PausingModel(resume=asyncio.Event(), paused=asyncio.Event())
    with live_server(app_for(database_dsn, model)) as server:
        open_page(page, server.url)
        js(page, CUT_AFTER_FIRST_TOKEN)
        send(page, QUESTION)
        server.run(asyncio.wait_for(model.paused.wait(), WAIT))
        # The page lost the stream after the first token and follows the turn again from
        # that event, while the turn still runs.
        resumed = wait_for(page, lambda d: js(d, "return window.__resumedFrom[0]"))
        turn_id, _, number = resumed.rpartition(":")
        assert turn_id and int(number) > 1  # after the session, tool and token events
        assert last_answer_state(page) == "streaming"
        server.call(model.resume.set)
        wait_for(page, answer_done)
        final = transcript(server.url, session_id(page)).json()["messages"][-1]["content"]
        assert answer_text(page) == final  # nothing lost, nothing twice
        assert [c["tool"] for c in tool_cards(page)] == ["get_weather", "get_stock_price"]
        assert js(page, "return window.__resumedFrom.length") == 1


MARKDOWN_CASES = [
    ("plain <b>x</b> & text", "<p>plain &lt;b&gt;x&lt;/b&gt; &amp; text</p>"),
    (
        "**bold**, *it*, `co<de>` and snake__case__name",
        "<p><strong>bold</strong>, <em>it</em>, <code>co&lt;de&gt;</code> and "
        "snake__case__name</p>",
    ),
    ("line one\nline two\n\nnext", "<p>line one<br>line two</p><p>next</p>"),
    (
        "# Title\n- a\n- **b**\n\n3. three\n4. four",
        "<h3>Title</h3><ul><li>a</li><li><strong>b</strong></li></ul>"
        '<ol start="3"><li>three</li><li>four</li></ol>',
    ),
    (
        "```python\nx = '<img>'\n```",
        "<pre><code data-language=\"python\">x = '&lt;img&gt;'</code></pre>",
    ),
    ("```\nstill streaming", "<pre><code>still streaming</code></pre>"),
    ("> quoted", "<blockquote><p>quoted</p></blockquote>"),
    (
        "[docs](https://example.com/a?b=1) [bad](javascript:alert(1)) [d](data:text/html,x)",
        '<p><a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer">docs</a>'
        " [bad](javascript:alert(1)) [d](data:text/html,x)</p>",
    ),
]


def test_markdown_renderer_escapes_html_and_renders_the_basics(
    page: Any, database_dsn: str
) -> None:
    with live_server(app_for(database_dsn)) as server:
        open_page(page, server.url)
        rendered = page.execute_async_script(
            """const [cases, done] = arguments;
            import("/static/markdown.js").then(({ renderMarkdown }) => done(cases.map((text) => {
              const box = document.createElement("div");
              box.append(renderMarkdown(text));
              return box.innerHTML;
            })));""",
            [text for text, _ in MARKDOWN_CASES],
        )
        assert rendered == [html for _, html in MARKDOWN_CASES]


def test_model_timeout_is_explained_and_retry_completes_the_turn(
    page: Any, database_dsn: str
) -> None:
    from selenium.webdriver.common.by import By

    model = FakeModel(gate=asyncio.Event())
    with live_server(app_for(database_dsn, model, agent_timeout_seconds=0.3)) as server:
        open_page(page, server.url)
        send(page, "What is the price of MSFT?")
        error = wait_for(
            page, lambda d: d.find_element(By.CSS_SELECTOR, ".msg.assistant .turn-error")
        )
        assert error.get_attribute("data-code") == "llm_timeout"
        assert "took too long" in error.text
        server.call(model.gate.set)
        error.find_element(By.CSS_SELECTOR, ".retry").click()
        wait_for(page, answer_done)
        assert "MSFT is at" in answer_text(page)
        assert page.find_elements(By.CSS_SELECTOR, ".turn-error") == []
        messages = transcript(server.url, session_id(page)).json()["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == [
            "What is the price of MSFT?"
        ]
