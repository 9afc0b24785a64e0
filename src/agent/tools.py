"""The tools Vera can call, with their providers chosen by settings."""

from __future__ import annotations

import httpx
from langchain_core.tools import BaseTool

from src.config.settings import Settings
from src.tools.stocks.client import FinnhubStocks, OfflineStocks, StockProvider
from src.tools.stocks.tool import make_stock_tool
from src.tools.weather.client import OfflineWeather, OpenMeteoWeather, WeatherProvider
from src.tools.weather.tool import make_weather_tool


def build_tools(settings: Settings, client: httpx.AsyncClient | None = None) -> list[BaseTool]:
    """`get_weather` and `get_stock_price` over one shared HTTP client."""
    client = client or httpx.AsyncClient(timeout=settings.tool_timeout_seconds)
    weather: WeatherProvider = (
        OpenMeteoWeather(
            client,
            settings.tool_max_attempts,
            geocoding_url=settings.open_meteo_geocoding_url,
            forecast_url=settings.open_meteo_forecast_url,
        )
        if settings.weather_provider == "open-meteo"
        else OfflineWeather()
    )
    stocks: StockProvider = (
        FinnhubStocks(
            client,
            settings.finnhub_api_key,
            settings.tool_max_attempts,
            base_url=settings.finnhub_base_url,
        )
        if settings.stock_provider == "finnhub" and settings.finnhub_api_key
        else OfflineStocks()
    )
    return [make_weather_tool(weather), make_stock_tool(stocks)]
