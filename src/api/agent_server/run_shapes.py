"""Bodies of the Agent Server door's runs, in the shapes `langgraph_sdk` sends (its runs
client's payload) and parses (`schema.Run`). Fields the SDK may send that this server does
not serve are accepted by the model and refused by `RunCreate.unserved` with a 422 naming
them, so nothing is stored for such a request."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic.json_schema import SkipJsonSchema

from src.api.agent_server.graphs import GRAPH_IDS
from src.api.agent_server.shapes import CheckpointRef, Request

# An assistant's id (a UUID) or a graph id of `langgraph.json`.
ASSISTANT_ID = (
    "^(" + "|".join(GRAPH_IDS) + "|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12})$"
)
# The Agent Server's stream modes (`run_events` makes each).
StreamMode = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "debug",
    "checkpoints",
    "tasks",
]
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
# langgraph dev's names for the nodes that stop a run: a list of them, or every node.
Interrupts = Literal["*"] | list[str]

# Why each field the SDK may send is not served (answered 422 naming it).
UNSERVED = {
    "webhook": "webhooks are not sent by this server",
    "feedback_keys": "LangSmith feedback is not served",
    "on_completion": "a thread's run never deletes its thread",
    "after_seconds": "runs start at once",
    "langsmith_tracer": "LangSmith tracing is not served (Vera traces with OpenTelemetry)",
    "strict_resume": "a resume is checked by the graph",
    "checkpoint_during": "every step's checkpoint is stored before the next starts",
}


class GotoSend(Request):
    """One `Send` of a command's `goto`: the node and its input."""

    node: str = Field(max_length=200)
    input: Any = None


class CommandBody(Request):
    """A `langgraph.types.Command` as the SDK sends it: `resume` (the answer to an
    interrupt), `update` (state values) and `goto` (the next nodes)."""

    resume: Any = None
    update: dict[str, Any] | list[Any] | None = None
    goto: str | GotoSend | list[str | GotoSend] | None = None


class RunConfig(BaseModel):
    """A run's `config` (LangGraph's `RunnableConfig`: `configurable`, `tags`,
    `recursion_limit`, ...)."""

    model_config = ConfigDict(extra="allow")

    configurable: dict[str, Any] | None = None
    # Typed as langgraph-api's `Config` schema: a wrong type is 422, not a failed run.
    tags: list[str] | None = None
    recursion_limit: StrictInt | None = None


class RunCreate(Request):
    """Body of `POST /threads/{id}/runs`, `/runs/stream` and `/runs/wait`."""

    assistant_id: str = Field(pattern=ASSISTANT_ID, description="An assistant id or graph id")
    input: dict[str, Any] | list[Any] | None = None
    command: CommandBody | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] = "values"
    stream_subgraphs: bool = Field(False, strict=True)
    stream_resumable: bool = Field(False, strict=True)  # every run's stream is stored
    interrupt_before: Interrupts | None = None
    interrupt_after: Interrupts | None = None
    checkpoint_id: str | None = Field(None, max_length=64)
    checkpoint: CheckpointRef | None = None
    # Absent: `enqueue`, langgraph-api's default (`run_start.DEFAULT_STRATEGY`).
    multitask_strategy: MultitaskStrategy | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    # `cancel`: the run is stopped when its client disconnects before it ended.
    on_disconnect: Literal["continue", "cancel"] | None = None
    durability: Literal["sync", "async", "exit"] | None = Field(
        None, description='Accepted; every run is durable ("sync", as its kwargs say): docs/api.md'
    )
    # Not served (answered 422 naming them), so not in the OpenAPI document.
    webhook: SkipJsonSchema[Any] = None
    feedback_keys: SkipJsonSchema[Any] = None
    on_completion: SkipJsonSchema[Any] = None
    after_seconds: SkipJsonSchema[Any] = None
    langsmith_tracer: SkipJsonSchema[Any] = None
    strict_resume: SkipJsonSchema[Any] = None
    checkpoint_during: SkipJsonSchema[Any] = None

    def modes(self) -> list[str]:
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return [str(mode) for mode in modes]

    def unserved(self) -> list[tuple[str, str]]:
        """The fields sent that this server does not serve, with why."""
        found = [(name, why) for name, why in UNSERVED.items() if getattr(self, name) is not None]
        return found


class Run(BaseModel):
    """One run of a thread, as `langgraph_sdk`'s `Run` (with `kwargs`, as langgraph dev)."""

    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    # `kwargs` in JSON (a field of that name would shadow pydantic's `__init__(**kwargs)`).
    run_kwargs: dict[str, Any] = Field(serialization_alias="kwargs")
    langsmith_session_name: str | None = None  # LangSmith tracing is not served

    @classmethod
    def of(cls, run: dict[str, Any]) -> Run:
        """The answer of a run as `RunBook` reads it."""
        fields = {key: value for key, value in run.items() if key != "kwargs"}
        return cls(**fields, run_kwargs=run["kwargs"])
