"""Thread ids to `conversations.session_id`."""

from __future__ import annotations

import functools
import uuid

_THREAD_NAMESPACE = uuid.UUID("6f0d3c8e-52a4-4c1e-9a57-0b0c1e2f3a4d")


@functools.lru_cache(maxsize=4096)  # called several times per step with the same id
def session_id_for(thread_id: str | uuid.UUID) -> uuid.UUID:
    """The `conversations.session_id` of a thread id.

    A UUID in the canonical 8-4-4-4-12 hex form, in any letter case, is the session id
    itself; any other thread id ("1", "user-42", a UUID in braces or without hyphens) maps
    to a stable UUIDv5 of its text. The original text is kept in `checkpoints.thread_id`.
    """
    text = str(thread_id)
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return uuid.uuid5(_THREAD_NAMESPACE, text)
    return parsed if str(parsed) == text.lower() else uuid.uuid5(_THREAD_NAMESPACE, text)
