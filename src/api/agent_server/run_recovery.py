"""Runs whose worker died: each worker's `RunSweeper` looks, about once a second, for runs
that started and have not ended while nothing holds their thread (their worker was killed,
or lost its lease), and for queues whose accepting worker is gone, and takes them over.

A run is taken over as langgraph-api's queue retries a run whose worker died: a new
attempt (`attempt` + 1, at most `MAX_ATTEMPTS`, then the run ends `error`) under a lease
of its own, on the turn runner like any run, going on from the run's last checkpoint as a
retried `/chat` turn does (`turn_identity`, kind `resume`): finished steps and tool calls
do not run again, a tool call that was under way runs again under the same idempotency key
(the run's id and the call's, `tool_guard`), and the dead attempt's late writes are fenced
off by the lease. Taking a run over is a compare-and-set on the lease its row names
(`RunBook.reclaim`), so one worker does it, once; only the attempt holding that lease may
record how the run ended. A run with no checkpoint yet runs again from its input; one whose
last checkpoint has nothing left to run ends `success`, and one that stopped there for the
user (an interrupt, a breakpoint) `interrupted`, without running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import asyncpg
from langchain_core.runnables import RunnableConfig

from src.agent.memory.jsonb import loads_jsonb
from src.agent.memory.store import StorageUnavailableError
from src.api.admission import OverloadedError, TurnAdmission
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_play import RunPlay, RunSpec
from src.api.agent_server.run_queue import ENQUEUE_WAIT_SECONDS, LeftQueue
from src.api.agent_server.run_shapes import CommandBody
from src.api.agent_server.run_start import command_of
from src.api.routes.chat import admitted
from src.api.turn_cancel import TurnStopped
from src.api.turn_identity import TURN_ID_KEY, TurnPlan, turn_history
from src.api.turn_leases import SessionBusyError
from src.api.turn_play import Play
from src.api.turns import Prepare, TurnRunner

logger = logging.getLogger("vera.runs")

MAX_ATTEMPTS = 3  # langgraph-api's BG_JOB_MAX_RETRIES (its default)
SWEEP_SECONDS = 1.0
SWEEP_BATCH = 20
# The keys `run_kwargs` adds to the recorded configurable (the runner sets its own).
IDENTITY_KEYS = frozenset({"run_id", "thread_id", "graph_id", "assistant_id"})


@dataclass(frozen=True)
class Recovery:
    """How a taken-over run goes on: `rerun` (from its input: it stored nothing), `resume`
    (from its last checkpoint), `ended` (nothing runs; it ends `status`) or `exceeded`
    (it ends `error`)."""

    how: Literal["rerun", "resume", "ended", "exceeded"]
    status: str | None = None


def recovery_of(
    attempt: int, ran: bool, latest: bool, unfinished: bool, paused: bool = False
) -> Recovery:
    """How attempt `attempt` of a run goes on: `ran`, the run stored a checkpoint;
    `latest`, its last one is the thread's last; `unfinished`, that one has steps to run;
    `paused`, the run stopped there for the user (going on would pass that stop)."""
    if attempt > MAX_ATTEMPTS:
        return Recovery("exceeded")
    if not ran:
        return Recovery("rerun")
    if unfinished and latest:
        return Recovery("ended", "interrupted") if paused else Recovery("resume")
    # It finished before its worker died; or another turn wrote on top of it mid-run.
    return Recovery("ended", "error" if unfinished else "success")


def paused_at(kwargs: dict[str, Any], next_nodes: Sequence[str], step: int, asked: bool) -> bool:
    """Whether a run stopped at its checkpoint (next `next_nodes`, step `step`) for the user:
    an `interrupt()` asked (`asked`), or a breakpoint (`interrupt_before` a next node, or
    `interrupt_after: "*"` past its input). A resume would pass it, as a resume does."""
    before, after = kwargs.get("interrupt_before"), kwargs.get("interrupt_after")
    if asked or (after == "*" and step >= 0):
        return True
    return bool(next_nodes) and (before == "*" or any(n in (before or ()) for n in next_nodes))


def spec_of(kwargs: dict[str, Any], resume: bool) -> RunSpec:
    """What a run runs, from what its row recorded it was asked (`run_kwargs`); a resume
    goes on from the thread's last checkpoint, with no input (nor `checkpoint_id`)."""
    config: dict[str, Any] = dict(kwargs.get("config") or {})
    dropped = IDENTITY_KEYS | ({"checkpoint_id", "checkpoint_ns"} if resume else set())
    config["configurable"] = {
        k: v for k, v in (config.get("configurable") or {}).items() if k not in dropped
    }
    graph_input: Any = kwargs.get("input")
    if kwargs.get("command"):
        graph_input = command_of(CommandBody.model_validate(kwargs["command"]))
    extra = {n: kwargs[n] for n in ("interrupt_before", "interrupt_after") if kwargs.get(n)}
    if kwargs.get("context"):
        extra["context"] = kwargs["context"]
    modes = kwargs.get("stream_mode") or ["values"]
    subgraphs = bool(kwargs.get("subgraphs"))
    return RunSpec(
        None if resume else graph_input, cast(RunnableConfig, config), modes, subgraphs, extra
    )


