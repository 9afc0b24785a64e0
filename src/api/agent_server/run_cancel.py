"""Stopping and deleting runs: `POST /runs/cancel` (the
caller's runs named by thread and ids, or all of theirs of a status, as langgraph_api's
`RunsCancel`) and `DELETE /threads/{id}/runs/{run_id}` (a running run is stopped first).
Another principal's thread or run is an unknown one (404)."""

from __future__ import annotations

import uuid
from typing import Any, Literal, Self

from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from src.api.agent_server import sql
from src.api.agent_server.run_follow import ACTIVE, RunFollower
from src.api.agent_server.run_stop import Action, stop_run
from src.api.agent_server.runs import RunsDep
from src.api.agent_server.shapes import Request
from src.api.agent_server.threads import BookDep, OwnedThreadDep
from src.api.auth import PrincipalDep
from src.api.deps import EventLogDep, LeasesDep, RunnerDep, StoreDep
from src.api.errors import ApiError
from src.api.schemas import BODY_ERRORS, READ_ERRORS, ErrorBody

router = APIRouter(tags=["agent server"])

MAX_CANCELLED = 1000  # run ids per request


class RunsCancel(Request):
    """Body of `POST /runs/cancel`: `status` (every run of the caller's in it), or
    `thread_id` and `run_ids` (those runs of that thread)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["status"],
                    "not": {"anyOf": [{"required": ["thread_id"]}, {"required": ["run_ids"]}]},
                },
                {"required": ["thread_id", "run_ids"], "not": {"required": ["status"]}},
            ]
        }
    )

    # Not nullable in the schema: a field sent is one of the two selections.
    status: Literal["pending", "running", "all"] | SkipJsonSchema[None] = None
    thread_id: uuid.UUID | SkipJsonSchema[None] = None
    run_ids: list[uuid.UUID] | SkipJsonSchema[None] = Field(None, max_length=MAX_CANCELLED)

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if self.status is not None and (self.thread_id or self.run_ids is not None):
            raise ValueError(
                "send either status or thread_id and run_ids: status cancels every run of "
                "that status, whatever its thread"
            )
        if self.status is None and (self.thread_id is None or self.run_ids is None):
            raise ValueError("send either status, or both thread_id and run_ids")
        return self


@router.post(
    "/runs/cancel",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "The runs are being stopped"}, **BODY_ERRORS},
)
async def cancel_runs(
    body: RunsCancel,
    principal: PrincipalDep,
    store: StoreDep,
    runs: RunsDep,
    threads: BookDep,
    runner: RunnerDep,
    action: Action = "interrupt",
) -> Response:
    """Stop the caller's runs named (`thread_id`, `run_ids`; those that ended are left as
    they are) or all theirs of `status` (`pending`, `running` or `all`); 404 when none
    matches. Each is stopped as `POST /threads/{id}/runs/{run_id}/cancel` stops it."""
    found: list[Any]
    if body.status is not None:
        statuses = sorted(ACTIVE) if body.status == "all" else [body.status]
        args: tuple[Any, ...] = (principal.name, principal.user_id, statuses)
        found = await store.run(lambda conn: conn.fetch(sql.PRINCIPALS_ACTIVE_RUNS, *args))
    else:
        assert body.thread_id is not None  # checked by the model
        try:
            await threads.require(body.thread_id, principal)
        except ApiError:
            found = []
        else:
            ids = (body.thread_id, body.run_ids)
            found = await store.run(lambda conn: conn.fetch(sql.THREADS_RUNS, *ids))
    if not found:
        raise ApiError(404, "not_found", "No runs found to cancel.")
    for run in found:
        if run["status"] in ACTIVE:
            await stop_run(runs, runner, run["thread_id"], run, action)
    return Response(status_code=204)


@router.delete(
    "/threads/{thread_id}/runs/{run_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "The run is deleted"},
        409: {"model": ErrorBody, "description": "The run did not stop in time"},
        **READ_ERRORS,
    },
)
async def delete_run(
    thread_id: OwnedThreadDep,
    run_id: uuid.UUID,
    runs: RunsDep,
    log: EventLogDep,
    leases: LeasesDep,
    runner: RunnerDep,
) -> Response:
    """Delete the run (what it stored in the thread stays); a queued or running one is
    stopped first, as `cancel` stops it."""
    run = await runs.get(thread_id, run_id)
    if run["status"] in ACTIVE:
        await stop_run(runs, runner, thread_id, run, "interrupt")
        follower = RunFollower(log, leases, runs, thread_id)
        await follower.settled(run_id)
        if await follower.active(run_id):
            raise ApiError(
                409, "session_busy", f"Run {run_id} did not stop yet; delete it again soon."
            )
    await runs.drop(thread_id, run_id, run["lease_id"])
    return Response(status_code=204)
