"""Every error code of the API in one table: its HTTP status and what it tells the user.

Request errors are answered with their status; a turn that fails after its stream began
ends with an `error` event holding the code and message, and `/chat/complete` answers it
with the code's status. Messages are the defaults; some answers name more (the field, the
limit, the session).
"""

from __future__ import annotations

from dataclasses import dataclass

from src.api.schemas import ErrorCode


@dataclass(frozen=True)
class ErrorKind:
    status: int
    message: str


CATALOGUE: dict[ErrorCode, ErrorKind] = {
    "invalid_request": ErrorKind(422, "The request is not valid."),
    "unauthorized": ErrorKind(
        401, "A valid API key is required: send it as X-API-Key or Authorization: Bearer."
    ),
    "forbidden": ErrorKind(403, "This request is not allowed."),
    "not_found": ErrorKind(404, "Not found."),
    "request_timeout": ErrorKind(408, "The request body did not arrive in time."),
    "payload_too_large": ErrorKind(413, "The request body is too large."),
    "headers_too_large": ErrorKind(431, "The request's header fields are too large or too many."),
    "unsupported_media_type": ErrorKind(
        415, "Send the body as JSON (Content-Type: application/json)."
    ),
    "rate_limited": ErrorKind(429, "Too many requests."),
    "session_busy": ErrorKind(
        409, "This session has a turn in progress; send the next message when it is done."
    ),
    "thread_exists": ErrorKind(
        409, "A thread with this id exists; send if_exists=do_nothing to get it instead."
    ),
    "turn_conflict": ErrorKind(
        409,
        "This turn_id was already used for a different message in this session; "
        "use a new turn_id for a new message.",
    ),
    "approval_pending": ErrorKind(
        409,
        "A turn of this session waits for your approval of a tool call; approve or "
        "deny it (POST /sessions/{id}/turns/{turn_id}/resume) before sending a new message.",
    ),
    "nothing_to_resume": ErrorKind(
        409, "This turn is not waiting for an approval, so there is nothing to resume."
    ),
    "message_not_found": ErrorKind(
        404, "No such message in the branch shown of this session (reload the conversation)."
    ),
    "not_a_user_message": ErrorKind(422, "Only a user message can be edited."),
    "nothing_to_regenerate": ErrorKind(409, "This session has no answer to regenerate yet."),
    "no_such_alternative": ErrorKind(
        422, "That message has no alternative with this index (see its `alternatives`)."
    ),
    "turn_cancelled": ErrorKind(
        409,
        "This turn was stopped (POST /sessions/{id}/turns/{turn_id}/cancel); what was "
        "streamed before is kept as its answer in the conversation.",
    ),
    "lease_lost": ErrorKind(
        409,
        "This turn ran past its lease and another turn took the session; its "
        "last step was not stored. Reload the conversation.",
    ),
    "shutting_down": ErrorKind(
        503,
        "This server is restarting. Send the same message with the same turn_id "
        "to get this turn's answer (it is resumed where it stopped).",
    ),
    "llm_timeout": ErrorKind(
        504, "The model did not answer in time. Send the message again to retry."
    ),
    "llm_unavailable": ErrorKind(
        503, "The model provider is unavailable. Send the message again to retry."
    ),
    "llm_incomplete": ErrorKind(
        502,
        "The model's answer broke off before it was complete; nothing of it "
        "was kept. Send the message again to retry.",
    ),
    "llm_invalid_output": ErrorKind(
        502,
        "The model produced an invalid tool call, so nothing was run or "
        "kept. Send the message again to retry, or rephrase it.",
    ),
    "llm_rejected": ErrorKind(
        502,
        "The model provider rejected the request (its key, model or settings "
        "need fixing on the service); sending the message again will not help until then.",
    ),
    "turn_limit": ErrorKind(
        502,
        "This turn needed more model steps or tool calls than the service allows; "
        "ask for less at once.",
    ),
    "storage_unavailable": ErrorKind(
        503, "The conversation store is unavailable. Try again shortly."
    ),
    "overloaded": ErrorKind(
        503,
        "The service is at capacity right now (the database is up). Send the message "
        "again after Retry-After seconds, best with the same turn_id.",
    ),
    "not_implemented": ErrorKind(501, "This part of the Agent Server API is not served."),
    "internal": ErrorKind(500, "An internal error occurred."),
}


def status_of(code: ErrorCode) -> int:
    return CATALOGUE[code].status


def message_of(code: ErrorCode) -> str:
    return CATALOGUE[code].message
