"""Sessions started elsewhere appear (issue 25, point 4): a thread written by the library
directly (as `langgraph dev` writes Studio's) has no owner row of the API's, yet it is the
default principal's session, listed by `GET /sessions` (and the chat page's sidebar, which
reads it) titled by its first user message, and found by the SDK's `threads.search`."""

from __future__ import annotations

import uuid

import httpx
from langchain_core.messages import HumanMessage
from langgraph_sdk import get_client

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel
from tests.support import cfg, chat_graph


async def test_a_thread_the_library_wrote_is_listed_titled_by_its_first_message(
    database_dsn: str, store: PostgresMemoryStore
) -> None:
    app = create_app(settings_for(database_dsn), model=FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        api_sid = str(uuid.uuid4())
        await chat(http, api_sid, "asked through the API")
        written = str(uuid.uuid4())
        graph = chat_graph(ConversationCheckpointer(store))
        question = "Asked   from Studio,\non two lines"
        await graph.ainvoke({"messages": [HumanMessage(question)]}, cfg(written))

        sdk = get_client(url=url)
        # Through the SDK's door first: the thread, its state, metadata of its own.
        assert (await sdk.threads.get_state(written))["values"]["messages"][0][
            "content"
        ] == question
        assert (await sdk.threads.update(written, metadata={"from": "studio"}))["metadata"][
            "from"
        ] == "studio"

        listed = (await http.get("/sessions")).json()["sessions"]
        titles = {s["session_id"]: (s["title"], s["message_count"]) for s in listed}
        assert titles[written] == ("Asked from Studio, on two lines", 2)
        assert titles[api_sid][0] == "asked through the API"
        # Its next turn comes from the API: the same session, the same owner.
        await chat(http, written, "and now from the API")
        listed = (await http.get("/sessions")).json()["sessions"]
        assert listed[0]["session_id"] == written
        assert listed[0]["title"] == "Asked from Studio, on two lines"
        assert listed[0]["message_count"] == 4

        found = {t["thread_id"] for t in await sdk.threads.search(limit=100)}
        assert {written, api_sid} <= found
        await sdk.http.client.aclose()
