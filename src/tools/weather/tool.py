"""The `get_weather` LangChain tool."""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool

from src.tools.weather.client import WeatherProvider
from src.tools.weather.schemas import WeatherQuery


def make_weather_tool(provider: WeatherProvider) -> BaseTool:
    """`get_weather(city)` returning the current conditions as JSON."""

    async def get_weather(city: str) -> str:
        report = await provider.current(city)
        return report.model_dump_json()

    return StructuredTool.from_function(
        coroutine=get_weather,
        name="get_weather",
        description="Current weather in a city: temperature, feels-like, humidity, "
        "conditions and wind.",
        args_schema=WeatherQuery,
    )
