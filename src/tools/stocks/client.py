"""Stock providers: Finnhub quotes and offline samples."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Protocol

import httpx
from pydantic import SecretStr

from src.tools.http import ToolError, get_json
from src.tools.stocks.schemas import StockQuote

FINNHUB_BASE_URL = "https://finnhub.io/api/v1"


class StockProvider(Protocol):
    async def quote(self, ticker: str) -> StockQuote: ...


class FinnhubStocks:
    """Real quotes from Finnhub (needs an API key)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: SecretStr,
        attempts: int = 2,
        *,
        base_url: str = FINNHUB_BASE_URL,
    ) -> None:
        self.client = client
        self.api_key = api_key
        self.attempts = attempts
        self.quote_url = base_url.rstrip("/") + "/quote"

    async def quote(self, ticker: str) -> StockQuote:
        data = await get_json(
            self.client,
            self.quote_url,
            {"symbol": ticker, "token": self.api_key.get_secret_value()},
            attempts=self.attempts,
            service="Finnhub",
            topic="stock price",
        )
        if not data or not data.get("c") or not data.get("t"):
            raise ToolError(f"no quote found for ticker {ticker!r}")
        return StockQuote(
            ticker=ticker,
            price=data["c"],
            currency="USD",
            change=data.get("d") or 0.0,
            change_percent=data.get("dp") or 0.0,
            timestamp=datetime.fromtimestamp(data["t"], UTC).isoformat(),
            source="Finnhub",
        )


class OfflineStocks:
    """Deterministic sample quotes for machines without internet; labelled as such."""

    async def quote(self, ticker: str) -> StockQuote:
        seed = int.from_bytes(hashlib.sha256(ticker.encode()).digest()[:8], "big")
        price = round(5 + (seed % 50000) / 100, 2)
        change = round(((seed >> 20) % 1000 - 500) / 100, 2)
        return StockQuote(
            ticker=ticker,
            price=price,
            currency="USD",
            change=change,
            change_percent=round(change / (price - change) * 100, 2),
            timestamp=datetime.now(UTC).replace(microsecond=0).isoformat(),
            source="offline sample data (not a real quote)",
        )
