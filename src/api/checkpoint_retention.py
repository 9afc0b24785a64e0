"""Checkpoint retention in every worker: after each TTL sweep (`session_ttl.py`), the
worker prunes the sessions whose checkpoints changed since the last pass, by the policy of
`CHECKPOINT_RETENTION_*` (off unless one is set). The work is the memory library's
(`ConversationCheckpointer.aretain_due`): bounded passes, each session in a short
transaction of its own under its row lock, never one a turn holds; the transcript and
every message stay.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from src.agent.memory import ConversationCheckpointer
from src.agent.memory.retention import RetentionPolicy
from src.agent.memory.retention_ops import RetentionPass
from src.agent.memory.store import StorageUnavailableError
from src.api import metrics
from src.config.settings import Settings

logger = logging.getLogger(__name__)


def policy_of(settings: Settings) -> RetentionPolicy:
    """The retention policy the settings give (off when neither rule is set)."""
    minutes = settings.checkpoint_retention_max_age_minutes
    return RetentionPolicy(
        keep_latest=settings.checkpoint_retention_keep_latest,
        max_age=None if minutes is None else timedelta(minutes=minutes),
    )


@dataclass
class CheckpointRetention:
    """One worker's retention passes."""

    checkpointer: ConversationCheckpointer
    policy: RetentionPolicy
    limit: int = 1000
    batch: int = 100

    @classmethod
    def from_settings(
        cls, checkpointer: ConversationCheckpointer, settings: Settings
    ) -> CheckpointRetention | None:
        """None when retention is off."""
        policy = policy_of(settings)
        if not policy.enabled:
            return None
        return cls(
            checkpointer,
            policy,
            settings.checkpoint_retention_sweep_limit,
            settings.checkpoint_retention_sweep_batch,
        )

    async def run_pass(self) -> RetentionPass:
        """One pass; what it pruned (logged when anything)."""
        started = time.perf_counter()
        done = await self.checkpointer.aretain_due(self.policy, limit=self.limit, batch=self.batch)
        if done.checkpoints:
            logger.info(
                "checkpoint retention: pruned %d checkpoints of %d sessions (%d bytes) in "
                "%.0f ms; %d busy sessions left for the next pass",
                done.checkpoints,
                done.sessions,
                done.bytes,
                (time.perf_counter() - started) * 1000,
                done.busy,
            )
        return done

    async def run_pass_logged(self) -> None:
        """`run_pass` for the sweep loop: a failure is logged and counted, never raised
        (the next pass tries again)."""
        try:
            done = await self.run_pass()
            metrics.retention_pass("ok", done.checkpoints, done.bytes)
        except (StorageUnavailableError, asyncpg.PostgresError) as exc:
            metrics.retention_pass("error")
            logger.warning("checkpoint retention failed (%s)", type(exc).__name__)
        except Exception as exc:
            metrics.retention_pass("error")
            logger.error("checkpoint retention failed", exc_info=exc)
