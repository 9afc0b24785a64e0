"""Tools with faked HTTP (httpx.MockTransport): real providers, retries, clear failures."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from src.tools.http import ToolError
from src.tools.stocks.client import FinnhubStocks, OfflineStocks
from src.tools.stocks.schemas import StockQuery
from src.tools.weather.client import OpenMeteoWeather
from src.tools.weather.schemas import WeatherQuery


def client_for(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=1)


async def test_open_meteo_geocodes_then_reads_current_conditions() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "geocoding-api.open-meteo.com":
            assert request.url.params["name"] == "Montevideo"
            return httpx.Response(
                200,
                json={
                    "results": [
                        {
                            "name": "Montevideo",
                            "country": "Uruguay",
                            "latitude": -34.9,
                            "longitude": -56.2,
                        }
                    ]
                },
            )
        assert request.url.params["latitude"] == "-34.9"
        return httpx.Response(
            200,
            json={
                "current": {
                    "time": "2026-11-26T12:00",
                    "temperature_2m": 22.5,
                    "apparent_temperature": 23.1,
                    "relative_humidity_2m": 60,
                    "weather_code": 2,
                    "wind_speed_10m": 14.0,
                }
            },
        )

    report = await OpenMeteoWeather(client_for(handler)).current("Montevideo")
    assert (report.city, report.country, report.temperature_c) == ("Montevideo", "Uruguay", 22.5)
    assert report.conditions == "partly cloudy" and report.source == "Open-Meteo"


async def test_unknown_city_is_a_tool_error() -> None:
    weather = OpenMeteoWeather(client_for(lambda r: httpx.Response(200, json={})))
    with pytest.raises(ToolError, match="no city named 'Atlantis'"):
        await weather.current("Atlantis")


async def test_5xx_is_retried_then_succeeds_and_timeouts_give_up() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503)
        return httpx.Response(200, json={"c": 10.5, "d": 0.5, "dp": 5.0, "t": 1764158400})

    quote = await FinnhubStocks(client_for(flaky), SecretStr("k"), attempts=2).quote("AAPL")
    assert quote.price == 10.5 and calls["n"] == 2

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ToolError, match="did not answer in time"):
        await FinnhubStocks(client_for(slow), SecretStr("k"), attempts=2).quote("AAPL")


@pytest.mark.parametrize(
    ("status", "message"), [(429, "quota exceeded"), (401, "refused our credentials")]
)
async def test_quota_and_auth_errors(status: int, message: str) -> None:
    stocks = FinnhubStocks(client_for(lambda r: httpx.Response(status)), SecretStr("k"))
    with pytest.raises(ToolError, match=message):
        await stocks.quote("AAPL")


async def test_unknown_ticker() -> None:
    body = {"c": 0, "d": None, "dp": None, "t": 0}
    stocks = FinnhubStocks(client_for(lambda r: httpx.Response(200, json=body)), SecretStr("k"))
    with pytest.raises(ToolError, match="no quote found"):
        await stocks.quote("ZZZZZ")


async def test_offline_providers_are_deterministic_and_labelled() -> None:
    a, b = await OfflineStocks().quote("AAPL"), await OfflineStocks().quote("AAPL")
    assert a.price == b.price and "offline" in a.source
    assert json.loads(a.model_dump_json())["ticker"] == "AAPL"


@pytest.mark.parametrize("ticker", ["AAPL", "brk.b", "$msft", "T"])
def test_valid_tickers(ticker: str) -> None:
    assert StockQuery(ticker=ticker).ticker == ticker.upper().lstrip("$")


@pytest.mark.parametrize("ticker", ["", "TOOLONG", "AAPL; DROP TABLE", "12345", "A" * 500])
def test_invalid_tickers(ticker: str) -> None:
    with pytest.raises(ValidationError, match="not a ticker"):
        StockQuery(ticker=ticker)


@pytest.mark.parametrize("city", ["", "   ", "x" * 200, "123", "<script>"])
def test_invalid_cities(city: str) -> None:
    with pytest.raises(ValidationError):
        WeatherQuery(city=city)
