"""Request heads are bounded (issue 23, point 9): the real server (`python -m src.api`)
answers a head over `MAX_HEADER_BYTES`, or with more than `MAX_HEADERS` fields, with 431
and a JSON body, and stops reading it: a 32 MB header is cut off, not buffered. (The same
limits under another server: tests/api/test_api_header_middleware.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import server_processes

KEY = "header-limits-key-0123456789abcdefghij"


@pytest.fixture(scope="module")
def server(database_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`python -m src.api` with its default limits, behind an API key; its port."""
    log = tmp_path_factory.mktemp("limits") / "server.log"
    with server_processes(database_dsn, [log], API_KEY=KEY) as (url,):
        yield int(url.rsplit(":", 1)[1])


async def exchange(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request head; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)  # the server closes
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(
        line.decode("latin-1").lower().split(": ", 1) for line in header_block.split(b"\r\n")
    )
    return int(status_line.split()[1]), headers, body


def request(*fields: bytes) -> bytes:
    """A GET /sessions head with the key, `fields`, and `Connection: close`."""
    fields = (b"Host: x", b"X-API-Key: " + KEY.encode(), *fields, b"Connection: close")
    return b"GET /sessions HTTP/1.1\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


async def test_a_large_head_gets_431_in_json(server: int) -> None:
    status, headers, body = await exchange(server, request(b"X-Big: " + b"a" * 64 * 1024))
    assert status == 431, body
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["code"] == "headers_too_large" and "32,768 bytes" in answer["message"]


async def test_too_many_headers_get_431_in_json(server: int) -> None:
    many = [b"X-H%d: 1" % i for i in range(200)]
    status, headers, body = await exchange(server, request(*many))
    assert status == 431, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "headers_too_large"
    assert "100 header fields" in json.loads(body)["message"]


async def test_heads_within_the_limits_are_served(server: int) -> None:
    fields = [b"X-H%d: %s" % (i, b"v" * 200) for i in range(90)]  # ~20 KB in 93 fields
    status, _, body = await exchange(server, request(*fields))
    assert status == 200, body


async def test_a_32_mb_header_is_cut_off_not_read(server: int) -> None:
    """Without a limit the server read all 32 MB (and answered 200); now it answers 431
    and closes once the head passes the limit, so the sender is stopped early."""
    _, writer = await asyncio.open_connection("127.0.0.1", server)
    sent, chunk = 0, b"a" * 65536
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    try:
        while sent < 32 * 1024 * 1024:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), timeout=30)
            sent += len(chunk)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    assert sent < 32 * 1024 * 1024
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{server}/health")).is_success
