"""Database-free checks of the Agent Server door's shapes and of the conformance helper
the deployment test compares Vera's answers with (`tests/agent_shapes.py`)."""

from __future__ import annotations

import typing
import uuid

import orjson
from langchain_core.messages import HumanMessage
from langgraph.types import Interrupt, PregelTask, StateSnapshot

from src.api.agent_server.graphs import assistant_id_of, graph_id_for
from src.api.agent_server.responses import AgentServerJSONResponse
from src.api.agent_server.shapes import Assistant, AssistantField, Thread, ThreadField
from src.api.agent_server.snapshots import thread_interrupts, thread_state
from tests.agent_shapes import differences


def test_select_names_exactly_the_fields_of_an_answer() -> None:
    assert set(typing.get_args(ThreadField)) == set(Thread.model_fields)
    assert set(typing.get_args(AssistantField)) == set(Assistant.model_fields)


def test_the_assistant_id_is_langgraph_devs_and_the_graph_id_names_it_too() -> None:
    assert str(assistant_id_of("vera")) == "149f26bf-fe73-5f09-9897-94bb1f5f93c2"
    assert graph_id_for("vera") == graph_id_for(str(assistant_id_of("vera")).upper()) == "vera"
    assert graph_id_for(str(uuid.uuid4())) is None


def test_the_helper_sees_keys_and_types_but_not_ids_times_or_free_form_parts() -> None:
    ours = {"thread_id": "a", "metadata": {"x": 1}, "items": [{"id": 1}, {"id": 2, "n": None}]}
    same = {"thread_id": "b", "metadata": {"y": [2]}, "items": [{"id": 7, "n": "s"}]}
    assert differences(ours, same) == []
    assert differences({"a": 1, "b": 2}, {"a": "1", "c": 3}) == [
        "$.b: only Vera's",
        "$.c: only langgraph dev's",
        "$.a: Vera's 'number', langgraph dev's 'string'",
    ]


def test_a_snapshot_becomes_a_thread_state_with_its_interrupts() -> None:
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "2"}}
    parent = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "1"}}
    asked = Interrupt(value={"question": "go?"}, id="i1")
    task = PregelTask("task-1", "tools", ("__pregel_pull", "tools"), interrupts=(asked,))
    snapshot = StateSnapshot(
        {"messages": [HumanMessage("hi", id="m1")]},
        ("tools",),
        config,
        {"step": 2},
        "2026-01-01T00:00:00+00:00",
        parent,
        (task,),
        (asked,),
    )
    state = thread_state(snapshot)
    assert state["values"]["messages"][0]["type"] == "human"
    assert state["values"]["messages"][0]["content"] == "hi"
    assert (state["checkpoint_id"], state["parent_checkpoint_id"]) == ("2", "1")
    assert state["checkpoint"] == {"checkpoint_id": "2", "thread_id": "t", "checkpoint_ns": ""}
    assert state["tasks"][0]["interrupts"] == [{"id": "i1", "value": {"question": "go?"}}]
    assert state["interrupts"] == [{"id": "i1", "value": {"question": "go?"}}]
    assert thread_interrupts(snapshot) == {"task-1": [{"id": "i1", "value": {"question": "go?"}}]}


def test_answers_carry_only_unicode_text() -> None:
    """Stored text with an unpaired surrogate (Studio, a tool) reaches the SDK as U+FFFD:
    `langgraph_sdk`'s orjson refuses the `\\ud800` escape the app's other routes send."""
    body = AgentServerJSONResponse(
        [{"values": {"messages": [{"content": "a\ud800b \U0001f600"}]}, "\udfffkey": 1}]
    ).body
    assert orjson.loads(body) == [
        {"values": {"messages": [{"content": "a\ufffdb \U0001f600"}]}, "\ufffdkey": 1}
    ]
    assert AgentServerJSONResponse({"ok": "plain"}).body == b'{"ok":"plain"}'
