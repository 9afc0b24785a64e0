"""Weather tool input and output."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class WeatherQuery(BaseModel):
    """Arguments of `get_weather`."""

    city: str = Field(description="City name, e.g. 'Montevideo' or 'New York'")

    @field_validator("city")
    @classmethod
    def _city(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("city must not be empty")
        if len(value) > 80:
            raise ValueError("city name is too long (80 characters at most)")
        if not any(ch.isalpha() for ch in value) or any(ch in value for ch in "<>{}[]\\;$"):
            raise ValueError(f"{value!r} does not look like a city name")
        return value


class WeatherReport(BaseModel):
    """Current conditions in a city."""

    city: str
    country: str | None
    temperature_c: float
    feels_like_c: float
    humidity_pct: float
    conditions: str
    wind_kmh: float
    observed_at: str
    source: str
