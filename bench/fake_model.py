"""`python -m bench.fake_model`: the test suite's OpenAI-protocol server
(`tests/fake_openai.py`) on a free port of 127.0.0.1 (its base URL printed on the first line
of stdout), answering every request alike: `BENCH_MODEL_PIECES` chunks `BENCH_MODEL_EVERY`
seconds apart, like a fast hosted model streaming a short answer. It keeps nothing of what
it receives."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.fake_openai import FakeOpenAI, Reply

ANSWER = (
    "Here is a short answer from the benchmark's model, streamed in pieces like a hosted "
    "model would send it, so that the API stores and relays tokens under load."
)


class Always(list[Any]):
    """A script that never runs out (and a record that keeps nothing)."""

    def __init__(self, reply: Reply | None = None) -> None:
        super().__init__()
        self.reply = reply

    def __bool__(self) -> bool:
        return self.reply is not None

    def pop(self, index: Any = -1) -> Any:
        return self.reply

    def append(self, item: Any) -> None:
        pass


def main() -> None:
    pieces = int(os.environ.get("BENCH_MODEL_PIECES", "10"))
    every = float(os.environ.get("BENCH_MODEL_EVERY", "0.03"))
    fake = FakeOpenAI()
    fake.script = Always(Reply(text=ANSWER, pieces=pieces, every=every))
    fake.received = Always()

    async def serve() -> None:
        async with fake.serve() as url:
            print(url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
