"""Bodies of the Agent Server door, in the shapes `langgraph_sdk` sends and parses (its
`schema.py` TypedDicts) and `langgraph dev` answers. Free-form parts (metadata, state
values, JSON schemas) are `dict[str, Any]`; requests refuse unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from src.api.lifecycle_schemas import MAX_TTL_MINUTES

MAX_PAGE = 1000  # threads, assistants or checkpoints per answer (as `langgraph dev`)

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
SortOrder = Literal["asc", "desc"]


def holds_unpaired_surrogate(value: Any) -> bool:
    """Whether a JSON value holds text that is not Unicode (an unpaired surrogate, which
    JSON's `"\\ud800"` can spell), in a string, a key or anything nested."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(
            holds_unpaired_surrogate(k) or holds_unpaired_surrogate(v) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return any(holds_unpaired_surrogate(item) for item in value)
    if isinstance(value, BaseModel):
        return any(
            holds_unpaired_surrogate(getattr(value, name)) for name in type(value).model_fields
        )
    return False


class Request(BaseModel):
    """A request body: no unknown field, and only Unicode text (as `/chat` refuses an
    unpaired surrogate: stored, no client could read it back)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _unicode_only(self) -> Self:
        for name in type(self).model_fields:
            if holds_unpaired_surrogate(getattr(self, name)):
                raise ValueError(
                    f"{name} must be valid Unicode text (it holds an unpaired surrogate)"
                )
        return self


# -- meta --


class Ok(BaseModel):
    """Body of `GET /ok`: `services.database` is `healthy`/`unhealthy` with `check_db=1`,
    else `skipped`."""

    ok: bool
    services: dict[str, Literal["healthy", "unhealthy", "skipped"]]


class Info(BaseModel):
    """Body of `GET /info`: the versions served and what this server offers."""

    version: str
    langgraph_py_version: str
    flags: dict[str, bool]
    host: dict[str, str | None]


# -- assistants --


class Assistant(BaseModel):
    """One assistant: Vera's fixed one per graph of `langgraph.json` (only the fields
    `select` names, when it names some)."""

    assistant_id: uuid.UUID | None = None
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int | None = None
    description: str | None = None


AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "created_at",
    "updated_at",
    "version",
    "description",
]


class AssistantSearch(Request):
    """Body of `POST /assistants/search`."""

    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=MAX_PAGE, strict=True)
    offset: int = Field(0, ge=0, strict=True)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[AssistantField] | None = Field(None, description="The fields sent")


class GraphSchemaPart(BaseModel):
    """JSON schemas of a graph's input, output, state, configurable and context (null
    when it has none): one subgraph's in `GET /assistants/{id}/subgraphs`."""

    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


class GraphSchemas(GraphSchemaPart):
    """Body of `GET /assistants/{id}/schemas`: the graph's id and schemas."""

    graph_id: str


class DrawableGraph(BaseModel):
    """Body of `GET /assistants/{id}/graph`: LangGraph's drawable graph as JSON."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


# -- threads --


class TTL(Request):
    """A thread's time-to-live: deleted once idle this many minutes (`strategy` delete)."""

    strategy: Literal["delete"] = "delete"
    ttl: float = Field(gt=0, le=MAX_TTL_MINUTES, strict=True)


class ThreadCreate(Request):
    """Body of `POST /threads`."""

    thread_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: TTL | None = None
    # Not served (answered 422 naming it), so not in the OpenAPI document.
    supersteps: SkipJsonSchema[list[Any] | None] = None


class ThreadPatch(Request):
    """Body of `PATCH /threads/{id}`: metadata merged into the thread's, and its TTL."""

    metadata: dict[str, Any] | None = None
    ttl: TTL | None = None


ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "status",
    "config",
    "values",
    "error",
    "interrupts",
]


class ThreadSearch(Request):
    """Body of `POST /threads/search`: the caller's threads, newest first by default."""

    metadata: dict[str, Any] | None = None
    ids: list[uuid.UUID] | None = Field(None, max_length=MAX_PAGE)
    # Filters not served (answered 422 naming them), so not in the OpenAPI document.
    values: SkipJsonSchema[Any] = None
    status: SkipJsonSchema[Any] = None
    extract: SkipJsonSchema[Any] = None
    limit: int = Field(10, ge=1, le=MAX_PAGE, strict=True)
    offset: int = Field(0, ge=0, le=1_000_000, strict=True)
    sort_by: Literal["created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[ThreadField] | None = Field(None, description="The fields sent")


class Thread(BaseModel):
    """One thread (a Vera session). Only the fields `select` names are sent; `error` and
    `interrupts` come once the thread has a checkpoint, as `langgraph dev` sends them."""

    thread_id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    state_updated_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    status: ThreadStatus | None = None
    config: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    error: str | None = None
    interrupts: dict[str, list[dict[str, Any]]] | None = None


class CheckpointRef(Request):
    """A checkpoint as a request names it (`checkpoint_id`; the rest is the thread's)."""

    checkpoint_id: str | None = Field(None, max_length=64)
    checkpoint_ns: str = Field("", max_length=1000)
    thread_id: str | None = Field(None, max_length=1000)
    checkpoint_map: dict[str, Any] | None = None


class CheckpointConfig(Request):
    """A checkpoint as a `RunnableConfig` names it (the JS SDK's `before`); the config's
    other keys (`tags`, `recursion_limit`, ...) are not read."""

    model_config = ConfigDict(extra="allow")

    configurable: CheckpointRef


class Checkpoint(BaseModel):
    """A checkpoint of a thread, as answers name it."""

    checkpoint_id: str
    thread_id: str
    checkpoint_ns: str


class Interrupt(BaseModel):
    id: str | None
    value: Any


class ThreadTask(BaseModel):
    id: str
    name: str
    path: list[Any]
    error: str | None
    interrupts: list[Interrupt]
    checkpoint: dict[str, Any] | None
    state: ThreadState | None
    result: Any


class ThreadState(BaseModel):
    """A thread's state at one checkpoint (an empty one, all null, before the first)."""

    values: dict[str, Any] | list[Any]
    next: list[str]
    tasks: list[ThreadTask]
    metadata: dict[str, Any] | None
    created_at: str | None
    checkpoint: Checkpoint | None
    parent_checkpoint: Checkpoint | None
    interrupts: list[Interrupt]
    checkpoint_id: str | None
    parent_checkpoint_id: str | None


class StateAt(Request):
    """Body of `POST /threads/{id}/state/checkpoint`."""

    checkpoint: CheckpointRef
    subgraphs: bool = Field(False, strict=True)


class StateUpdate(Request):
    """Body of `POST /threads/{id}/state`: values written as `as_node` wrote them, on the
    latest checkpoint or on `checkpoint` / `checkpoint_id` (a fork)."""

    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = Field(None, max_length=200)
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = Field(None, max_length=64)


class StateUpdated(BaseModel):
    """Body of the answer to `POST /threads/{id}/state`: the new checkpoint."""

    checkpoint: Checkpoint
    configurable: dict[str, Any]
    checkpoint_id: str


class HistoryQuery(Request):
    """Body of `POST /threads/{id}/history`: checkpoints newest first, `limit` at a time,
    those before `before` (an id, a checkpoint or a config naming one: what the Python and
    JS SDKs send), with `metadata` (containment)."""

    limit: int = Field(10, ge=1, le=MAX_PAGE, strict=True)
    before: str | CheckpointRef | CheckpointConfig | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None


ThreadTask.model_rebuild()