class RunSweeper:
    """This worker's look for runs to take over and queues to start (see the module)."""

    def __init__(self, runner: TurnRunner, admission: TurnAdmission, runs: RunBook) -> None:
        self.runner, self.admission, self.runs = runner, admission, runs

    async def run(self, every: float = SWEEP_SECONDS) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except (StorageUnavailableError, asyncpg.PostgresError) as exc:
                logger.debug("run sweep failed (%s)", type(exc).__name__)

    async def sweep(self) -> None:
        """One look: take over the orphaned runs, then start the queues' first runs."""
        for row in await self.runs.orphaned(SWEEP_BATCH):
            lease_id = uuid.uuid4()
            await self._launch(row, lease_id, self._take_over(row, lease_id))
        for row in await self.runs.queue_heads(SWEEP_BATCH):
            await self._start_queued(row)

    async def _launch(self, row: asyncpg.Record, lease_id: uuid.UUID, prepare: Prepare) -> None:
        """Start a turn of `row`'s thread under lease `lease_id`, unless the thread or this
        worker is busy or another worker got there first. A run that cannot be started is
        logged and looked at again (a taken-over one used an attempt: it ends, bounded)."""
        try:
            await admitted(
                self.admission,
                lambda on_end: self.runner.launch(row["session_id"], lease_id, prepare, on_end),
            )
        except (SessionBusyError, OverloadedError, LeftQueue):
            return
        except (StorageUnavailableError, asyncpg.PostgresError):
            raise
        except Exception as exc:
            logger.error("run %s not started by the sweep", row["run_id"], exc_info=exc)

    def _take_over(self, row: asyncpg.Record, lease_id: uuid.UUID) -> Prepare:
        run_id, thread_id, seen = row["run_id"], row["session_id"], row["lease_id"]
        kwargs = loads_jsonb(row["kwargs"])

        async def prepare() -> tuple[TurnPlan, Play]:
            attempt = await self.runs.reclaim(run_id, seen, lease_id)
            if attempt is None:
                raise LeftQueue  # another worker took it over, or it ended
            cancelled = await self.runner.cancels.asked(seen)
            return await self._attempt(thread_id, run_id, attempt, kwargs, cancelled)

        return prepare

    async def _attempt(
        self,
        thread_id: uuid.UUID,
        run_id: uuid.UUID,
        attempt: int,
        kwargs: dict[str, Any],
        cancelled: bool,
    ) -> tuple[TurnPlan, Play]:
        """The play of attempt `attempt` at run `run_id` (see `recovery_of`); a run whose
        cancel its dead attempt never saw is stopped at once, as a cancel stops a run."""
        graph = self.runner.graph
        config: RunnableConfig = {"configurable": {"thread_id": str(thread_id)}}
        history = await turn_history(graph, config, str(run_id))
        state = await graph.aget_state(config)
        latest = (state.metadata or {}).get(TURN_ID_KEY) == str(run_id)
        unfinished = bool(history) and bool(history[0].next or history[0].tasks)
        paused = bool(history) and paused_at(
            kwargs,
            history[0].next,
            int((history[0].metadata or {}).get("step", -1)),
            bool(history[0].interrupts),
        )
        recovery = recovery_of(attempt, bool(history), latest, unfinished, paused)
        logger.warning(
            "run %s of thread %s taken over: attempt %d, %s",
            run_id,
            thread_id,
            attempt,
            recovery.how,
        )
        refusal: Exception | None = None
        spec = RunSpec(None, {}, [], False)  # what an attempt that runs nothing "runs"
        if recovery.how in ("rerun", "resume"):
            spec = spec_of(kwargs, resume=recovery.how == "resume")
        if cancelled:  # stopped as the dead attempt would have been (a rollback too)
            refusal = TurnStopped()
        elif recovery.how == "exceeded":
            refusal = RuntimeError(
                f"Run {run_id} exceeded max attempts ({MAX_ATTEMPTS}): the workers running "
                "it stopped (killed, or lost the thread's lease) each time."
            )
        play = RunPlay(graph, self.runs, spec, run_id, attempt, recovery.status, refusal)
        kind: Literal["new", "resume"] = "resume" if recovery.how == "resume" else "new"
        return TurnPlan(kind, str(run_id)), play

    async def _start_queued(self, row: asyncpg.Record) -> None:
        """Start a queue's first run (its accepting worker may be gone), or end it
        `timeout` once it waited `ENQUEUE_WAIT_SECONDS`."""
        run_id = row["run_id"]
        if datetime.now(UTC) - row["created_at"] > timedelta(seconds=ENQUEUE_WAIT_SECONDS):
            if await self.runs.dequeue(run_id, "timeout"):
                logger.warning("queued run %s timed out", run_id)
            return
        spec = spec_of(loads_jsonb(row["kwargs"]), resume=False)

        async def claim() -> tuple[TurnPlan, Play]:
            if not await self.runs.dequeue(run_id, "running"):
                raise LeftQueue
            return TurnPlan("new", str(run_id)), RunPlay(self.runner.graph, self.runs, spec, run_id)

        await self._launch(row, run_id, claim)


@contextlib.asynccontextmanager
async def sweeping_runs(sweeper: RunSweeper) -> AsyncIterator[RunSweeper]:
    """Run `sweeper`'s loop for the block."""
    task = asyncio.create_task(sweeper.run(), name="run-sweep")
    try:
        yield sweeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
