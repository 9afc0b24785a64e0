"""Starting an Agent Server run: the request checked whole (nothing is stored for a bad
one), its thread found (or made, `if_not_exists=create`), then the run started on the turn
runner under the thread's lease (`SessionBusyError`, a 409, when a `/chat` turn or another
run holds it), admitted as every turn is (`routes.chat.admitted`); or, with
`multitask_strategy: "enqueue"`, stored `pending` and started when its turn comes
(`run_queue.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from importlib import metadata as package_metadata
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Send

from src.api.admission import OverloadedError, TurnAdmission
from src.api.agent_server.graphs import assistant_id_of, assistant_of, graph_id_for
from src.api.agent_server.records import ThreadBook, thread_config
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_play import RunPlay, RunSpec
from src.api.agent_server.run_queue import LeftQueue, run_when_free
from src.api.agent_server.run_shapes import CommandBody, GotoSend, RunCreate
from src.api.agent_server.run_stop import Action, stop_run
from src.api.agent_server.state_values import check_resumable, check_values
from src.api.errors import ApiError
from src.api.routes.chat import admitted
from src.api.security import Principal
from src.api.turn_identity import TurnPlan
from src.api.turn_leases import SessionBusyError
from src.api.turn_play import Play
from src.api.turn_stream import Turn
from src.api.turns import TurnRunner


def run_metadata(
    body: RunCreate, graph_id: str, assistant_id: uuid.UUID, thread: dict[str, Any] | None
) -> dict[str, Any]:
    """The run's metadata as langgraph dev merges it: the assistant's, the thread's (with
    its graph and assistant; none for a thread made for the run), the config's and the
    request's (the assistant id cannot be overridden)."""
    config_metadata = (
        body.config.model_dump(exclude_unset=True).get("metadata") if body.config else None
    ) or {}
    metadata = dict(assistant_of(graph_id)["metadata"])
    if thread is not None:
        metadata |= {**thread, "graph_id": graph_id, "assistant_id": str(assistant_id)}
    metadata |= {**config_metadata, **(body.metadata or {})}
    return {**metadata, "assistant_id": str(assistant_id)}


# What langgraph dev adds to a run's config metadata as the run starts (its checkpoints'
# metadata carry it too); the server's own fields (plan, URL, API version) are its own.
RUN_START_METADATA = {
    "run_attempt": 1,
    "langgraph_version": package_metadata.version("langgraph"),
    "langgraph_host": "self-hosted",
}


def run_kwargs(
    body: RunCreate, spec: RunSpec, identity: dict[str, str], temporary: bool = False
) -> dict[str, Any]:
    """What a run's `kwargs` records of its request, in langgraph dev's keys: the config as
    the graph runs it (its configurable with the run's identity, its metadata)."""
    config = dict(spec.config)
    config["configurable"] = {**spec.config["configurable"], **identity}
    command = body.command.model_dump(mode="json", exclude_none=True) if body.command else None
    return {
        "input": body.input,
        "command": command,
        "config": config,
        # langgraph dev's: the request's context, else its configurable as the context.
        "context": body.context or (body.config and body.config.configurable) or {},
        "stream_mode": list(spec.stream_modes),
        "interrupt_before": body.interrupt_before,
        "interrupt_after": body.interrupt_after,
        "webhook": None,
        "feedback_keys": None,
        "temporary": temporary,  # a threadless run's thread, deleted once it ended
        "subgraphs": body.stream_subgraphs,
        "resumable": body.stream_resumable,
        "checkpoint_during": True,  # every step's checkpoint is stored (`run_play`)
        # What the run uses, whatever was asked: every run is durable (docs/api.md).
        "durability": "sync",
    }


# langgraph-api's default (`models/run.py`: a run on a busy thread waits its turn).
DEFAULT_STRATEGY = "enqueue"


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, details=[{"field": field, "message": message}])


@dataclass
class StartedRun:
    """A run just started: its turn (its events; `None` for a queued run, whose events are
    read from the turn event log), its row as stored, and whether a dropped stream stops
    it (`on_disconnect`)."""

    turn: Turn | None
    run: dict[str, Any]
    cancel_on_disconnect: bool = False  # the client's stream dropped stops the run


def _goto(goto: str | GotoSend) -> str | Send:
    return goto if isinstance(goto, str) else Send(goto.node, goto.input)


def command_of(body: CommandBody) -> Command:
    """The SDK's command as LangGraph's `Command`."""
    goto: Any = ()
    if isinstance(body.goto, list):
        goto = [_goto(item) for item in body.goto]
    elif body.goto is not None:
        goto = _goto(body.goto)
    return Command(resume=body.resume, update=body.update, goto=goto)


def checked(body: RunCreate) -> tuple[str, RunSpec]:
    """The run's assistant and what it runs; `ApiError` (422, 404) for a bad request."""
    unserved = body.unserved()
    if unserved:
        names = ", ".join(name for name, _ in unserved)
        raise ApiError(
            422,
            "invalid_request",
            f"Not served by this server: {names}.",
            details=[{"field": name, "message": f"not served: {why}"} for name, why in unserved],
        )
    modes = body.modes()
    graph_id = graph_id_for(body.assistant_id)
    if graph_id is None:
        try:
            uuid.UUID(body.assistant_id)
        except ValueError:
            raise invalid(
                "assistant_id",
                f"Invalid assistant: {body.assistant_id!r}. Must be an assistant UUID or a "
                "registered graph id.",
            ) from None
        raise ApiError(404, "not_found", f"Assistant {body.assistant_id} not found.")
    config: dict[str, Any] = body.config.model_dump(exclude_unset=True) if body.config else {}
    configurable = config.get("configurable") or {}
    checkpoint_id = body.checkpoint_id or (body.checkpoint and body.checkpoint.checkpoint_id)
    checkpoint_id = checkpoint_id or configurable.get("checkpoint_id")
    configurable = {
        k: v for k, v in configurable.items() if k not in ("thread_id", "checkpoint_id")
    }
    if checkpoint_id:
        configurable |= {"checkpoint_id": str(checkpoint_id), "checkpoint_ns": ""}
    config["configurable"] = configurable
    kwargs: dict[str, Any] = {}
    for name in ("interrupt_before", "interrupt_after", "context"):
        if getattr(body, name) is not None:
            kwargs[name] = getattr(body, name)
    graph_input: Any = command_of(body.command) if body.command is not None else body.input
    spec = RunSpec(graph_input, cast(RunnableConfig, config), modes, body.stream_subgraphs, kwargs)
    return graph_id, spec


