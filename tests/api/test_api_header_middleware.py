"""The app refuses a request head over `MAX_HEADER_BYTES`, or with more than `MAX_HEADERS`
fields, with 431 in JSON under any server (issue 23, point 9): here uvicorn's default
protocol (httptools in development), which has no limit of its own."""

from __future__ import annotations

from tests.api_harness import api_client, settings_for


async def test_the_limits_hold_under_any_server(database_dsn: str) -> None:
    """The app itself refuses what the protocol did not (another server, e.g. uvicorn with
    httptools in development)."""
    async with api_client(settings_for(database_dsn), timeout=30) as client:
        big = await client.get("/sessions", headers={"X-Big": "a" * 40_000})
        many = await client.get("/sessions", headers={f"X-H{i}": "1" for i in range(150)})
        fine = await client.get("/sessions", headers={f"X-H{i}": "1" for i in range(50)})
    for refused in (big, many):
        assert refused.status_code == 431, refused.text
        assert refused.json()["code"] == "headers_too_large"
    assert fine.status_code == 200
