"""`GET /assistants/{id}/subgraphs` answers each subgraph's schemas by namespace, as
langgraph_api does (`assistants.subgraph_schemas`), on a graph that has subgraphs (Vera's
has none: it answers `{}`)."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from src.api.agent_server.assistants import subgraph_schemas

SCHEMA_KEYS = {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"}


class Inner(TypedDict):
    text: str


class Middle(TypedDict):
    text: str
    count: int


def _inner() -> object:
    graph = StateGraph(Inner)
    graph.add_node("say", lambda state: {"text": state["text"] + "!"})
    graph.add_edge(START, "say")
    graph.add_edge("say", END)
    return graph.compile()


def _parent() -> object:
    middle = StateGraph(Middle)
    middle.add_node("inner", _inner())
    middle.add_edge(START, "inner")
    middle.add_edge("inner", END)
    parent = StateGraph(Inner)
    parent.add_node("middle", middle.compile())
    parent.add_edge(START, "middle")
    parent.add_edge("middle", END)
    return parent.compile()


async def test_subgraphs_by_namespace_nested_ones_with_recurse() -> None:
    graph = _parent()
    top = await subgraph_schemas(graph, None, recurse=False)
    assert list(top) == ["middle"]
    assert set(top["middle"]) == SCHEMA_KEYS
    assert set(top["middle"]["state_schema"]["properties"]) == {"text", "count"}
    every = await subgraph_schemas(graph, None, recurse=True)
    assert list(every) == ["middle", "middle|inner"]
    assert set(every["middle|inner"]["state_schema"]["properties"]) == {"text"}
    assert list(await subgraph_schemas(graph, "middle", recurse=False)) == ["middle"]
    assert await subgraph_schemas(graph, "nowhere", recurse=True) == {}
