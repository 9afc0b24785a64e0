"""Tracing and log context (issue 15, point 2): with `OTEL_EXPORTER_OTLP_ENDPOINT` pointed
at an OTLP/HTTP receiver, a tool turn exports the span tree request -> turn -> graph run ->
model calls / tool calls / checkpoint writes; without it nothing is exported; log lines carry
the request and turn ids, as text or JSON."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from src.api import logs, tracing
from tests.api_harness import api_client, chat, serve, settings_for


class Receiver:
    """An OTLP/HTTP trace receiver: every span of every POST to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    async def _traces(self, request: Request) -> Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        app = Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])])
        async with serve(app) as url:  # type: ignore[arg-type]
            yield url


def ancestors(span: Any, by_id: dict[bytes, Any]) -> list[str]:
    names = []
    while span.parent_span_id:
        span = by_id[span.parent_span_id]
        names.append(span.name)
    return names


async def test_a_tool_turn_exports_its_span_tree(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    async with receiver.serve() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "vera-test")
        async with api_client(settings_for(database_dsn), timeout=30) as client:
            events = await chat(
                client, str(uuid.uuid4()), "Weather in Montevideo and the price of AAPL?"
            )
            assert events[-1].event == "done"
        # The lifespan's end flushed the batch.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    spans = receiver.spans
    by_id = {s.span_id: s for s in spans}
    [request] = [s for s in spans if s.name == "POST /chat"]
    [turn] = [s for s in spans if s.name == "turn"]
    [graph] = [s for s in spans if s.name == "graph.run"]
    assert turn.parent_span_id == request.span_id
    assert graph.parent_span_id == turn.span_id
    below_request = [s for s in spans if "POST /chat" in ancestors(s, by_id)]
    assert all(s.trace_id == request.trace_id for s in below_request)
    below_graph = [s.name for s in spans if "graph.run" in ancestors(s, by_id)]
    assert below_graph.count("model.call") == 2
    assert below_graph.count("tool.call get_weather") == 1
    assert below_graph.count("tool.call get_stock_price") == 1
    assert below_graph.count("checkpoint.put") >= 3  # input, model step, tools step, answer
    assert "checkpoint.put_writes" in below_graph
    attributes = {a.key: a.value.string_value for a in turn.attributes}
    assert attributes["vera.outcome"] == "ok"
    assert attributes["vera.turn_id"] == events[0].data["turn_id"]


async def test_without_an_endpoint_nothing_is_traced(database_dsn: str) -> None:
    assert not tracing.enabled()
    async with api_client(settings_for(database_dsn), timeout=30) as client:
        assert isinstance(tracing._tracer, tracing.trace.NoOpTracer)
        assert tracing.callbacks() == []
        response = await client.get("/health")
        assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_log_lines_carry_the_request_and_turn_ids(
    database_dsn: str, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", log_format)
    try:
        async with api_client(settings_for(database_dsn), timeout=30) as client:
            sid = str(uuid.uuid4())
            async with client.stream(
                "POST",
                "/chat",
                json={"session_id": sid, "message": "hi"},
                headers={"X-Request-ID": "req-42"},
            ) as response:
                assert response.headers["x-request-id"] == "req-42"
                body = (await response.aread()).decode()
        turn_id = next(line for line in body.splitlines() if '"turn_id"' in line)
        turn_id = json.loads(turn_id.partition(":")[2])["turn_id"]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [line for line in capsys.readouterr().err.splitlines() if "turn session_id=" in line]
    assert len(lines) == 1, lines
    if log_format == "json":
        record = json.loads(lines[0])
        assert (record["request_id"], record["turn_id"]) == ("req-42", turn_id)
        assert record["session_id"] == sid and record["logger"] == "vera.turns"
    else:
        assert f"[request=req-42 turn={turn_id}]" in lines[0]
