"""Regenerate, edit and the "< n/m >" switch through the real server (issue 25, point 2):
each fork makes its branch the transcript (`conversations.messages`), the branch it left
stays stored once and can be shown again, a retry of a fork's `turn_id` on another worker
does not fork twice, and wrong requests get JSON errors naming the problem."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from src.api.app import create_app
from tests.api_harness import Event, chat, parse_sse, serve, settings_for, worker
from tests.fakes import FakeModel, ProviderError

ALICE = "alice-key-0123456789abcdefghijklmnop"
BOB = "bob-key-0123456789abcdefghijklmnopqrs"


async def stream(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[Event]:
    async with client.stream("POST", path, json=body) as response:
        text = (await response.aread()).decode()
    assert response.status_code == 200, text
    return parse_sse(text)[0]


async def transcript(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    response = await client.get(f"/sessions/{sid}/messages")
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def stored(db: asyncpg.Connection, sid: str) -> tuple[list[str], int, int]:
    """`conversations.messages`' ids, how many messages the session stores in all, and
    how many distinct ones."""
    shown = json.loads(
        await db.fetchval("SELECT messages::text FROM conversations WHERE session_id = $1", sid)
    )
    others = await db.fetch(
        "SELECT element->>'id' AS id FROM conversation_messages WHERE session_id = $1", sid
    )
    ids = [m["id"] for m in shown] + [r["id"] for r in others]
    return [m["id"] for m in shown], len(ids), len(set(ids))


def alternatives(messages: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    return [
        (i, m["alternatives"]["index"], m["alternatives"]["count"])
        for i, m in enumerate(messages)
        if "alternatives" in m
    ]


async def test_regenerate_edit_and_switch_keep_every_branch_once(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    settings = settings_for(database_dsn)
    async with worker(settings, FakeModel()) as (_, one), worker(settings, FakeModel()) as (_, two):
        sid = str(uuid.uuid4())
        await chat(one, sid, "Hello")
        await chat(one, sid, "What's the weather in Montevideo?")
        first = await transcript(one, sid)
        assert alternatives(first) == []
        question = max(i for i, m in enumerate(first) if m["role"] == "user")

        events = await stream(one, f"/sessions/{sid}/regenerate", {"turn_id": "regen-1"})
        assert events[0].event == "session" and events[-1].event == "done"
        assert events[0].data["turn_id"] == "regen-1" and not events[0].data["resumed"]
        regenerated = await transcript(two, sid)
        assert [m["id"] for m in regenerated[: question + 1]] == [
            m["id"] for m in first[: question + 1]
        ]
        assert regenerated[question + 1]["id"] != first[question + 1]["id"]
        assert alternatives(regenerated) == [(question + 1, 2, 2)]
        ids, count, distinct = await stored(db, sid)
        assert ids == [m["id"] for m in regenerated] and count == distinct
        assert count == len(first) + len(regenerated) - question - 1  # the question once

        # A retry of the regenerate on the other worker replays it: no second fork.
        again = await stream(two, f"/sessions/{sid}/regenerate", {"turn_id": "regen-1"})
        assert again[0].data["resumed"] and again[-1].event == "done"
        assert await stored(db, sid) == (ids, count, distinct)

        # Edit the first question: a new branch from the start of the session.
        edit_path = f"/sessions/{sid}/messages/{first[0]['id']}/edit"
        events = await stream(two, edit_path, {"message": "Price of AAPL?", "turn_id": "ed-1"})
        assert events[-1].event == "done"
        edited = await transcript(one, sid)
        assert edited[0]["content"] == "Price of AAPL?" and alternatives(edited) == [(0, 2, 2)]
        assert await stream(one, edit_path, {"message": "Price of AAPL?", "turn_id": "ed-1"})
        before = count
        ids, count, distinct = await stored(db, sid)
        assert ids == [m["id"] for m in edited] and count == distinct
        assert count == before + len(edited)

        # < 1/2 > on the first message: back to the regenerated branch, then its first answer.
        response = await one.post(
            f"/sessions/{sid}/messages/{edited[0]['id']}/switch", json={"index": 1}
        )
        assert response.status_code == 200, response.text
        assert [m["id"] for m in response.json()["messages"]] == [m["id"] for m in regenerated]
        assert alternatives(response.json()["messages"]) == [(0, 1, 2), (question + 1, 2, 2)]
        answer = regenerated[question + 1]["id"]
        response = await two.post(f"/sessions/{sid}/messages/{answer}/switch", json={"index": 1})
        assert [m["id"] for m in response.json()["messages"]] == [m["id"] for m in first]
        assert (await stored(db, sid))[0] == [m["id"] for m in first]
        assert (await stored(db, sid))[1:] == (count, count)  # a switch stores no message

        # The next message goes on from the branch shown.
        await chat(two, sid, "Thanks")
        after = await transcript(one, sid)
        assert [m["id"] for m in after[: len(first)]] == [m["id"] for m in first]
        assert after[len(first)]["content"] == "Thanks"


async def test_wrong_fork_requests_get_json_errors(database_dsn: str) -> None:
    settings = settings_for(database_dsn, api_keys=f"alice:{ALICE},bob:{BOB}")
    async with serve(create_app(settings, model=FakeModel())) as url:
        alice = httpx.AsyncClient(base_url=url, headers={"X-API-Key": ALICE}, timeout=30)
        bob = httpx.AsyncClient(base_url=url, headers={"X-API-Key": BOB}, timeout=30)
        async with alice, bob:
            sid = str(uuid.uuid4())
            await chat(alice, sid, "Hello")
            messages = await transcript(alice, sid)
            user, answer = messages[0]["id"], messages[-1]["id"]
            cases = [
                (bob, f"/sessions/{sid}/regenerate", {}, 404, "not_found"),
                (bob, f"/sessions/{sid}/messages/{user}/edit", {"message": "x"}, 404, "not_found"),
                (bob, f"/sessions/{sid}/messages/{user}/switch", {"index": 1}, 404, "not_found"),
                (alice, f"/sessions/{uuid.uuid4()}/regenerate", {}, 404, "not_found"),
                (alice, "/sessions/nope/regenerate", {}, 422, "invalid_request"),
                (
                    alice,
                    f"/sessions/{sid}/messages/nope/edit",
                    {"message": "x"},
                    404,
                    "message_not_found",
                ),
                (
                    alice,
                    f"/sessions/{sid}/messages/{answer}/edit",
                    {"message": "x"},
                    422,
                    "not_a_user_message",
                ),
                (
                    alice,
                    f"/sessions/{sid}/messages/{user}/edit",
                    {"message": " "},
                    422,
                    "invalid_request",
                ),
                (
                    alice,
                    f"/sessions/{sid}/messages/{user}/edit",
                    {"message": "x", "turn_id": "!"},
                    422,
                    "invalid_request",
                ),
                (
                    alice,
                    f"/sessions/{sid}/messages/{user}/switch",
                    {"index": 2},
                    422,
                    "no_such_alternative",
                ),
                (
                    alice,
                    f"/sessions/{sid}/messages/{user}/switch",
                    {"index": 0},
                    422,
                    "invalid_request",
                ),
                (
                    alice,
                    f"/sessions/{sid}/messages/nope/switch",
                    {"index": 1},
                    404,
                    "message_not_found",
                ),
            ]
            for client, path, body, status, code in cases:
                response = await client.post(path, json=body)
                assert response.status_code == status, (path, body, response.text)
                assert response.json()["code"] == code, (path, body, response.text)
                assert response.json()["message"]
            assert [m["id"] for m in await transcript(alice, sid)] == [user, answer]


async def test_a_failed_regenerate_retried_on_the_other_worker_forks_once(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    settings = settings_for(database_dsn)
    failing = FakeModel()
    async with worker(settings, failing) as (_, one), worker(settings, FakeModel()) as (_, two):
        sid = str(uuid.uuid4())
        await chat(one, sid, "Hello")
        first = await transcript(one, sid)
        failing.error = ProviderError(503)
        events = await stream(one, f"/sessions/{sid}/regenerate", {"turn_id": "regen-2"})
        assert events[-1].event == "error" and events[-1].data["code"] == "llm_unavailable"

        again = await stream(two, f"/sessions/{sid}/regenerate", {"turn_id": "regen-2"})
        assert again[0].data["resumed"] and again[-1].event == "done"
        after = await transcript(two, sid)
        assert after[0]["id"] == first[0]["id"] and after[1]["id"] != first[1]["id"]
        assert alternatives(after) == [(1, 2, 2)]
        assert (await stored(db, sid))[1:] == (3, 3)  # the question once, two answers
        forks = await db.fetchval(
            "SELECT count(*) FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = '' "
            "AND metadata->>'turn_id' = 'regen-2' AND metadata->>'source' = 'input'",
            sid,
        )
        assert forks == 1  # resumed where it failed, not forked again
