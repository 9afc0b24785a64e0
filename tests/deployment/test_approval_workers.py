"""Approve before acting across server processes (issue 25, point 3): a turn paused on
worker A for the approval of `get_stock_price` is resumed on worker B and the tool's API
(a local fake Finnhub that counts its requests) is called exactly once, also when the
resume is sent again, or twice at once to both workers; a denied call never reaches it and
the model is told, in a history the strict fake OpenAI server accepts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.api_harness import Event, parse_sse, samples, serve, value
from tests.fake_openai import KEY as OPENAI_KEY
from tests.fake_openai import MODEL, FakeOpenAI, Reply
from tests.processes import server_processes

QUOTE = {"c": 412.5, "d": 1.25, "dp": 0.3, "t": 1_700_000_000}
FINNHUB_KEY = "finnhub-test-key"


class FakeFinnhub:
    """Finnhub's `/quote`, counting the quotes it served per ticker."""

    def __init__(self) -> None:
        self.quotes: list[str] = []

    async def _quote(self, request: Request) -> JSONResponse:
        assert request.query_params["token"] == FINNHUB_KEY
        self.quotes.append(request.query_params["symbol"])
        return JSONResponse(QUOTE)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        async with serve(Starlette(routes=[Route("/quote", self._quote)])) as url:  # type: ignore[arg-type]
            yield url


async def post(url: str, path: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await client.post(path, json=body)


def events(response: httpx.Response) -> list[Event]:
    assert response.status_code == 200, response.text
    return parse_sse(response.text)[0]


def stock_call(call_id: str) -> Reply:
    return Reply(tool_calls=[(call_id, "get_stock_price", '{"ticker": "MSFT"}')])


async def test_a_turn_paused_on_one_worker_runs_its_tool_once_on_the_other(
    database_dsn: str, tmp_path: Path
) -> None:
    openai, finnhub = FakeOpenAI(), FakeFinnhub()
    async with openai.serve() as openai_url, finnhub.serve() as finnhub_url:
        env = {
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_url,
            "AGENT_MODEL": MODEL,
            "AGENT_CONFIRM_TOOLS": "get_stock_price",
            "STOCK_PROVIDER": "finnhub",
            "FINNHUB_API_KEY": FINNHUB_KEY,
            "FINNHUB_BASE_URL": finnhub_url,
            "RATE_LIMIT_PER_MINUTE": "10000",
        }
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        with server_processes(database_dsn, logs, **env) as [a, b]:
            # Approved on B after pausing on A: one quote.
            sid = str(uuid.uuid4())
            openai.add(stock_call("call_1"), Reply(text="MSFT is at 412.5 USD."))
            paused = events(await post(a, "/chat", {"session_id": sid, "message": "MSFT?"}))
            assert [e.event for e in paused] == ["session", "tool_call", "interrupt"]
            turn_id = paused[0].data["turn_id"]
            assert paused[-1].data["value"]["tool_calls"] == [
                {"id": "call_1", "tool": "get_stock_price", "args": {"ticker": "MSFT"}}
            ]
            assert finnhub.quotes == []
            resume = f"/sessions/{sid}/turns/{turn_id}/resume"
            went_on = events(await post(b, resume, {"approved": True}))
            assert [e.event for e in went_on if e.event != "token"][-2:] == ["tool_result", "done"]
            assert finnhub.quotes == ["MSFT"]
            # The resume sent again, to either worker: the stored turn, no second quote.
            for url in (a, b):
                again = events(await post(url, resume, {"approved": True}))
                assert again[-1].event == "done"
                assert "".join(e.data["content"] for e in again if e.event == "token") == (
                    "MSFT is at 412.5 USD."
                )
            assert finnhub.quotes == ["MSFT"]

            # Two resumes of one pause at once, one per worker: still one quote.
            sid2 = str(uuid.uuid4())
            openai.add(stock_call("call_2"), Reply(text="Done."))
            paused = events(await post(b, "/chat", {"session_id": sid2, "message": "MSFT now?"}))
            resume2 = f"/sessions/{sid2}/turns/{paused[0].data['turn_id']}/resume"
            both = await asyncio.gather(
                post(a, resume2, {"approved": True}), post(b, resume2, {"approved": True})
            )
            codes = sorted(r.status_code for r in both)
            assert codes in ([200, 200], [200, 409]), [r.text for r in both]
            for response in both:
                if response.status_code == 409:
                    assert response.json()["code"] == "session_busy"
            assert finnhub.quotes == ["MSFT", "MSFT"]

            # Denied on A after pausing on B: no quote; the model hears it was declined.
            sid3 = str(uuid.uuid4())
            openai.add(stock_call("call_3"), Reply(text="As you wish."))
            paused = events(await post(b, "/chat", {"session_id": sid3, "message": "And MSFT?"}))
            resume3 = f"/sessions/{sid3}/turns/{paused[0].data['turn_id']}/resume"
            denied = events(await post(a, resume3, {"approved": False}))
            result = next(e for e in denied if e.event == "tool_result")
            assert result.data["status"] == "declined"
            assert denied[-1].event == "done"
            assert finnhub.quotes == ["MSFT", "MSFT"]
            told = openai.tool_results(len(openai.received) - 1)
            assert [(m["tool_call_id"], "declined" in m["content"]) for m in told] == [
                ("call_3", True)
            ]
            assert openai.rejected == []

            # Nothing waits any more: a resume is refused, and the next message is a turn.
            nothing = await post(b, resume3, {"approved": True})
            assert nothing.status_code == 200  # a replay of the answered turn
            assert events(nothing)[-1].event == "done"
            assert (
                events(await post(b, "/chat", {"session_id": sid3, "message": "Hi"}))[-1].event
                == "done"
            )
            assert openai.rejected == []

            counts = [samples((await httpx.AsyncClient().get(f"{u}/metrics")).text) for u in (a, b)]
    assert sum(value(c, "vera_interrupts_total") for c in counts) == 3
    assert sum(value(c, "vera_resumes_total", decision="approved") for c in counts) == 2
    assert sum(value(c, "vera_resumes_total", decision="declined") for c in counts) == 1
    assert sum(value(c, "vera_turns_total", outcome="needs_approval") for c in counts) == 3
