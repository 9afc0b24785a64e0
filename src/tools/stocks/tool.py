"""The `get_stock_price` LangChain tool."""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool

from src.tools.stocks.client import StockProvider
from src.tools.stocks.schemas import StockQuery


def make_stock_tool(provider: StockProvider) -> BaseTool:
    """`get_stock_price(ticker)` returning the latest quote as JSON."""

    async def get_stock_price(ticker: str) -> str:
        quote = await provider.quote(ticker)
        return quote.model_dump_json()

    return StructuredTool.from_function(
        coroutine=get_stock_price,
        name="get_stock_price",
        description="Latest price of a stock by ticker symbol, with the day's change.",
        args_schema=StockQuery,
    )
