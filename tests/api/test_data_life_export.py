"""A session's export (issue 27, point 3): `GET /sessions/{id}/export` as JSON or Markdown,
with the branches a fork leaves; the JSON's transcript is `conversations.messages`."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx

from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.data_life import fork_after_first_turn
from tests.fakes import FakeModel

ALICE = "alice-key-0123456789abcdefghijklmnop"
BOB = "bob-key-0123456789abcdefghijklmnopqrs"
QUESTIONS = [
    "What's the weather in Montevideo and the price of AAPL?",
    "My name is Ana 🌧\nand this line has `code` and ```fences```",
]


def _app(dsn: str) -> object:
    settings = settings_for(dsn, api_keys=f"erin:{ALICE},frank:{BOB}", rate_limit_per_minute=1000)
    return create_app(settings, model=FakeModel())


async def _stored(db: asyncpg.Connection, sid: str) -> list[dict]:
    text = await db.fetchval(
        "SELECT messages::text FROM conversations WHERE session_id = $1", uuid.UUID(sid)
    )
    return json.loads(text)


async def test_the_json_export_round_trips_the_transcript(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    app = _app(database_dsn)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=30) as client,
    ):
        sid = str(uuid.uuid4())
        for question in QUESTIONS:
            await chat(client, sid, question)
        response = await client.get(f"/sessions/{sid}/export")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="vera-{sid}.json"'
        )
        export = response.json()
        stored = await _stored(db, sid)
        assert export["messages"] == stored  # element for element, every field
        assert len(stored) == 7  # a turn with two tool calls (5 messages), then a plain one
        assert export["session_id"] == sid
        assert export["title"] == QUESTIONS[0]
        assert export["created_at"] <= export["idle_since"] <= export["exported_at"]
        assert "branches" not in export or export["branches"] is None
        messages = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
        assert export["messages"] == messages

        # Another principal's session and an unknown one are not found.
        for path in (f"/sessions/{sid}/export", f"/sessions/{uuid.uuid4()}/export"):
            response = await client.get(path, headers={"X-API-Key": BOB})
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "not_found"


async def test_branches_are_exported_after_a_fork(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    app = _app(database_dsn)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=30) as client,
    ):
        sid = str(uuid.uuid4())
        for question in QUESTIONS:
            await chat(client, sid, question)
        before_fork = await _stored(db, sid)
        await fork_after_first_turn(app.state.runner.graph, sid, "Let me ask that differently")
        after_fork = await _stored(db, sid)
        assert after_fork[:-1] == before_fork[:5] and after_fork[-1]["content"] == (
            "Let me ask that differently"
        )
        # The second turn's messages now live in another branch (conversation_messages).
        assert (
            await db.fetchval(
                "SELECT count(*) FROM conversation_messages WHERE session_id = $1", uuid.UUID(sid)
            )
            == 2
        )

        export = (await client.get(f"/sessions/{sid}/export?branches=true")).json()
        assert export["messages"] == after_fork
        branches = export["branches"]
        assert [b["shown"] for b in branches] == [True, False]
        assert branches[0]["messages"] == after_fork
        assert branches[1]["messages"] == before_fork  # the branch the fork left
        assert branches[0]["checkpoint_id"] > branches[1]["checkpoint_id"]

        markdown = (await client.get(f"/sessions/{sid}/export?format=markdown&branches=1")).text
    assert "## Other branches" in markdown
    tail = markdown.split("## Other branches", 1)[1]
    assert "_Shares the first 5 messages of the transcript, then:_" in tail
    assert "My name is Ana 🌧" in tail and "Let me ask that differently" not in tail


async def test_markdown_by_format_or_accept_header(database_dsn: str) -> None:
    app = _app(database_dsn)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=30) as client,
    ):
        sid = str(uuid.uuid4())
        for question in QUESTIONS:
            await chat(client, sid, question)
        by_query = await client.get(f"/sessions/{sid}/export", params={"format": "markdown"})
        by_accept = await client.get(
            f"/sessions/{sid}/export", headers={"Accept": "text/markdown, application/json;q=0.5"}
        )
        json_wins = await client.get(
            f"/sessions/{sid}/export", headers={"Accept": "text/markdown;q=0.2, application/json"}
        )
        query_wins = await client.get(
            f"/sessions/{sid}/export?format=json", headers={"Accept": "text/markdown"}
        )
        bad = await client.get(f"/sessions/{sid}/export?format=pdf")
    for response in (by_query, by_accept):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/markdown; charset=utf-8"
        assert response.headers["content-disposition"].endswith(f'vera-{sid}.md"')
    assert json_wins.headers["content-type"] == query_wins.headers["content-type"]
    assert json_wins.headers["content-type"] == "application/json"
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"

    text = by_query.text
    assert text.startswith(f"# {QUESTIONS[0]}\n")
    assert f"- Session: `{sid}`" in text and "- Messages: 7" in text
    assert "**You**" in text and "**Vera**" in text
    assert '> Calls `get_weather` with `{"city": "Montevideo"}`' in text
    assert "**Tool `get_stock_price`**" in text and '"ticker": "AAPL"' in text
    # The user's own text, fences and all, stays as written.
    assert "My name is Ana 🌧\nand this line has `code` and ```fences```" in text

    def undated(markdown: str) -> str:
        return "\n".join(line for line in markdown.splitlines() if "- Exported: " not in line)

    assert undated(text) == undated(by_accept.text)
