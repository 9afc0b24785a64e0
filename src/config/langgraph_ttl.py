"""LangGraph's thread TTL (`checkpointer.ttl` in `langgraph.json`, or the
`LANGGRAPH_THREAD_TTL` variable, as LangGraph's Agent Server reads them) as Vera's
settings: its keys map one to one onto `SESSION_TTL_*`.

    langgraph.json "checkpointer": {"ttl": {...}}     Vera's setting
    strategy: "delete"                                (what the session TTL does)
    default_ttl (minutes)                             SESSION_TTL_MINUTES
    sweep_interval_minutes                            SESSION_TTL_SWEEP_INTERVAL_MINUTES
    sweep_limit                                       SESSION_TTL_SWEEP_LIMIT

Strategy `keep_latest` (LangGraph: prune the old checkpoints of threads idle past
`default_ttl`, keep the thread) is checkpoint retention: `default_ttl` is then
CHECKPOINT_RETENTION_MAX_AGE_MINUTES and `sweep_limit` CHECKPOINT_RETENTION_SWEEP_LIMIT.
Vera's own retention keys sit next to `ttl`, in `checkpointer.retention`:

    "checkpointer": {"retention": {...}}               Vera's setting
    keep_latest                                       CHECKPOINT_RETENTION_KEEP_LATEST
    max_age_minutes                                   CHECKPOINT_RETENTION_MAX_AGE_MINUTES
    sweep_limit                                       CHECKPOINT_RETENTION_SWEEP_LIMIT
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
KEEP_LATEST_KEYS = {
    "default_ttl": "checkpoint_retention_max_age_minutes",
    "sweep_interval_minutes": "session_ttl_sweep_interval_minutes",  # retention rides on it
    "sweep_limit": "checkpoint_retention_sweep_limit",
}
RETENTION_KEYS = {
    "keep_latest": "checkpoint_retention_keep_latest",
    "max_age_minutes": "checkpoint_retention_max_age_minutes",
    "sweep_limit": "checkpoint_retention_sweep_limit",
}


def ttl_settings(ttl: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a `checkpointer.ttl` object stands for (none for None or `{}`);
    `SettingsError` for a strategy or key Vera does not have."""
    if not ttl:
        return {}
    strategy = ttl.get("strategy") or "delete"
    if strategy not in ("delete", "keep_latest"):
        raise SettingsError(
            f'checkpointer.ttl.strategy {strategy!r}: Vera reads "delete" (the session TTL) '
            'or "keep_latest" (checkpoint retention)'
        )
    return _mapped("checkpointer.ttl", ttl, KEYS if strategy == "delete" else KEEP_LATEST_KEYS)


def retention_settings(retention: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a `checkpointer.retention` object stands for (none for None or `{}`);
    `SettingsError` for a key Vera does not have."""
    return _mapped("checkpointer.retention", retention or {}, RETENTION_KEYS)


def _mapped(name: str, given: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(keys) - {"strategy"})
    if unknown:
        raise SettingsError(f"{name}: unknown keys {unknown} (Vera reads {', '.join(keys)})")
    return {field: given[key] for key, field in keys.items() if given.get(key) is not None}
