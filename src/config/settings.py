"""Service settings, read from the environment and `.env` (pydantic-settings).

Field names follow the user's spec (`postgres-setup-spec.md`); every other field is
what a real deployment needs. Secrets are `SecretStr` so they never show in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_embedded_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data by default: `.data/postgres` of the
    project in a checkout (or the Docker image's /app), the user's data folder
    (`~/.local/share/vera/postgres` on Linux) for an installed package, never inside
    site-packages."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / ".data" / "postgres"
    return Path(platformdirs.user_data_dir("vera", appauthor=False)) / "postgres"


# The longest TTL a session may have: 100 years, in minutes.
MAX_TTL_MINUTES = 100 * 365 * 24 * 60


# The names of Vera's tools (src/agent/tools.py), for `AGENT_CONFIRM_TOOLS`.
TOOL_NAMES = ("get_weather", "get_stock_price")


class SettingsError(ValueError):
    """Raised at start-up when an environment variable holds an invalid value."""


class Settings(BaseSettings):
    """All configuration of the Vera service."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `API_KEY=` in .env means "not set", not an empty key
        extra="ignore",
        validate_default=True,
    )

    # Service
    environment: Literal["development", "production", "test"] = Field(
        default="development", description="Deployment environment"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Root log level"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or one JSON object each (with ids)"
    )
    api_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server binds")
    api_key: SecretStr | None = Field(
        default=None,
        description="API key required by every endpoint but /health and the chat page "
        "(its principal is named `default`)",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="More API keys, one principal each: `name:key,name:key` (names: "
        "letters, digits, `_-`); sessions belong to the principal that created them",
    )
    api_gateway_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Names of API keys trusted to act for end users with `X-User-Id`, "
        "comma-separated",
    )
    api_admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Names of API keys allowed the admin operations (POST /admin/forget: "
        "delete every session of a principal or end user), comma-separated",
    )
    auth_failures_per_minute: int = Field(
        default=10, ge=1, description="Failed authentications per minute per client address"
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where rate limits count: `memory://` (this process) or "
        "`redis://host:port/db` (shared by every worker and host)",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Proxy addresses (IPs or CIDRs, comma-separated; `*` for any) whose "
        "X-Forwarded-For/-Proto headers are trusted; none by default",
    )
    request_body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a request body may take to arrive (else 408)"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS, comma-separated"
    )
    rate_limit_per_minute: int = Field(
        default=60, ge=1, description="Requests per minute per API key (else per client IP)"
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest request body accepted (else 413)"
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        description="Largest request head (request line and header fields) accepted (else 431)",
    )
    max_headers: int = Field(
        default=100, ge=10, description="Most header fields a request may have (else 431)"
    )
    sse_ping_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between keep-alive pings on an event stream"
    )
    api_docs_enabled: bool | None = Field(
        default=None,
        description="Serve /docs and /openapi.json (default: on, except in production)",
    )
    session_lease_seconds: float = Field(
        default=30.0, gt=0, description="Lease of a session's running turn, renewed while it runs"
    )
    turn_events_ttl_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How long a turn's events stay replayable (GET /sessions/{id}/turns/...)",
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM, how long running turns may go on and their streams stay open",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve /metrics on this port of API_HOST, without authentication "
        "(for a scraper on a private network); empty: only GET /metrics behind the API key",
    )
    max_concurrent_turns: int = Field(
        default=0,
        ge=0,
        description="Turns one worker process runs at once; more wait (TURN_QUEUE_SECONDS), "
        "then 503 overloaded. 0: 5 per connection of POSTGRES_MEMORY_POOL_MAX",
    )
    turn_queue_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a turn over MAX_CONCURRENT_TURNS waits for a running one to "
        "end; then 503 overloaded with Retry-After",
    )
    api_workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes of `python -m src.api` (each with its own pool and "
        "LISTEN connection; checked against the server's max_connections at start-up)",
    )

    # Session lifetimes (`src/api/session_ttl.py`): the keys of LangGraph's
    # `checkpointer.ttl` in langgraph.json (default_ttl, sweep_interval_minutes, sweep_limit)
    session_ttl_minutes: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TTL_MINUTES,
        description="Delete sessions idle longer than this many minutes, whole (as DELETE "
        "/sessions/{id}); empty: never, but for sessions given a TTL of their own",
    )
    session_ttl_sweep_interval_minutes: float = Field(
        default=5.0, gt=0, le=24 * 60, description="Minutes between the TTL sweeps of a worker"
    )
    session_ttl_sweep_limit: int = Field(
        default=1000, ge=1, description="Sessions one TTL sweep deletes at most"
    )
    session_ttl_sweep_batch: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Sessions a TTL sweep claims and deletes at a time (bounds how long it "
        "holds their locks)",
    )

    # Checkpoint retention (`src/agent/memory/retention.py`), run by every worker after its
    # TTL sweep: `checkpointer.retention` in langgraph.json (`src/config/langgraph_ttl.py`)
    checkpoint_retention_keep_latest: int | None = Field(
        default=None,
        ge=1,
        description="Keep each session's latest this many root checkpoints (and what the "
        "head, an unfinished run and DeltaChannels need), prune older ones; the transcript "
        "and every message stay; empty: off",
    )
    checkpoint_retention_max_age_minutes: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TTL_MINUTES,
        description="Keep the checkpoints younger than this many minutes (with "
        "CHECKPOINT_RETENTION_KEEP_LATEST: those outside both go); empty: off",
    )
    checkpoint_retention_sweep_limit: int = Field(
        default=1000, ge=1, description="Sessions one retention pass prunes at most"
    )
    checkpoint_retention_sweep_batch: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Sessions a retention pass finds per statement (each is pruned in a "
        "transaction of its own)",
    )

    @field_validator(
        "cors_origins",
        "api_gateway_keys",
        "api_admin_keys",
        "forwarded_allow_ips",
        "agent_confirm_tools",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    # PostgreSQL Memory Store
    postgres_memory_host: str = Field(
        default="localhost", description="PostgreSQL memory store host"
    )
    postgres_memory_port: int = Field(
        default=5433, ge=1, le=65535, description="PostgreSQL memory store port"
    )
    postgres_memory_user: str = Field(
        default="veramoney", description="PostgreSQL memory store user"
    )
    postgres_memory_password: SecretStr = Field(
        default=SecretStr("veramoney_secret"), description="PostgreSQL memory store password"
    )
    postgres_memory_db: str = Field(
        default="veramoney_memory", description="PostgreSQL memory store database name"
    )
    postgres_memory_pool_min: int = Field(
        default=5, ge=1, description="Minimum connections kept in the memory store pool"
    )
    postgres_memory_pool_max: int = Field(
        default=20, ge=1, description="Maximum connections in the memory store pool"
    )
    postgres_memory_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a PostgreSQL connection"
    )
    postgres_memory_pool_wait: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request or turn waits for a free pooled connection while "
        "all are lent out; then 503 overloaded (the database is up, this worker is busy)",
    )
    postgres_memory_cache_max_bytes: int = Field(
        default=64 * 2**20,
        ge=0,
        description="Bound of the in-process cache of recent sessions' messages (bytes)",
    )
    postgres_memory_statement_cache: bool = Field(
        default=True,
        description="asyncpg prepared-statement cache; turn off behind PgBouncer-style poolers",
    )
    postgres_memory_direct_url: SecretStr | None = Field(
        default=None,
        description="DSN of the memory database that bypasses a pooler (PgBouncer), "
        "`postgresql://user:password@host:port/db`: LISTEN and the migrations use it",
    )
    postgres_memory_pooler_prepared_statements: bool = Field(
        default=False,
        description="The pooler in front of the memory database keeps prepared statements "
        "(PgBouncer >= 1.21 with max_prepared_statements > 0, or session pooling): allows "
        "POSTGRES_MEMORY_STATEMENT_CACHE=true behind it",
    )

    @field_validator("postgres_memory_direct_url")
    @classmethod
    def _check_direct_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("must be a URL starting with postgresql:// (or postgres://)")
        return value

    postgres_memory_embedded: bool = Field(
        default=True,
        description="Start an embedded PostgreSQL when the configured one is unreachable",
    )
    postgres_memory_embedded_dir: Path = Field(
        default_factory=default_embedded_dir,
        description="Data folder of the embedded PostgreSQL",
    )

    # Agent Configuration
    agent_model: str = Field(
        default="gpt-5-mini", description="OpenAI model for conversational agent"
    )
    agent_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Idle timeout of a model call: seconds it may go without sending anything",
    )
    agent_call_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Cap on one whole model call, however steadily it streams"
    )
    agent_max_model_steps_per_turn: int = Field(
        default=8, ge=1, description="Model calls one turn may make (else error `turn_limit`)"
    )
    agent_max_tool_calls_per_turn: int = Field(
        default=20, ge=1, description="Tool calls one turn may make (else error `turn_limit`)"
    )
    agent_max_context_messages: int = Field(
        default=20, ge=1, description="Maximum messages to keep in conversation context"
    )
    agent_confirm_tools: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Tools that run only once the user approves the call (comma-separated "
        "names, e.g. `get_stock_price`): the turn pauses with an `interrupt` event; none by "
        "default",
    )

    @field_validator("agent_confirm_tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in TOOL_NAMES]
        if unknown:
            raise ValueError(
                f"unknown tool {', '.join(unknown)} (the tools are: {', '.join(TOOL_NAMES)})"
            )
        return value

    openai_api_key: SecretStr | None = Field(
        default=None, description="OpenAI API key; without it the offline model answers"
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (Ollama, vLLM, ...)"
    )

    @model_validator(mode="after")
    def _check_pool_bounds(self) -> Settings:
        if self.postgres_memory_pool_min > self.postgres_memory_pool_max:
            raise ValueError("POSTGRES_MEMORY_POOL_MIN must not exceed POSTGRES_MEMORY_POOL_MAX")
        return self

    # Tools
    weather_provider: Literal["open-meteo", "offline"] = Field(
        default="open-meteo", description="Weather data: Open-Meteo (no key) or offline samples"
    )
    stock_provider: Literal["finnhub", "offline"] = Field(
        default="finnhub",
        description="Stock quotes: Finnhub (needs FINNHUB_API_KEY, else offline) or offline",
    )
    finnhub_api_key: SecretStr | None = Field(default=None, description="Finnhub API key")
    finnhub_base_url: str = Field(
        default="https://finnhub.io/api/v1", description="Finnhub's API root (a proxy, a fake)"
    )
    open_meteo_geocoding_url: str = Field(
        default="https://geocoding-api.open-meteo.com/v1",
        description="Open-Meteo's geocoding API root",
    )
    open_meteo_forecast_url: str = Field(
        default="https://api.open-meteo.com/v1", description="Open-Meteo's forecast API root"
    )
    tool_timeout_seconds: float = Field(
        default=8.0, gt=0, description="Timeout of one HTTP call made by a tool"
    )
    tool_max_attempts: int = Field(
        default=2, ge=1, le=5, description="Attempts per tool HTTP call (timeouts and 5xx retried)"
    )

    @property
    def docs_enabled(self) -> bool:
        """Whether /docs and /openapi.json are served."""
        if self.api_docs_enabled is None:
            return self.environment != "production"
        return self.api_docs_enabled

    def postgres_memory_dsn(self) -> str:
        """The asyncpg DSN of the memory store (contains the password: never log it)."""
        user = quote(self.postgres_memory_user, safe="")
        password = quote(self.postgres_memory_password.get_secret_value(), safe="")
        if self.postgres_memory_host.startswith("/"):  # a Unix-socket directory
            return (
                f"postgresql://{user}:{password}@/{quote(self.postgres_memory_db, safe='')}"
                f"?host={quote(self.postgres_memory_host)}&port={self.postgres_memory_port}"
            )
        return (
            f"postgresql://{user}:{password}@{self.postgres_memory_host}:"
            f"{self.postgres_memory_port}/{quote(self.postgres_memory_db, safe='')}"
        )


def _is_secret(variable: str) -> bool:
    return any(word in variable for word in ("PASSWORD", "KEY", "SECRET", "TOKEN", "DIRECT_URL"))


def load_settings(**overrides: object) -> Settings:
    """Build `Settings`, turning validation errors into one message naming each variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "SETTINGS"
            shown = "" if _is_secret(name) else f" (got {error.get('input')!r})"
            problems.append(f"{name}: {error['msg']}{shown}")
        raise SettingsError("Invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
