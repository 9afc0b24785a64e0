"""Stock tool input and output."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

TICKER = re.compile(r"^[A-Z]{1,5}(\.[A-Z]{1,2})?$")


class StockQuery(BaseModel):
    """Arguments of `get_stock_price`."""

    ticker: str = Field(description="Stock ticker symbol, e.g. 'AAPL' or 'BRK.B'")

    @field_validator("ticker")
    @classmethod
    def _ticker(cls, value: str) -> str:
        value = value.strip().upper().removeprefix("$")
        if not TICKER.match(value):
            raise ValueError(
                f"{value[:20]!r} is not a ticker: use 1-5 letters, optionally with a "
                "class suffix such as BRK.B"
            )
        return value


class StockQuote(BaseModel):
    """The latest price of a stock."""

    ticker: str
    price: float
    currency: str
    change: float
    change_percent: float
    timestamp: str
    source: str
