"""A scripted OpenAI-protocol model that a test holds mid-answer, served from a thread of
its own: a blocking (sync) SDK call in the test does not stop it answering."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.fake_openai import FakeOpenAI, Reply


class HeldModel:
    """A `FakeOpenAI` (serve it with `threaded`) that, from its `hold_from`-th request on,
    answers only once `release` is set, and sets `asked` when such a request arrives."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self.fake.gate = self._gate
        self.requests = 0
        self.hold_from: int | None = None
        self.asked = threading.Event()
        self.release = threading.Event()

    async def _gate(self) -> None:
        self.requests += 1
        if self.hold_from is not None and self.requests >= self.hold_from:
            self.asked.set()
            await asyncio.to_thread(self.release.wait, 60)

    @contextmanager
    def holding(self, replies: list[Reply], hold: int) -> Iterator[None]:
        """Script `replies`; hold the `hold`-th request from now, and every later one, until
        the block ends."""
        self.asked.clear()
        self.release.clear()
        self.fake.add(*replies)
        self.hold_from = self.requests + hold
        try:
            yield
        finally:
            self.hold_from = None
            self.release.set()


@contextmanager
def threaded(fake: FakeOpenAI) -> Iterator[str]:
    """`fake` served on its own event loop in its own thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url: asyncio.Future[str] = loop.create_future()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with fake.serve() as served:
                url.set_result(served)
                await stop.wait()
        except BaseException as exc:
            if not url.done():
                url.set_exception(exc)
            raise

    served = asyncio.run_coroutine_threadsafe(serve(), loop)
    try:
        yield asyncio.run_coroutine_threadsafe(asyncio.wait_for(url, 60), loop).result()
    finally:
        loop.call_soon_threadsafe(stop.set)
        served.result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
