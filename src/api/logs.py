"""Log lines that say which request and which turn they belong to, as text or JSON.

`REQUEST_ID` is set per HTTP request (`tracing.RequestContextMiddleware`; a client's
`X-Request-ID` when it sends a sane one), `TURN_ID` / `SESSION_ID` while a turn runs (its
background task inherits the request's id). `configure()` installs a root handler whose
lines carry them: `LOG_FORMAT=text` (default) or `json` (one object per line).
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("vera_request_id", default="-")
TURN_ID: ContextVar[str] = ContextVar("vera_turn_id", default="-")
SESSION_ID: ContextVar[str] = ContextVar("vera_session_id", default="-")

TEXT_FORMAT = (
    "%(asctime)s %(levelname)s [%(process)d] %(name)s "
    "[request=%(request_id)s turn=%(turn_id)s]: %(message)s"
)


class ContextFilter(logging.Filter):
    """Adds `request_id`, `turn_id` and `session_id` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.turn_id = TURN_ID.get()
        record.session_id = SESSION_ID.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid and the context ids."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "request_id": getattr(record, "request_id", "-"),
            "turn_id": getattr(record, "turn_id", "-"),
            "session_id": getattr(record, "session_id", "-"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, log_format: str = "text") -> None:
    """The root handler (replacing `logging.basicConfig`)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JSONFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line per model and tool call, for DEBUG only.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
