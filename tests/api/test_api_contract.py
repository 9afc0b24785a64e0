"""The API's contract at its edges (issue 12, points 4-7): authentication before anything
else, the failed-auth limit, production keys, forwarded headers, the shared rate limit,
bounded error bodies, the access log, slow bodies, CORS preflights and the OpenAPI schema."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from src.api.app import create_app
from src.config.settings import SettingsError
from tests.api_harness import api_client, serve, settings_for
from tests.fakes import FakeModel

ROOT = Path(__file__).resolve().parents[2]
KEY = "contract-key-0123456789abcdefghijklmn"


# -- 4. authentication first ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"session_id": ', "application/json"),  # malformed JSON
        (b'{"message": "\xff\xfe"}', "application/json"),  # not UTF-8
        (b"message=hi", "application/x-www-form-urlencoded"),  # not JSON
        (b"x" * 300_000, "application/json"),  # over MAX_BODY_BYTES
    ],
)
async def test_a_request_without_a_valid_key_gets_401_whatever_its_body(
    database_dsn: str, content: bytes, content_type: str
) -> None:
    settings = settings_for(database_dsn, api_key=KEY)
    async with api_client(settings) as client:
        for headers in [{}, {"X-API-Key": "wrong"}]:
            response = await client.post(
                "/chat", content=content, headers={"Content-Type": content_type, **headers}
            )
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "unauthorized"


async def test_failed_authentications_are_rate_limited_per_address(database_dsn: str) -> None:
    settings = settings_for(database_dsn, api_key=KEY, auth_failures_per_minute=5)
    async with api_client(settings) as client:
        statuses = [
            (await client.get("/sessions", headers={"X-API-Key": f"guess-{n}"})).status_code
            for n in range(8)
        ]
        assert statuses == [401] * 5 + [429] * 3
        # Blocked means blocked: the right key can't be told apart from a wrong one now.
        right = await client.get("/sessions", headers={"X-API-Key": KEY})
        assert right.status_code == 429
        assert right.json()["code"] == "rate_limited"
        assert 1 <= int(right.headers["Retry-After"]) <= 60


def test_production_keys_are_long_printable_ascii(database_dsn: str) -> None:
    for key, problem in [
        ("short-key", "at least 32"),
        ("é" * 40, "printable ASCII"),
        ("has space " * 4, "printable ASCII"),
    ]:
        with pytest.raises(SettingsError, match=problem):
            create_app(settings_for(database_dsn, environment="production", api_key=key))
    create_app(settings_for(database_dsn, environment="production", api_key=KEY))


async def test_docs_are_off_by_default_in_production(database_dsn: str) -> None:
    settings = settings_for(database_dsn, environment="production", api_key=KEY)
    async with api_client(settings) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
    settings = settings_for(database_dsn, environment="development")
    async with api_client(settings) as client:
        assert (await client.get("/openapi.json")).status_code == 200


# -- 5. client address, 7. the access log ---------------------------------------------


async def test_forwarded_for_is_believed_from_a_configured_proxy(database_dsn: str) -> None:
    settings = settings_for(database_dsn, rate_limit_per_minute=3, forwarded_allow_ips="127.0.0.1")
    async with api_client(settings) as client:
        statuses = [
            (
                await client.get("/sessions", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            ).status_code
            for i in range(4)
        ]
    assert statuses == [200, 200, 200, 200]  # four addresses, four budgets


# -- 6. one rate limit for several workers ----------------------------------------------


async def test_a_memory_budget_is_per_process(database_dsn: str) -> None:
    settings = settings_for(database_dsn, rate_limit_per_minute=2)
    async with api_client(settings) as one, api_client(settings) as two:
        assert [(await c.get("/sessions")).status_code for c in (one, one, two, two, one)] == [
            200,
            200,
            200,
            200,
            429,
        ]


def test_an_unknown_rate_limit_storage_is_refused_at_start(database_dsn: str) -> None:
    with pytest.raises(SettingsError, match="RATE_LIMIT_STORAGE_URI"):
        create_app(settings_for(database_dsn, rate_limit_storage_uri="nosuch://x"))


# -- 7. smaller contract fixes ----------------------------------------------------------


async def test_422_never_echoes_values_or_unbounded_names(database_dsn: str) -> None:
    async with api_client(settings_for(database_dsn)) as client:
        body = {
            "session_id": str(uuid.uuid4()),
            "message": "hi",
            "password=hunter2": "hunter2",
            "f" * 200_000: 1,
        }
        response = await client.post("/chat", json=body)
        assert response.status_code == 422
        assert len(response.content) < 2_000
        assert "hunter2" not in response.text
        wrong = await client.post("/chat", json={"session_id": "secret-" * 5000, "message": 1})
        assert wrong.status_code == 422 and len(wrong.content) < 2_000
        assert "secret-secret" not in wrong.text


async def test_a_body_that_never_arrives_times_out(database_dsn: str) -> None:
    settings = settings_for(database_dsn, request_body_timeout_seconds=0.5)
    async with serve(create_app(settings, model=FakeModel())) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"message": '
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=30)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body)["code"] == "request_timeout"


async def test_a_refused_cors_preflight_is_json_403_with_security_headers(
    database_dsn: str,
) -> None:
    settings = settings_for(database_dsn, cors_origins="https://app.example")
    preflight = {"Access-Control-Request-Method": "POST"}
    async with api_client(settings) as client:
        refused = await client.options(
            "/chat", headers={"Origin": "https://evil.example", **preflight}
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        assert refused.headers["x-content-type-options"] == "nosniff"
        allowed = await client.options(
            "/chat", headers={"Origin": "https://app.example", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    # No CORS origins configured: every preflight is refused the same way.
    async with api_client(settings_for(database_dsn)) as client:
        refused = await client.options(
            "/chat", headers={"Origin": "https://app.example", **preflight}
        )
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


async def test_openapi_schema_matches_the_server(database_dsn: str) -> None:
    async with api_client(settings_for(database_dsn)) as client:
        spec = (await client.get("/openapi.json")).json()
    message = spec["components"]["schemas"]["ChatRequest"]["properties"]["message"]
    assert message["minLength"] == 1 and message["maxLength"] == 32_000
    assert "pattern" in message
    for path in ("/chat", "/chat/complete"):
        assert "400" in spec["paths"][path]["post"]["responses"], path
    text = json.dumps(spec)
    assert "#/$defs/" not in text
    # The key is documented exactly when the server checks one.
    assert "securitySchemes" not in spec["components"] and '"security"' not in text
    async with api_client(settings_for(database_dsn, api_key=KEY)) as client:
        keyed = (await client.get("/openapi.json")).json()
    assert "X-API-Key" in json.dumps(keyed["components"]["securitySchemes"])
