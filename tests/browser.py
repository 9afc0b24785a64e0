"""Browser-test helpers: headless Debian Chromium driven by Selenium, and the app served by
uvicorn in a thread of its own (Selenium's calls block, so the server needs its own loop)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI

from tests.api_harness import serve

T = TypeVar("T")

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def _find(names: tuple[str, ...], env: str) -> str | None:
    configured = os.environ.get(env)
    if configured:
        return configured
    return next((path for name in names if (path := shutil.which(name))), None)


def browser_paths() -> tuple[str, str]:
    """Paths of Chromium and its driver, or a skip saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (it is a dev dependency: uv sync)")
    browser = _find(BROWSERS, "CHROMIUM_PATH")
    driver = _find(DRIVERS, "CHROMEDRIVER_PATH")
    if browser is None or driver is None:
        missing = " and ".join(
            what for what, path in (("chromium", browser), ("chromedriver", driver)) if not path
        )
        pytest.skip(
            f"no {missing} found: install Debian's chromium and chromium-driver packages "
            "(.ci/run does), or set CHROMIUM_PATH / CHROMEDRIVER_PATH"
        )
    return browser, driver


def chromium(width: int = 1180, height: int = 820) -> Any:
    """A headless Chromium that cannot reach the network: every host but loopback goes to a
    proxy that does not exist, and Chrome's background services are off."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--proxy-server=http://127.0.0.1:9",  # loopback bypasses proxies by default
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--force-prefers-reduced-motion",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


class LiveServer:
    """The app under uvicorn on a free port, in a thread running its own event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="live-server", daemon=True)
        self._started: Future[str] = Future()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
        finally:
            # Tasks a stream left behind (sse-starlette's shutdown watchers) end with the loop.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self.app) as url:
            self._started.set_result(url)
            await self._stop.wait()

    def start(self) -> str:
        self._thread.start()
        self.url = self._started.result(timeout=60)
        return self.url

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coroutine` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[[], Any]) -> None:
        """Call `function` on the server's loop (e.g. `gate.set`)."""
        self.loop.call_soon_threadsafe(function)


def page_errors(driver: Any) -> list[str]:
    """Console errors of the page since the last call that are not an HTTP error status the
    page handles (CSP violations, uncaught exceptions, failed module loads...)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
        and "the server responded with a status of" not in entry["message"]
    ]


@contextmanager
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()
