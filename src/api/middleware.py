"""Pure ASGI middleware (they never buffer a stream): security headers, CORS answered in
JSON, the request head's and body's limits; plus the access-log redaction."""

from __future__ import annotations

import asyncio
import logging
import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.errors import error_response
from src.api.http_protocol import head_too_large

SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"permissions-policy": b"geolocation=(), camera=(), microphone=()",
}
# The API serves JSON and event streams only; the docs page needs its CDN assets.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
NO_STORE_PREFIXES = ("/chat", "/sessions", "/admin")


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS`, a strict CSP outside the docs, and `no-store` on chat data."""

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = dict(SECURITY_HEADERS)
                if not path.startswith(("/docs", "/redoc")):
                    extra[b"content-security-policy"] = API_CSP
                if path.startswith(NO_STORE_PREFIXES):
                    extra[b"cache-control"] = b"no-store"
                if self.hsts:
                    extra[b"strict-transport-security"] = b"max-age=31536000; includeSubDomains"
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeaderLimitMiddleware:
    """431 (JSON) for a request with more than `max_headers` header fields, or whose header
    fields are over `max_bytes`, under any server. (`python -m src.api` serves with
    `http_protocol.LimitedH11Protocol`, which stops reading a head at `max_bytes`.)"""

    def __init__(self, app: ASGIApp, max_bytes: int, max_headers: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            problem = None
            if len(headers) > self.max_headers:
                problem = f"The request has more than {self.max_headers} header fields."
            elif sum(len(name) + len(value) + 4 for name, value in headers) > self.max_bytes:
                problem = head_too_large(self.max_bytes)
            if problem is not None:
                response = error_response(431, "headers_too_large", problem)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestBodyMiddleware:
    """413 (JSON body) for a request body over `max_bytes`, declared or streamed; 408 when
    the body does not arrive within `timeout_seconds` (a client that sends headers and then
    nothing would otherwise hold the connection)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_bytes:,} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, "payload_too_large", self._too_large())
            await response(scope, receive, send)
            return
        received = 0
        body_done = False
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body: waits for the disconnect, as long as it takes
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                # FastAPI re-raises HTTPExceptions met while reading a body.
                raise HTTPException(
                    408,
                    f"The request body did not arrive within {self.timeout_seconds:g} seconds.",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._too_large())
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        await self.app(scope, limited_receive, send)


class JSONCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered 403 in JSON (not a 400 in text)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        return error_response(
            403, "forbidden", f"CORS preflight refused: this {refused} is not allowed."
        )


# Query parameters whose values never reach the access log.
_SECRET_PARAM = re.compile(
    r"(?i)([?&][^=&]*(?:key|token|secret|password|auth|signature)[^=&]*=)[^&\s\"]*"
)


class RedactSecretsFilter(logging.Filter):
    """Masks the values of secret-looking query parameters (`?api_key=...`) in uvicorn's
    access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            if isinstance(args[2], str):
                args[2] = _SECRET_PARAM.sub(r"\1***", args[2])
                record.args = tuple(args)
        return True


def redact_access_log() -> None:
    """Install `RedactSecretsFilter` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecretsFilter) for f in access.filters):
        access.addFilter(RedactSecretsFilter())
