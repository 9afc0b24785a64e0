"""`python -m src.api`: run the service with uvicorn (address from the settings)."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from src.api.http_protocol import LimitedH11Protocol
from src.config.settings import SettingsError, get_settings

# Idle keep-alive connections stay open longer than the idle timeout of the proxies and
# clients in front (load balancers use 60 s), so that a client never sends a request on a
# connection the server is closing at that moment (uvicorn's default is 5 s).
KEEP_ALIVE_SECONDS = 65


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(str(exc))
    from src.api import logs
    from src.api.startup import port_problem

    problem = port_problem(settings.api_host, settings.api_port)
    if problem is not None:  # before anything claims to listen there
        sys.exit(
            f"Vera cannot start: {settings.api_host}:{settings.api_port} is not free "
            f"({problem}); choose another port: API_PORT=8001 (make run PORT=8001)"
        )
    logs.configure(settings.log_level, settings.log_format)
    options: dict[str, Any] = dict(
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # uvicorn would trust X-Forwarded-For from 127.0.0.1; the app trusts exactly the
        # proxies of FORWARDED_ALLOW_IPS (none by default) itself.
        proxy_headers=False,
        # Streams end on their own within the grace (see `routes/chat.py`); this only
        # bounds a connection that would not.
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        # h11 (the runtime's only HTTP parser; httptools has no head limit) with the head
        # bounded: 431 in JSON over MAX_HEADER_BYTES, read no further.
        http=LimitedH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    if settings.api_workers > 1:  # uvicorn's supervisor, one app per worker process
        from src.api.workers import serve

        serve(settings, options)
        return
    from src.api.app import create_app

    try:
        app = create_app(settings)
    except SettingsError as exc:
        sys.exit(str(exc))
    uvicorn.run(app, **options)


if __name__ == "__main__":
    main()