async def start_run(
    thread_id: uuid.UUID,
    body: RunCreate,
    principal: Principal,
    runner: TurnRunner,
    admission: TurnAdmission,
    threads: ThreadBook,
    runs: RunBook,
    temporary: bool = False,
    made_for_it: bool = False,
) -> StartedRun:
    """Check the request, find (or make) the caller's thread, and start the run
    (`made_for_it`: on a thread made for the run, deleted once it ended when `temporary`:
    `run_threadless.py`)."""
    graph_id, spec = checked(body)
    check_values(runner.graph, "input", body.input)
    resumes = body.command is not None and body.command.resume is not None
    if body.command is not None:
        check_values(runner.graph, "command.update", body.command.update)
    strategy = body.multitask_strategy or DEFAULT_STRATEGY
    # A resume queued behind a run is checked once it starts (that run may pause for it).
    if resumes and (strategy == "reject" or not await runs.active(thread_id)):
        await check_resumable(runner.graph, thread_id, spec.config)
    assistant_id = assistant_id_of(graph_id)
    if body.if_not_exists == "create":
        thread = await threads.create(principal, thread_id, {}, None, "do_nothing")
    else:
        await threads.require(thread_id, principal)
        thread = await threads.thread(thread_id, frozenset({"metadata"}))
    checkpoint_id = spec.config["configurable"].get("checkpoint_id")
    if checkpoint_id is not None:
        found = await runner.graph.checkpointer.aget_tuple(  # type: ignore[union-attr]
            thread_config(thread_id, checkpoint_id)
        )
        if found is None:
            raise ApiError(404, "not_found", f"Checkpoint {checkpoint_id} not found.")
    run_id = uuid.uuid4()
    metadata = run_metadata(
        body, graph_id, assistant_id, None if made_for_it else thread["metadata"]
    )
    identity = {
        "run_id": str(run_id),
        "thread_id": str(thread_id),
        "graph_id": graph_id,
        "assistant_id": str(assistant_id),
        "user_id": principal.user_id,  # the end user's ("" for none), as langgraph dev's
    }
    # Through the config's metadata into every checkpoint's (as langgraph dev's runs).
    spec.config["metadata"] = {**metadata, **identity, **RUN_START_METADATA}
    kwargs = run_kwargs(body, spec, identity, temporary)
    plan = TurnPlan(kind="new", turn_id=str(run_id))
    if strategy != "reject":
        run = await runs.insert(run_id, thread_id, assistant_id, metadata, kwargs, strategy)
        if strategy in ("interrupt", "rollback"):
            await supersede(thread_id, run_id, strategy, runs, runner)

        async def claim() -> tuple[TurnPlan, Play]:
            if not await runs.dequeue(run_id, "running"):
                raise LeftQueue
            if resumes:  # refused now, the run ends `error` having stored nothing
                await check_resumable(runner.graph, thread_id, spec.config)
            return plan, RunPlay(runner.graph, runs, spec, run_id)

        async def start() -> Turn:
            return await admitted(
                admission, lambda on_end: runner.launch(thread_id, run_id, claim, on_end)
            )

        with contextlib.suppress(SessionBusyError, OverloadedError, LeftQueue):
            if await runs.first_queued(thread_id) == run_id:  # its turn came: at once
                return StartedRun(await start(), run, body.on_disconnect == "cancel")
        runner.track(asyncio.create_task(run_when_free(thread_id, run_id, runs, start)))
        return StartedRun(None, run, body.on_disconnect == "cancel")
    stored: dict[str, Any] = {}

    async def prepare() -> tuple[TurnPlan, Play]:
        if resumes:  # again under the lease: another resume may have just ended it
            await check_resumable(runner.graph, thread_id, spec.config)
        stored.update(
            await runs.insert(run_id, thread_id, assistant_id, metadata, kwargs, strategy)
        )
        return plan, RunPlay(runner.graph, runs, spec, run_id)

    turn = await admitted(
        admission, lambda on_end: runner.launch(thread_id, run_id, prepare, on_end)
    )
    return StartedRun(turn, stored, body.on_disconnect == "cancel")


async def supersede(
    thread_id: uuid.UUID, run_id: uuid.UUID, strategy: str, runs: RunBook, runner: TurnRunner
) -> None:
    """Stop the thread's other runs for new run `run_id` (`multitask_strategy` `interrupt`
    or `rollback`, as langgraph-api's): a queued one leaves its queue, a running one is
    cancelled (`interrupted`, what it stored kept; on `rollback` its checkpoints and row
    removed, under the lease, before the new run can take it). Only the runs that came
    before it: two sent at once would otherwise stop (or roll back) each other."""
    for other in await runs.active(thread_id):  # oldest first
        if other["run_id"] == run_id:
            return
        await stop_run(runs, runner, thread_id, other, cast(Action, strategy))
