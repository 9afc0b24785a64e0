"""Weather providers: Open-Meteo (geocoding + current conditions) and offline samples."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Protocol

import httpx

from src.tools.http import ToolError, get_json
from src.tools.weather.schemas import WeatherReport

GEOCODING_BASE_URL = "https://geocoding-api.open-meteo.com/v1"
FORECAST_BASE_URL = "https://api.open-meteo.com/v1"
# WMO weather interpretation codes used by Open-Meteo.
WMO_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "drizzle",
    55: "dense drizzle",
    61: "light rain",
    63: "rain",
    65: "heavy rain",
    66: "freezing rain",
    67: "freezing rain",
    71: "light snow",
    73: "snow",
    75: "heavy snow",
    77: "snow grains",
    80: "rain showers",
    81: "rain showers",
    82: "violent rain showers",
    85: "snow showers",
    86: "snow showers",
    95: "thunderstorm",
    96: "thunderstorm with hail",
    99: "thunderstorm with hail",
}


class WeatherProvider(Protocol):
    async def current(self, city: str) -> WeatherReport: ...


class OpenMeteoWeather:
    """Real data from Open-Meteo (no API key)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        attempts: int = 2,
        *,
        geocoding_url: str = GEOCODING_BASE_URL,
        forecast_url: str = FORECAST_BASE_URL,
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.search_url = geocoding_url.rstrip("/") + "/search"
        self.forecast_url = forecast_url.rstrip("/") + "/forecast"

    async def current(self, city: str) -> WeatherReport:
        found = await get_json(
            self.client,
            self.search_url,
            {"name": city, "count": 1, "language": "en", "format": "json"},
            attempts=self.attempts,
            service="Open-Meteo geocoding",
            topic="weather",
        )
        places = found.get("results") or []
        if not places:
            raise ToolError(f"no city named {city!r} was found")
        place = places[0]
        data = await get_json(
            self.client,
            self.forecast_url,
            {
                "latitude": place["latitude"],
                "longitude": place["longitude"],
                "current": "temperature_2m,apparent_temperature,relative_humidity_2m,"
                "weather_code,wind_speed_10m",
                "timezone": "UTC",
            },
            attempts=self.attempts,
            service="Open-Meteo",
            topic="weather",
        )
        now = data["current"]
        return WeatherReport(
            city=place["name"],
            country=place.get("country"),
            temperature_c=now["temperature_2m"],
            feels_like_c=now["apparent_temperature"],
            humidity_pct=now["relative_humidity_2m"],
            conditions=WMO_CODES.get(now["weather_code"], f"weather code {now['weather_code']}"),
            wind_kmh=now["wind_speed_10m"],
            observed_at=now["time"] + "Z",
            source="Open-Meteo",
        )


class OfflineWeather:
    """Deterministic sample data for machines without internet; labelled as such."""

    async def current(self, city: str) -> WeatherReport:
        seed = int.from_bytes(hashlib.sha256(city.lower().encode()).digest()[:8], "big")
        temperature = round(-5 + (seed % 3500) / 100, 1)
        return WeatherReport(
            city=city.title(),
            country=None,
            temperature_c=temperature,
            feels_like_c=round(temperature - (seed >> 8) % 30 / 10, 1),
            humidity_pct=float(30 + (seed >> 16) % 60),
            conditions=list(WMO_CODES.values())[(seed >> 24) % len(WMO_CODES)],
            wind_kmh=float((seed >> 32) % 40),
            observed_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
            source="offline sample data (not a real observation)",
        )
