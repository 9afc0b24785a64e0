"""One error catalogue for every answer, and one way to delete a session (issue 14, points
4 and 5)."""

from __future__ import annotations

import typing
import uuid

from src.api.error_catalogue import CATALOGUE
from src.api.schemas import ErrorCode
from tests.api_harness import api_client, chat, settings_for


def test_every_error_code_has_one_status_and_message() -> None:
    assert set(CATALOGUE) == set(typing.get_args(ErrorCode))
    for code, kind in CATALOGUE.items():
        assert 400 <= kind.status < 600, code
        assert kind.message.endswith("."), code


async def test_a_deleted_session_id_starts_afresh_in_the_same_process(database_dsn: str) -> None:
    # The delete goes through the checkpointer: its cached messages of the session go with
    # the rows, so a new conversation under the same id shows none of the old one.
    async with api_client(settings_for(database_dsn)) as client:
        sid = str(uuid.uuid4())
        await chat(client, sid, "first life: what is the weather in Lima?")
        await chat(client, sid, "and in Quito?")
        assert (await client.delete(f"/sessions/{sid}")).status_code == 204
        await chat(client, sid, "second life")
        messages = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["second life"]
    assert len(messages) == 2
