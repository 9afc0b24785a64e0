"""A scripted OpenAI-protocol server on 127.0.0.1, for the real `ChatOpenAI` over HTTP.

It speaks streaming chat completions as OpenAI does (SSE `data:` chunks, `finish_reason`,
a usage chunk when asked, `data: [DONE]`) and is as strict as OpenAI about requests: a
wrong key is 401, an unknown model 404, and a history with an assistant tool call not
answered by a tool message (or a tool message answering nothing) is 400. Each request
takes the next `Reply` of the script (a plain "OK" when the script is empty); a reply can
be slow, stall, end early, or break the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from src.agent.model import build_chat_model
from tests.api_harness import Event, api_client, serve, settings_for

KEY = "sk-test-key-0123456789"
MODEL = "gpt-test"


def chat_openai_environment(url: str) -> dict[str, str]:
    """A server process's settings for the real `ChatOpenAI` on the scripted server at
    `url`."""
    return {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": url, "AGENT_MODEL": MODEL}


@dataclass
class Reply:
    """One scripted answer: text and/or tool calls `(id, name, raw JSON arguments)`.

    `status` other than 200 answers an OpenAI error body instead. `every` seconds pass
    between chunks; after `stall_after` chunks the server goes silent (connection open);
    after `cut_after` chunks the stream ends cleanly but without `finish_reason` or
    `[DONE]`; after `break_after` chunks the connection is dropped mid-body.
    """

    text: str = ""
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)
    status: int = 200
    every: float = 0.0
    pieces: int = 1  # chunks per text / per tool-call arguments
    stall_after: int | None = None
    cut_after: int | None = None
    break_after: int | None = None
    usage: tuple[int, int] = (11, 7)


@dataclass
class Received:
    """A request the server answered, and when."""

    body: dict[str, Any]
    at: float


def history_problem(messages: list[dict[str, Any]]) -> str | None:
    """What OpenAI (or a strict compatible server, e.g. one that parses the arguments of
    past tool calls) answers 400 for, or None."""
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    f"Invalid parameter: messages[{i}] with role 'tool' must be a response "
                    "to a preceeding message with 'tool_calls'."
                )
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}"
            )
        for call in message.get("tool_calls") or []:
            if not call.get("id"):
                return f"Missing required parameter: 'messages[{i}].tool_calls[0].id'."
            pending.add(call["id"])
    if pending:
        return f"tool_call_ids did not have response messages: {', '.join(sorted(pending))}"
    for i, message in enumerate(messages):
        for call in message.get("tool_calls") or []:
            try:
                json.loads(call["function"]["arguments"])
            except ValueError:
                return f"messages[{i}].tool_calls: arguments are not valid JSON"
    return None


def _error(status: int, message: str, code: str | None, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chunks(reply: Reply, include_usage: bool) -> list[dict[str, Any] | str]:
    """The stream of `reply`: chunk bodies, then the literal `[DONE]`."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    out: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    if reply.text:
        out += [chunk({"content": piece}) for piece in _split(reply.text, reply.pieces)]
    for index, (call_id, name, arguments) in enumerate(reply.tool_calls):
        head = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [head]}))
        for piece in _split(arguments, reply.pieces):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    if include_usage:
        prompt, completion = reply.usage
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        out.append({**base, "choices": [], "usage": usage})
    out.append("[DONE]")
    return out


class FakeOpenAI:
    """The server's script and what it received; `serve()` runs it."""

    def __init__(self, *replies: Reply) -> None:
        self.script: list[Reply] = list(replies)
        self.received: list[Received] = []
        self.rejected: list[str] = []  # the 400 messages it answered
        self.closing = asyncio.Event()
        self.key = KEY  # the only key the server accepts
        # Runs before each answer, when set (a test acts while a model call is pending).
        self.gate: Callable[[], Awaitable[None]] | None = None

    def add(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def _completions(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _error(
                401,
                "Incorrect API key provided: sk-wr***ng.",
                "invalid_api_key",
                "invalid_request_error",
            )
        body = await request.json()
        self.received.append(Received(body, time.monotonic()))
        if body.get("model") != MODEL:
            message = f"The model `{body.get('model')}` does not exist or you do not have access."
            return _error(404, message, "model_not_found", "invalid_request_error")
        if problem := history_problem(body.get("messages", [])):
            self.rejected.append(problem)
            return _error(400, problem, None, "invalid_request_error")
        reply = self.script.pop(0) if self.script else Reply(text="OK")
        if self.gate is not None:
            await self.gate()
        if reply.status != 200:
            return _error(reply.status, "scripted failure", None, "server_error")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not body.get("stream"):
            return JSONResponse(self._whole(reply, include_usage))
        return StreamingResponse(self._stream(reply, include_usage), media_type="text/event-stream")

    async def _stream(self, reply: Reply, include_usage: bool) -> AsyncIterator[bytes]:
        for sent, item in enumerate(_chunks(reply, include_usage)):
            if sent == reply.cut_after:
                return  # a clean end of the body, with no finish_reason and no [DONE]
            if sent == reply.break_after:
                raise ConnectionAbortedError("the fake provider drops the connection")
            if sent == reply.stall_after:
                # Silent, connection open; ends when the client goes away or we close.
                await asyncio.wait_for(self.closing.wait(), timeout=60)
                return
            if sent and reply.every:
                await asyncio.sleep(reply.every)
            data = item if isinstance(item, str) else json.dumps(item)
            yield f"data: {data}\n\n".encode()

    @staticmethod
    def _whole(reply: Reply, include_usage: bool) -> dict[str, Any]:
        calls = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in reply.tool_calls
        ]
        message = {"role": "assistant", "content": reply.text or None, "tool_calls": calls or None}
        finish = "tool_calls" if calls else "stop"
        prompt, completion = reply.usage
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on a free port for the block; yields the base URL (ending in `/v1`)."""
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        try:
            async with serve(app) as url:  # type: ignore[arg-type]
                try:
                    yield f"{url}/v1"
                finally:
                    self.closing.set()
        finally:
            self.closing.set()

    def tool_results(self, request: int) -> list[dict[str, Any]]:
        """The tool messages of the `request`-th request received."""
        return [m for m in self.received[request].body["messages"] if m["role"] == "tool"]


@asynccontextmanager
async def vera(dsn: str, fake: FakeOpenAI, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the real `ChatOpenAI` talking to `fake` over loopback HTTP."""
    async with fake.serve() as url:
        values = {"openai_api_key": KEY, "openai_base_url": url, "agent_model": MODEL}
        settings = settings_for(dsn, **{**values, **overrides})
        async with api_client(settings, build_chat_model(settings), timeout=60) as client:
            yield client


async def transcript(client: httpx.AsyncClient, sid: str) -> list[dict]:
    response = await client.get(f"/sessions/{sid}/messages")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def names(events: list[Event]) -> list[str]:
    return [e.event for e in events if e.event != "token"]


def answer(events: list[Event]) -> str:
    return "".join(e.data["content"] for e in events if e.event == "token")
