"""Bad input, authentication, rate limit, CORS and logs of the HTTP API."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from src.api.app import create_app
from tests.api_harness import api_client, chat, every_endpoint, serve, settings_for
from tests.fakes import FakeModel

ROOT = Path(__file__).resolve().parents[2]
SID = "3d0c6a52-9c4e-4f7e-8a1b-5e2f7d9c1a00"
JSON = {"content-type": "application/json"}


@pytest.fixture
async def client(database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(database_dsn, max_body_bytes=200_000), model=FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


async def conversation_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM conversations")
    finally:
        await conn.close()


def chunked(body: bytes):
    """A body sent in chunks, without Content-Length (a fresh generator per request)."""

    async def parts():
        for i in range(0, len(body), 50_000):
            yield body[i : i + 50_000]

    return parts


BAD_INPUTS = [
    # (case, request kwargs, status, code, field named in the message)
    ("non-uuid session", {"json": {"session_id": "42", "message": "hi"}}, 422, "session_id"),
    ("missing session", {"json": {"message": "hi"}}, 422, "session_id"),
    ("missing message", {"json": {"session_id": SID}}, 422, "message"),
    ("empty message", {"json": {"session_id": SID, "message": ""}}, 422, "message"),
    ("whitespace", {"json": {"session_id": SID, "message": " \n\t "}}, 422, "message"),
    ("oversized", {"json": {"session_id": SID, "message": "x" * 32_001}}, 422, "message"),
    ("not a string", {"json": {"session_id": SID, "message": 42}}, 422, "message"),
    (
        "unknown field",
        {"json": {"session_id": SID, "message": "hi", "role": "system"}},
        422,
        "role",
    ),
    ("array body", {"json": [SID, "hi"]}, 422, "body"),
    (
        "malformed json",
        {"content": b'{"session_id": "' + SID.encode() + b'", "message": ', "headers": JSON},
        422,
        "body",
    ),
    (
        "wrong content type",
        {"content": b"message=hi", "headers": {"content-type": "text/plain"}},
        415,
        "JSON",
    ),
    ("body over limit", {"json": {"session_id": SID, "message": "x" * 250_000}}, 413, "bytes"),
    (
        "chunked over limit",
        {"content": chunked(b"{" + b" " * 250_000 + b"}"), "headers": JSON},
        413,
        "bytes",
    ),
]


@pytest.mark.parametrize("path", ["/chat", "/chat/complete"])
@pytest.mark.parametrize(
    ("case", "kwargs", "status", "named"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
async def test_bad_input_is_a_clear_4xx_and_stores_nothing(
    client: httpx.AsyncClient, database_dsn: str, path, case, kwargs, status, named
) -> None:
    before = await conversation_count(database_dsn)
    if callable(kwargs.get("content")):
        kwargs = {**kwargs, "content": kwargs["content"]()}
    response = await client.post(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"code", "message"} and named in body["message"]
    assert "Traceback" not in response.text
    if status == 422:
        assert body["code"] == "invalid_request" and body["details"]
    assert await conversation_count(database_dsn) == before
    assert (await client.get(f"/sessions/{SID}/messages")).status_code == 404


async def test_message_is_trimmed_and_32000_chars_accepted(client: httpx.AsyncClient) -> None:
    sid = str(uuid.uuid4())
    # The limit counts the message as sent (as the OpenAPI schema's maxLength says).
    text = "é" * 31_998
    response = await client.post(
        "/chat/complete", json={"session_id": sid, "message": f" {text}\n"}
    )
    assert response.status_code == 200, response.text
    transcript = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
    assert transcript[0]["content"] == text


async def test_api_key_required_everywhere_but_health(database_dsn: str) -> None:
    # Twenty wrong keys in a row: over the default failed-auth budget of one address.
    settings = settings_for(database_dsn, api_key="k3y-for-tests", auth_failures_per_minute=100)
    async with api_client(settings) as anonymous:
        assert (await anonymous.get("/health")).status_code == 200
        sid = str(uuid.uuid4())
        body = {"session_id": sid, "message": "hi"}
        for method, path, kwargs in every_endpoint(sid, body):
            for headers in [
                {},
                {"X-API-Key": "wrong"},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "k3y-for-tests"},
            ]:
                response = await anonymous.request(method, path, headers=headers, **kwargs)
                assert response.status_code == 401, (path, headers)
                assert response.json()["code"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
        ok = await anonymous.post(
            "/chat/complete", json=body, headers={"X-API-Key": "k3y-for-tests"}
        )
        assert ok.status_code == 200
        bearer = await anonymous.get(
            f"/sessions/{sid}/messages", headers={"Authorization": "Bearer k3y-for-tests"}
        )
        assert bearer.status_code == 200


async def test_rate_limit_answers_429_with_retry_after(database_dsn: str) -> None:
    settings = settings_for(database_dsn, rate_limit_per_minute=3)
    async with api_client(settings) as client:
        path = f"/sessions/{uuid.uuid4()}/messages"
        assert [(await client.get(path)).status_code for _ in range(3)] == [404] * 3
        limited = await client.get(path)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        limited_chat = await client.post(
            "/chat", json={"session_id": str(uuid.uuid4()), "message": "hi"}
        )
        assert limited_chat.status_code == 429
        assert (await client.get("/health")).status_code == 200  # never limited


async def test_cors_allows_only_configured_origins(database_dsn: str) -> None:
    settings = settings_for(database_dsn, cors_origins="https://app.example.com, https://x.test")
    assert settings.cors_origins == ["https://app.example.com", "https://x.test"]
    async with api_client(settings) as client:
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = await client.options(
            "/chat", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        denied = await client.options("/chat", headers={"Origin": "https://evil.test", **preflight})
        assert "access-control-allow-origin" not in denied.headers


async def test_docs_can_be_turned_off(database_dsn: str) -> None:
    settings = settings_for(database_dsn, api_docs_enabled=False)
    async with api_client(settings) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404


async def test_one_log_line_per_turn_without_secrets_or_prompt(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        database_dsn,
        api_key="sk-very-secret-key",
        postgres_memory_password="pw-never-logged",
        openai_api_key="sk-openai-never-logged",
    )
    caplog.set_level(logging.INFO)
    sid = str(uuid.uuid4())
    prompt = "What is the stock price of NVDA? confidential-prompt-words"
    async with serve(create_app(settings, model=FakeModel())) as url:
        headers = {"X-API-Key": "sk-very-secret-key"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            events = await chat(client, sid, prompt)
    run_id = events[0].data["run_id"]
    turn_lines = [r.getMessage() for r in caplog.records if r.name == "vera.turns"]
    assert len(turn_lines) == 1
    line = turn_lines[0]
    for part in (
        f"session_id={sid}",
        f"run_id={run_id}",
        "status=ok",
        "latency_ms=",
        "tool_calls=get_stock_price",
        "input_tokens=",
        "total_tokens=",
    ):
        assert part in line
    everything = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (
        "sk-very-secret-key",
        "pw-never-logged",
        "sk-openai-never-logged",
        "confidential-prompt-words",
    ):
        assert secret not in everything


async def stored_rows(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        owners = await conn.fetchval("SELECT count(*) FROM session_owners")
        return owners, await conn.fetchval("SELECT count(*) FROM conversations")
    finally:
        await conn.close()


FRESH = "5b1e4c2a-7d3f-4a9e-9c61-2f8d0e7a4b10"
RUN = '{"assistant_id":"vera","input":{"messages":[{"role":"user","content":"hi"}]},'
NON_FINITE = [
    # (case, method, path, body, field named)
    ("1e999 thread", "POST", "/threads", '{"metadata":{"n":1e999}}', "metadata.n"),
    ("NaN thread", "POST", "/threads", '{"metadata":{"n":NaN}}', "metadata.n"),
    ("-Infinity search", "POST", "/threads/search", '{"metadata":{"n":-Infinity}}', "metadata.n"),
    (
        "1e999 run",
        "POST",
        f"/threads/{FRESH}/runs/wait",
        RUN + '"if_not_exists":"create","config":{"configurable":{"x":[1,2e999]}}}',
        "config.configurable.x.1",
    ),
    ("NaN chat", "POST", "/chat", f'{{"session_id":"{SID}","message":NaN}}', "message"),
    ("Infinity ttl", "PUT", f"/sessions/{SID}/ttl", '{"ttl_minutes":Infinity}', "ttl_minutes"),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "named"), NON_FINITE, ids=[c[0] for c in NON_FINITE]
)
async def test_a_non_finite_number_is_invalid_json_422_on_every_route(
    client: httpx.AsyncClient, database_dsn: str, case, method, path, body, named
) -> None:
    """`NaN`, `Infinity` and `1e999` (which Python's parser reads as infinity) are no JSON:
    refused before any route runs, naming the field, on a connection that stays usable."""
    before = await stored_rows(database_dsn)
    response = await client.request(method, path, content=body.encode(), headers=JSON)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["code"] == "invalid_request"
    assert answer["message"].startswith("Invalid JSON in request body")
    assert named in answer["message"]
    assert [d["field"] for d in answer["details"]] == [named]
    assert await stored_rows(database_dsn) == before
    assert (await client.get(f"/threads/{FRESH}")).status_code == 404
    assert (await client.post("/threads", json={"metadata": {"n": 1e300}})).status_code == 200
