"""The HTTP/1.1 protocol `python -m src.api` serves with: uvicorn's h11 one, whose request
head (request line and header fields) h11 bounds by `h11_max_incomplete_event_size`
(`MAX_HEADER_BYTES`), answering a head over it 431 with a JSON body, as every other error,
instead of uvicorn's plain-text 400. h11 stops buffering an unfinished head at the limit,
so a client sending megabytes of header costs at most one read (256 KiB) past it.

(A head that arrives whole in one read is not measured by h11: the header count and sizes
are checked again by `middleware.HeaderLimitMiddleware`, under any server.)
"""

from __future__ import annotations

import json
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

LINGER_SECONDS, LINGER_BYTES = 2.0, 1024 * 1024


def head_too_large(max_bytes: int) -> str:
    return f"The request line and header fields are larger than {max_bytes:,} bytes."


class _Connection(h11.Connection):
    """h11's server connection, remembering the status its last protocol error suggests
    (431 when the head outgrew the limit)."""

    refused_status = 400

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refused_status = exc.error_status_hint
            raise


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a head over the limit gets 431 in JSON, then the connection
    closes (what the client still sends is dropped unread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = self.config.h11_max_incomplete_event_size or (
            DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        )
        self.conn: _Connection = _Connection(h11.SERVER, self.max_head_bytes)
        self.lingering: int | None = None  # bytes dropped since the 431, once sent

    def send_400_response(self, msg: str) -> None:
        if self.conn.refused_status != 431:
            super().send_400_response(msg)
            return
        self.logger.warning("Request head over %d bytes refused (431).", self.max_head_bytes)
        # An `ErrorBody`; built here as this module is imported before the app's (and
        # the metrics') modules: `python -m src.api` with several workers.
        answer = {"code": "headers_too_large", "message": head_too_large(self.max_head_bytes)}
        body = json.dumps(answer).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(
                status_code=431, headers=headers, reason=b"Request Header Fields Too Large"
            ),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        # A lingering close, as nginx's: closing with the rest of the head unread would
        # reset the connection, and the client could lose the answer before reading it.
        # Send the answer and FIN, then drop what still comes, for at most LINGER_SECONDS
        # and LINGER_BYTES.
        self.lingering = 0
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.lingering is None:
            super().data_received(data)
            return
        self.lingering += len(data)
        if self.lingering > LINGER_BYTES:
            self.transport.close()
