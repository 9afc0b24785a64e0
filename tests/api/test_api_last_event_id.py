"""`Last-Event-ID` is parsed strictly and its format is documented (issue 23, point 10):
every id the server sends matches the documented pattern and resumes the stream; anything
else is a 422 naming the header, never a 500."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.api_harness import api_client, chat, parse_sse, settings_for


@pytest.mark.parametrize(
    "value",
    [
        "{turn}:" + "1" * 4301,  # past int()'s digit limit
        "{turn}:" + "9" * 10,  # past the event numbers' range
        "{turn}:2147483648",
        "other:3",  # another turn's event
        "{turn}:-1",
        "{turn}:1.0",
        "{turn}",
        "{turn}: 1",
        "{turn}:\u00b2",  # a digit int() takes, not an ASCII one
    ],
)
async def test_a_bad_last_event_id_is_a_422_never_a_500(database_dsn: str, value: str) -> None:
    async with api_client(settings_for(database_dsn), timeout=30) as client:
        sid = str(uuid.uuid4())
        turn = (await chat(client, sid, "Hello"))[0].data["turn_id"]
        header = value.format(turn=turn).encode("latin-1")
        response = await client.get(
            f"/sessions/{sid}/turns/{turn}/events", headers={"Last-Event-ID": header}
        )
        assert response.status_code == 422, response.text[:300]
        assert response.json()["code"] == "invalid_request"
        assert "last-event-id" in response.json()["message"].lower()


async def test_the_documented_format_is_the_one_sent_and_resumes_the_stream(
    database_dsn: str,
) -> None:
    async with api_client(settings_for(database_dsn), timeout=30) as client:
        spec = (await client.get("/openapi.json")).json()
        operation = spec["paths"]["/sessions/{session_id}/turns/{turn_id}/events"]["get"]
        (header,) = [p for p in operation["parameters"] if p["name"].lower() == "last-event-id"]
        pattern = header["schema"]["pattern"]
        assert "<turn_id>:<n>" in header["description"]
        sid = str(uuid.uuid4())
        events = await chat(client, sid, "Weather in Paris?")
        turn = events[0].data["turn_id"]
        assert all(re.search(pattern, event.id or "") for event in events)
        replay = await client.get(
            f"/sessions/{sid}/turns/{turn}/events", headers={"Last-Event-ID": events[1].id or ""}
        )
        assert replay.status_code == 200
        assert [e.id for e in parse_sse(replay.text)[0]] == [e.id for e in events[2:]]
