"""`/ok`, `/info` and the assistants: Vera's fixed assistant of each graph, read-only
(`POST /assistants` answers 501: its one configuration is the server's settings)."""

from __future__ import annotations

from importlib import metadata as package_metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import create_model

from src.api.agent_server.graphs import GRAPH_IDS, assistant_of, graph_id_for
from src.api.agent_server.shapes import (
    Assistant,
    AssistantSearch,
    DrawableGraph,
    GraphSchemaPart,
    GraphSchemas,
    Info,
    Ok,
)
from src.api.auth import current_principal
from src.api.deps import StoreDep
from src.api.errors import ApiError
from src.api.schemas import BODY_ERRORS, READ_ERRORS, ErrorBody

# `/ok` and `/info` answer anyone (`auth.PUBLIC_PATHS`); the assistants need a key.
meta_router = APIRouter(tags=["agent server"])
router = APIRouter(tags=["agent server"], dependencies=[Depends(current_principal)])


@meta_router.get("/ok", response_model=Ok, responses={503: {"model": ErrorBody}})
async def ok(
    store: StoreDep,
    check_db: Annotated[int, Query(ge=0, le=1, description="1: ping the database")] = 0,
) -> Ok:
    """Liveness for LangGraph clients (no auth); with `check_db=1` the database is pinged
    (503 when it does not answer)."""
    if not check_db:
        return Ok(ok=True, services={"database": "skipped"})
    if await store.ping():
        return Ok(ok=True, services={"database": "healthy"})
    raise ApiError(503, "storage_unavailable", "The database does not answer.")


@meta_router.get("/info", response_model=Info)
async def info(request: Request) -> Info:
    """What this server is (no auth): Vera's version, LangGraph's, and what it offers."""
    return Info(
        version=request.app.version,
        langgraph_py_version=package_metadata.version("langgraph"),
        flags={"assistants": True, "crons": False, "langsmith": False},
        host={"kind": "self-hosted", "project_id": None, "revision_id": None},
    )


# An assistant's id (a UUID) or its graph's id, as a path names it.
AssistantIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="An assistant id or a graph id")
]


def _assistant(assistant_id: str) -> str:
    graph_id = graph_id_for(assistant_id)
    if graph_id is None:
        raise ApiError(404, "not_found", f"No assistant {assistant_id}.")
    return graph_id


def _matches(assistant: dict[str, Any], query: AssistantSearch) -> bool:
    if query.graph_id is not None and assistant["graph_id"] != query.graph_id:
        return False
    if query.name is not None and assistant["name"] != query.name:
        return False
    wanted = query.metadata or {}
    return all(assistant["metadata"].get(key) == value for key, value in wanted.items())


@router.post(
    "/assistants/search",
    response_model=list[Assistant],
    response_model_exclude_unset=True,
    responses=BODY_ERRORS,
)
async def search_assistants(query: AssistantSearch) -> list[Assistant]:
    """The assistants matching `graph_id`, `name` and `metadata`, a page at a time."""
    found = [a for a in map(assistant_of, GRAPH_IDS) if _matches(a, query)]
    if query.sort_by is not None:
        found.sort(key=lambda a: str(a[query.sort_by or ""]), reverse=query.sort_order == "desc")
    page = found[query.offset : query.offset + query.limit]
    if query.select:
        page = [{key: a[key] for key in query.select} for a in page]
    return [Assistant(**a) for a in page]


# Not in the OpenAPI document: it describes what is served.
@router.post("/assistants", status_code=501, response_model=None, include_in_schema=False)
async def create_assistant() -> None:
    """Not served: each graph has one fixed assistant, configured by the server's settings."""
    raise ApiError(
        501,
        "not_implemented",
        "Creating assistants is not served: each graph has one fixed assistant "
        f"({', '.join(GRAPH_IDS)}), configured by the server's settings.",
    )


@router.get(
    "/assistants/{assistant_id}",
    response_model=Assistant,
    response_model_exclude_unset=True,
    responses=READ_ERRORS,
)
async def get_assistant(assistant_id: AssistantIdPath) -> Assistant:
    """One assistant, by its id or its graph's id."""
    return Assistant(**assistant_of(_assistant(assistant_id)))


