"""Authentication first: a pure ASGI middleware that identifies the caller before anything
else runs (body parsing, validation, the body-size limit), then rate-limits it.

A client address that fails authentication `AUTH_FAILURES_PER_MINUTE` times gets 429 for
every request until its window frees up, whatever key it sends next (so a correct guess
can't be told apart from a wrong one while blocked).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Receive, Scope, Send

from src.api import metrics
from src.api.error_catalogue import message_of
from src.api.errors import ApiError, error_response
from src.api.security import (
    DEFAULT_PRINCIPAL,
    USER_ID_PATTERN,
    KeyRing,
    Principal,
    RateLimiter,
    RateLimitExceeded,
    client_key,
)

# Paths served to anyone: liveness (ours, and the Agent Server API's `/ok` and `/info`), the
# chat page and its files, the API docs.
PUBLIC_PATHS = frozenset(
    {"/", "/health", "/ok", "/info", "/favicon.ico", "/docs", "/redoc", "/openapi.json"}
)
PUBLIC_PREFIXES = ("/static/", "/docs/")
USER_ID_HEADER = "x-user-id"


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a request carries in `X-API-Key` or `Authorization: Bearer`."""
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _rate_limited(exc: RateLimitExceeded, what: str) -> JSONResponse:
    metrics.rate_limited(what)
    return error_response(
        429,
        "rate_limited",
        f"Too many {what}: the limit is {exc.limit} per minute.",
        headers={"Retry-After": str(exc.retry_after)},
    )


class AuthMiddleware:
    """Sets `request.state.principal` for every non-public request, or answers 401 / 403 /
    429 itself."""

    def __init__(
        self, app: ASGIApp, keys: KeyRing, requests: RateLimiter, failures: RateLimiter
    ) -> None:
        self.app = app
        self.keys = keys
        self.requests = requests
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        address = scope["client"][0] if scope.get("client") else "unknown"
        response = None
        principal = None
        admin = False
        if self.keys.required:
            blocked = await self.failures.exhausted(f"address:{address}")
            key = None if blocked else self.keys.identify(presented_key(headers))
            if blocked is not None:
                response = _rate_limited(blocked, "failed authentications")
            elif key is None:
                try:
                    await self.failures.hit(f"address:{address}")
                    response = error_response(
                        401,
                        "unauthorized",
                        message_of("unauthorized"),
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                except RateLimitExceeded as exc:
                    response = _rate_limited(exc, "failed authentications")
            else:
                principal, response = self._principal(key.name, key.gateway, headers)
                # An admin acts as itself only, never for an end user (X-User-Id).
                admin = key.admin and principal is not None and not principal.user_id
        else:
            principal, response = self._principal(DEFAULT_PRINCIPAL, False, headers)
        if response is None and principal is not None:
            # Without keys, callers are told apart by address; with keys, by principal.
            who = client_key(principal) if self.keys.required else f"address:{address}"
            try:
                await self.requests.hit(who)
            except RateLimitExceeded as exc:
                response = _rate_limited(exc, "requests")
        if response is not None:
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["admin"] = admin
        await self.app(scope, receive, send)

    @staticmethod
    def _principal(
        name: str, gateway: bool, headers: dict[str, str]
    ) -> tuple[Principal | None, JSONResponse | None]:
        user_id = headers.get(USER_ID_HEADER)
        if user_id is None:
            return Principal(name), None
        if not gateway:
            return None, error_response(
                403,
                "forbidden",
                "X-User-Id is accepted only from API keys listed in API_GATEWAY_KEYS.",
            )
        if not USER_ID_PATTERN.match(user_id):
            return None, error_response(
                400,
                "invalid_request",
                "X-User-Id must be 1 to 128 printable ASCII characters without spaces.",
            )
        return Principal(name, user_id), None


_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="The API key (or `Authorization: Bearer <key>`), when the server has keys",
)


async def current_principal(
    request: Request, _key: Annotated[str | None, Security(_api_key_header)] = None
) -> Principal:
    """The caller `AuthMiddleware` identified (the `X-API-Key` parameter only documents
    the scheme in the OpenAPI document)."""
    return request.scope["state"]["principal"]


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def current_admin(principal: PrincipalDep, request: Request) -> Principal:
    """The caller, when its key is one of `API_ADMIN_KEYS` (403 otherwise)."""
    if not request.scope["state"].get("admin"):
        raise ApiError(
            403,
            "forbidden",
            "This operation needs an admin key (one named in API_ADMIN_KEYS), sent without "
            "X-User-Id.",
        )
    return principal


AdminDep = Annotated[Principal, Depends(current_admin)]
