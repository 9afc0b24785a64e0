"""A request's cost grows linearly with its body (issue 23, point 8): a body full of
unknown keys, or of anything else the schema refuses, is answered 422 at a cost
proportional to its size, so no body under `MAX_BODY_BYTES` can hold the event loop.

Costs are CPU time of the thread running both the server and the client (in-process
uvicorn), compared as a ratio within one run: 8x the keys must cost well under 64x (what
the quadratic de-duplication of the validation errors cost), whatever the machine's load.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api_harness import api_client, settings_for

SMALL, LARGE = 1_000, 8_000
REPEATS = 3


def unknown_keys(n: int) -> dict[str, Any]:
    return {"session_id": str(uuid.uuid4()), "message": "hi", **{f"k{i:05d}": 0 for i in range(n)}}


def unknown_nested_keys(n: int) -> dict[str, Any]:
    return {"session_id": str(uuid.uuid4()), "message": {f"k{i:05d}": [i] for i in range(n)}}


def long_unknown_names(n: int) -> dict[str, Any]:
    return {"session_id": "x", **{f"{i:05d}" + "n" * 20: i for i in range(n)}}


async def cpu_cost(client: httpx.AsyncClient, body: dict[str, Any]) -> float:
    """CPU seconds of this thread for one request of `body` (the best of `REPEATS`)."""
    content = json.dumps(body).encode()
    costs = []
    for _ in range(REPEATS):
        started = time.thread_time()
        response = await client.post(
            "/chat/complete", content=content, headers={"Content-Type": "application/json"}
        )
        costs.append(time.thread_time() - started)
        assert response.status_code == 422, response.text[:300]
        assert len(response.json()["details"]) <= 10
    return min(costs)


@pytest.mark.parametrize("shape", [unknown_keys, unknown_nested_keys, long_unknown_names])
async def test_refusing_a_body_costs_linearly_in_its_size(
    database_dsn: str, shape: Callable[[int], dict[str, Any]]
) -> None:
    settings = settings_for(database_dsn, max_body_bytes=1_000_000, rate_limit_per_minute=1000)
    async with api_client(settings, timeout=300) as client:
        await cpu_cost(client, shape(SMALL))  # warm-up
        small, large = await cpu_cost(client, shape(SMALL)), await cpu_cost(client, shape(LARGE))
    ratio = large / small
    assert ratio < 20, f"{LARGE} keys cost {ratio:.1f}x {SMALL} keys ({large:.3f}s vs {small:.3f}s)"
