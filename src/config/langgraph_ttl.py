"""LangGraph's thread TTL (`checkpointer.ttl` in `langgraph.json`, or the
`LANGGRAPH_THREAD_TTL` variable, as LangGraph's Agent Server reads them) as Vera's
settings: its keys map one to one onto `SESSION_TTL_*`.

    langgraph.json "checkpointer": {"ttl": {...}}     Vera's setting
    strategy: "delete"                                (what the session TTL does)
    default_ttl (minutes)                             SESSION_TTL_MINUTES
    sweep_interval_minutes                            SESSION_TTL_SWEEP_INTERVAL_MINUTES
    sweep_limit                                       SESSION_TTL_SWEEP_LIMIT

Strategy `keep_latest` (prune a thread's old checkpoints, keep the thread) is checkpoint
retention, not a session TTL: refused here, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from src.config.settings import SettingsError

KEYS = {
    "default_ttl": "session_ttl_minutes",
    "sweep_interval_minutes": "session_ttl_sweep_interval_minutes",
    "sweep_limit": "session_ttl_sweep_limit",
}


def ttl_settings(ttl: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a `checkpointer.ttl` object stands for (none for None or `{}`);
    `SettingsError` for a strategy or key Vera does not have."""
    if not ttl:
        return {}
    strategy = ttl.get("strategy") or "delete"
    if strategy != "delete":
        raise SettingsError(
            f"checkpointer.ttl.strategy {strategy!r}: Vera's session TTL deletes idle "
            'sessions whole (strategy "delete"); keeping a thread\'s latest checkpoints is '
            "checkpoint retention, not a TTL"
        )
    unknown = sorted(set(ttl) - set(KEYS) - {"strategy"})
    if unknown:
        raise SettingsError(
            f"checkpointer.ttl: unknown keys {unknown} (Vera reads strategy, "
            + ", ".join(KEYS)
            + ")"
        )
    return {field: ttl[key] for key, field in KEYS.items() if ttl.get(key) is not None}
