"""The tools' provider APIs (Finnhub quotes, Open-Meteo geocoding and forecasts) on
127.0.0.1, counting every call at the tool: which tool call it was (its `Idempotency-Key`)
and how many times it reached the API. A `gate` coroutine, when set, runs before each
answer (a test takes a database lock there, at the exact moment a tool is working)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.api_harness import serve


class FakeToolApis:
    """Every call received, by tool, and by idempotency key."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # "weather" / "stocks"
        self.keys: Counter[str] = Counter()  # Idempotency-Key -> calls with it
        self.unkeyed = 0
        self.gate: Callable[[], Awaitable[None]] | None = None

    async def _record(self, request: Request, tool: str) -> None:
        self.calls[tool] += 1
        key = request.headers.get("idempotency-key")
        if key:
            self.keys[key] += 1
        else:
            self.unkeyed += 1
        if self.gate is not None:
            await self.gate()

    async def _quote(self, request: Request) -> JSONResponse:
        await self._record(request, "stocks")
        return JSONResponse({"c": 187.5, "d": 1.25, "dp": 0.67, "t": 1_700_000_000})

    async def _search(self, request: Request) -> JSONResponse:
        await self._record(request, "weather")
        place = {"name": "Oslo", "country": "Norway", "latitude": 59.9, "longitude": 10.7}
        return JSONResponse({"results": [place]})

    async def _forecast(self, request: Request) -> JSONResponse:
        current = {
            "time": "2025-01-01T12:00",
            "temperature_2m": -3.0,
            "apparent_temperature": -7.5,
            "relative_humidity_2m": 80,
            "weather_code": 71,
            "wind_speed_10m": 12.0,
        }
        return JSONResponse({"current": current})

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[dict[str, str]]:
        """Serve for the block; yields the settings that point both tools here."""
        app = Starlette(
            routes=[
                Route("/finnhub/quote", self._quote),
                Route("/geo/search", self._search),
                Route("/meteo/forecast", self._forecast),
            ]
        )
        async with serve(app) as url:  # type: ignore[arg-type]
            yield {
                "WEATHER_PROVIDER": "open-meteo",
                "STOCK_PROVIDER": "finnhub",
                "FINNHUB_API_KEY": "finnhub-test-key",
                "FINNHUB_BASE_URL": f"{url}/finnhub",
                "OPEN_METEO_GEOCODING_URL": f"{url}/geo",
                "OPEN_METEO_FORECAST_URL": f"{url}/meteo",
            }
