"""OpenTelemetry spans of a turn: the HTTP request, the turn, the graph run, each model call
and tool call, and each checkpoint write.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
then spans go to that collector over OTLP/HTTP (protobuf), batched, with the service name
`OTEL_SERVICE_NAME` (default `vera`); the SDK's other `OTEL_*` variables apply. Off, every
span is OpenTelemetry's no-op one and the checkpointer is not wrapped.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api import logs

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_tracer: Tracer = trace.NoOpTracer()


def enabled() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES) and (
        os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
    )


def setup() -> Callable[[], None] | None:
    """Start exporting spans when configured (per process: call it in the lifespan); the
    function that flushes and stops, or None when tracing is off."""
    global _tracer
    if not enabled():
        _tracer = trace.NoOpTracer()
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or "vera"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("vera")
    return provider.shutdown


class RequestContextMiddleware:
    """Outermost: gives each HTTP request an id (logs, `X-Request-ID` response header) and
    a server span named after its route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = sent if _SANE_REQUEST_ID.match(sent) else uuid.uuid4().hex
        token = logs.REQUEST_ID.set(request_id)
        method, path = scope["method"], scope.get("path", "")
        with _tracer.start_as_current_span(f"{method} {path}", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("vera.request_id", request_id)

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    message.setdefault("headers", [])
                    message["headers"] = [
                        *message["headers"],
                        (b"x-request-id", request_id.encode()),
                    ]
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:  # the template, not the ids in the path
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                logs.REQUEST_ID.reset(token)


class TurnSpan:
    """The span of one turn, current in the turn's task until `end()`."""

    def __init__(self, session_id: uuid.UUID, run_id: uuid.UUID, turn_id: str) -> None:
        logs.TURN_ID.set(turn_id)  # the turn's own task: no reset needed
        logs.SESSION_ID.set(str(session_id))
        self.span = _tracer.start_span(
            "turn",
            attributes={
                "vera.session_id": str(session_id),
                "vera.run_id": str(run_id),
                "vera.turn_id": turn_id,
            },
        )
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def end(self, outcome: str) -> None:
        self.span.set_attribute("vera.outcome", outcome)
        if outcome != "ok":
            self.span.set_status(Status(StatusCode.ERROR, outcome))
        self.span.end()
        otel_context.detach(self._token)


async def graph_run(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`stream` (the graph's) inside a `graph.run` span: the graph's tasks, model calls,
    tool calls and checkpoint writes become its children."""
    with _tracer.start_as_current_span("graph.run"):
        async for item in stream:
            yield item


class SpanCallbacks(BaseCallbackHandler):
    """A LangChain callback opening a span per model call and per tool call, as children
    of the span current where the call starts (the graph run's)."""

    run_inline = True

    def __init__(self) -> None:
        self._spans: dict[UUID, Span] = {}

    def _start(self, run_id: UUID, name: str, **attributes: Any) -> None:
        self._spans[run_id] = _tracer.start_span(name, attributes=attributes)

    def _end(self, run_id: UUID, error: BaseException | None = None) -> None:
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._start(run_id, "model.call", **{"vera.messages": len(messages[0]) if messages else 0})

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        tool = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        self._start(run_id, f"tool.call {tool}", **{"vera.tool": tool})

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        status = getattr(output, "status", None)
        span = self._spans.get(run_id)
        if span is not None and status == "error":
            span.set_status(Status(StatusCode.ERROR, "tool error"))
        self._end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)


def callbacks() -> list[BaseCallbackHandler]:
    """The span callbacks of one turn (none when tracing is off)."""
    return [SpanCallbacks()] if enabled() else []


def instrument_checkpointer(checkpointer: Any) -> None:
    """Put each checkpoint write (`aput`, `aput_writes`) in a span (only when tracing is on)."""
    if not enabled():
        return
    for method, name in (("aput", "checkpoint.put"), ("aput_writes", "checkpoint.put_writes")):
        original = getattr(checkpointer, method)

        def traced(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            async def run() -> Any:
                with _tracer.start_as_current_span(_name):
                    return await _original(*args, **kwargs)

            return run()

        setattr(checkpointer, method, traced)
