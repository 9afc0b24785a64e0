"""The guard a tool call confirms before it starts, and the key it runs under (issue 23,
point 2), without a database: `LeaseGuard` on a clock and a lease table of our own, the
graph's `ToolNode` with Vera's wrapper, the HTTP helper's header."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from src.agent.memory.fencing import LeaseLostError
from src.agent.memory.lease_guard import LeaseGuard
from src.agent.memory.store import StorageUnavailableError
from src.agent.tool_errors import describe_tool_error, track_tool_call
from src.agent.tool_guard import TOOL_GUARD_KEY, TOOL_TURN_KEY, call_key, idempotency_key
from src.api.tool_events import StoredMessages
from src.tools.http import get_json
from src.tools.idempotency import idempotency_key as running_key
from src.tools.idempotency import keyed

SESSION, RUN = uuid.uuid4(), uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class LeaseTable:
    """Which run holds the session (what `turn_leases` would answer), and the renewals
    asked; `during` advances the clock while a renewal is on its way."""

    def __init__(self, clock: Clock, holder: uuid.UUID | None = RUN, during: float = 0.0) -> None:
        self.clock, self.holder, self.during = clock, holder, during
        self.renewals = 0
        self.down = False

    async def renew(self, session_id: uuid.UUID, run_id: uuid.UUID, ttl_seconds: float) -> bool:
        self.renewals += 1
        self.clock.now += self.during
        if self.down:
            raise StorageUnavailableError("the database is unreachable")
        return self.holder == run_id


def guard(table: LeaseTable, clock: Clock, ttl: float = 30.0) -> LeaseGuard:
    taken = LeaseGuard(table, SESSION, RUN, ttl, clock=clock)
    taken.taken(clock())
    return taken


async def test_a_lease_far_from_its_expiry_is_confirmed_without_the_database() -> None:
    clock = Clock()
    table = LeaseTable(clock)
    lease = guard(table, clock)
    clock.now += 19.9  # 10.1 s left, more than the margin (10 s)
    await lease.confirm()
    assert table.renewals == 0


async def test_a_lease_close_to_its_expiry_is_renewed_before_a_tool_starts() -> None:
    clock = Clock()
    table = LeaseTable(clock, during=0.5)
    lease = guard(table, clock)
    clock.now += 25.0
    await lease.confirm()
    assert table.renewals == 1
    # The new expiry counts from when the renewal was sent, not from its answer.
    assert lease.remaining() == pytest.approx(30.0 - 0.5)
    await lease.confirm()
    assert table.renewals == 1


async def test_a_lease_another_run_took_is_refused_and_stays_lost() -> None:
    clock = Clock()
    table = LeaseTable(clock, holder=uuid.uuid4())
    lease = guard(table, clock)
    clock.now += 45.0  # frozen past its expiry; another run took the session
    with pytest.raises(LeaseLostError):
        await lease.confirm()
    table.holder = RUN
    with pytest.raises(LeaseLostError):
        await lease.confirm()
    assert (table.renewals, lease.lost) == (1, True)


async def test_a_lease_that_cannot_be_confirmed_is_not_assumed() -> None:
    clock = Clock()
    table = LeaseTable(clock)
    lease = guard(table, clock)
    clock.now += 29.0
    table.down = True
    with pytest.raises(StorageUnavailableError):
        await lease.confirm()
    table.down = False
    await lease.confirm()  # back: renewed, still the run's
    assert not lease.lost


def test_a_tool_calls_key_is_its_turn_and_call_and_nothing_else() -> None:
    key = idempotency_key("turn-1", "call_a")
    assert key == idempotency_key("turn-1", "call_a") == str(uuid.UUID(key))
    assert key != idempotency_key("turn-2", "call_a")
    assert key != idempotency_key("turn-1", "call_b")
    assert call_key({TOOL_TURN_KEY: "turn-1", "thread_id": "s"}, "call_a") == key
    assert call_key({"thread_id": "s"}, "call_a") == call_key({"thread_id": "s"}, "call_a")
    assert call_key({"thread_id": "s"}, "call_a") != call_key({"thread_id": "t"}, "call_a")


def tool_node(ran: list[str | None]) -> CompiledStateGraph:
    """Vera's `ToolNode` (its wrapper and error handler) in a graph of its own."""

    async def probe(city: str) -> str:
        """Record the key this call runs under."""
        ran.append(running_key())
        return f"ran for {city}"

    tool = StructuredTool.from_function(coroutine=probe, name="probe", description="probe")
    node = ToolNode([tool], handle_tool_errors=describe_tool_error, awrap_tool_call=track_tool_call)
    return StateGraph(MessagesState).add_node("tools", node).add_edge(START, "tools").compile()


def calling(*ids: str) -> dict[str, list[AIMessage]]:
    calls = [{"id": i, "name": "probe", "args": {"city": "Oslo"}} for i in ids]
    return {"messages": [AIMessage("", tool_calls=calls)]}


async def test_tools_run_under_their_keys_while_the_lease_holds() -> None:
    clock = Clock()
    ran: list[str | None] = []
    config = {"configurable": {TOOL_GUARD_KEY: guard(LeaseTable(clock), clock)}}
    config["configurable"][TOOL_TURN_KEY] = "turn-1"
    out = await tool_node(ran).ainvoke(calling("call_a", "call_b"), config)  # type: ignore[arg-type]
    assert [m.content for m in out["messages"][1:]] == ["ran for Oslo"] * 2
    assert sorted(ran) == sorted(  # type: ignore[type-var]
        [idempotency_key("turn-1", "call_a"), idempotency_key("turn-1", "call_b")]
    )


async def test_no_tool_starts_on_a_lost_lease_and_the_turn_fails_with_it() -> None:
    clock = Clock()
    ran: list[str | None] = []
    lease = guard(LeaseTable(clock, holder=uuid.uuid4()), clock)
    clock.now += 31.0
    config = {"configurable": {TOOL_GUARD_KEY: lease, TOOL_TURN_KEY: "turn-1"}}
    with pytest.raises(LeaseLostError):  # not a tool failure the model would be told of
        await tool_node(ran).ainvoke(calling("call_a", "call_b"), config)  # type: ignore[arg-type]
    assert ran == []


async def test_the_http_helper_sends_the_running_calls_key() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        args = {"attempts": 1, "service": "Fake", "topic": "test"}
        with keyed("key-1"):
            await get_json(client, "http://api.test/x", {}, **args)  # type: ignore[arg-type]
        await get_json(client, "http://api.test/x", {}, **args)  # type: ignore[arg-type]
    assert seen == ["key-1", None]


def test_messages_wait_for_the_checkpoint_after_them() -> None:
    held = StoredMessages()
    call = AIMessage("", tool_calls=[{"id": "c", "name": "probe", "args": {}}])
    result = ToolMessage("ok", tool_call_id="c")
    assert held.stored() == []  # the input's checkpoint: nothing ran yet
    held.hold({"model": {"messages": [call]}})
    held.hold({"tools": {"messages": [result]}})
    held.hold({"__interrupt__": ()})
    assert held.stored() == [call, result]
    assert held.stored() == []