@router.get("/assistants/{assistant_id}/graph", response_model=DrawableGraph, responses=READ_ERRORS)
async def get_assistant_graph(
    request: Request,
    assistant_id: AssistantIdPath,
    xray: Annotated[
        bool | int, Query(description="Subgraphs drawn too: true, or a depth >= 1")
    ] = False,
) -> dict[str, Any]:
    """The assistant's graph as LangGraph draws it (`get_graph(xray).to_json()`)."""
    _assistant(assistant_id)
    if not isinstance(xray, bool) and xray <= 0:
        raise ApiError(422, "invalid_request", "xray: true, false or a depth >= 1.")
    drawn = (await request.app.state.runner.graph.aget_graph(xray=xray)).to_json()
    for node in drawn.get("nodes", []):
        if isinstance(node.get("data"), dict):
            node["data"].pop("id", None)  # the node's Python path: not the client's business
    return drawn


def _state_schema(graph: Any) -> dict[str, Any]:
    """The JSON schema of the graph's state: one field per channel, typed by its updates."""
    fields: dict[str, Any] = {}
    for name in graph.stream_channels_list:
        channel = graph.channels[name]
        try:
            create_model(name, value=(channel.UpdateType, None)).model_json_schema()
            fields[name] = (channel.UpdateType, None)
        except Exception:  # a type pydantic can not describe: any value
            fields[name] = (Any, None)
    return create_model(graph.get_name("State"), **fields).model_json_schema()


def graph_schemas(graph: Any) -> dict[str, Any]:
    """JSON schemas of a graph's input, output, state and context (no configurable: a
    run's is the server's settings)."""
    return {
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": _state_schema(graph),
        "config_schema": None,
        "context_schema": graph.get_context_jsonschema(),
    }


@router.get(
    "/assistants/{assistant_id}/schemas", response_model=GraphSchemas, responses=READ_ERRORS
)
async def get_assistant_schemas(request: Request, assistant_id: AssistantIdPath) -> GraphSchemas:
    """JSON schemas of the graph's input, output, state and context."""
    graph_id = _assistant(assistant_id)
    return GraphSchemas(graph_id=graph_id, **graph_schemas(request.app.state.runner.graph))


async def subgraph_schemas(graph: Any, namespace: str | None, recurse: bool) -> dict[str, Any]:
    """Each subgraph's schemas by its namespace (`parent|child` when nested), as
    langgraph_api answers them: those under `namespace` only when given, nested ones with
    `recurse`."""
    return {
        name: graph_schemas(subgraph)
        async for name, subgraph in graph.aget_subgraphs(namespace=namespace, recurse=recurse)
    }


SUBGRAPHS = {
    "description": "Each subgraph's schemas by its namespace (`{}`: the graph has none)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
Recurse = Annotated[bool, Query(description="Subgraphs of subgraphs too")]
NamespacePath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.|:-]{1,200}$", description="A subgraph's namespace")
]


@router.get(
    "/assistants/{assistant_id}/subgraphs",
    response_model=dict[str, GraphSchemaPart],
    responses={200: SUBGRAPHS, **READ_ERRORS},
)
async def get_assistant_subgraphs(
    request: Request, assistant_id: AssistantIdPath, recurse: Recurse = False
) -> dict[str, Any]:
    """The schemas of the graph's subgraphs, by namespace."""
    _assistant(assistant_id)
    return await subgraph_schemas(request.app.state.runner.graph, None, recurse)


@router.get(
    "/assistants/{assistant_id}/subgraphs/{namespace}",
    response_model=dict[str, GraphSchemaPart],
    responses={200: SUBGRAPHS, **READ_ERRORS},
)
async def get_assistant_subgraphs_of(
    request: Request,
    assistant_id: AssistantIdPath,
    namespace: NamespacePath,
    recurse: Recurse = False,
) -> dict[str, Any]:
    """The schemas of the subgraph at `namespace` (and, with `recurse`, those under it)."""
    _assistant(assistant_id)
    return await subgraph_schemas(request.app.state.runner.graph, namespace, recurse)
