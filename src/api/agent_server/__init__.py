"""The LangGraph Agent Server API (what `langgraph_sdk` and Studio call), served on Vera's
own sessions: `/ok` and `/info`, the assistants (`assistants.py`), threads (`threads.py`)
and their state (`thread_state.py`), in the shapes of `shapes.py`, and the runs of a
thread (`runs.py`, on Vera's turn runner: `run_start.py`, `run_play.py`; joined and
cancelled in `run_join.py`; stopped in bulk and deleted in `run_cancel.py`), and threadless
runs (`run_threadless.py`, on a thread made for the run)."""

from fastapi import APIRouter

from src.api.agent_server import (
    assistants,
    run_cancel,
    run_join,
    run_threadless,
    runs,
    thread_state,
    threads,
)
from src.api.agent_server.responses import AgentServerJSONResponse

router = APIRouter(default_response_class=AgentServerJSONResponse)
router.include_router(assistants.meta_router)
router.include_router(assistants.router)
router.include_router(threads.router)
router.include_router(thread_state.router)
router.include_router(runs.router)
router.include_router(run_join.router)
router.include_router(run_cancel.router)
router.include_router(run_threadless.router)
