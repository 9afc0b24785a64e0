"""The compose file holds the spec's `postgres-memory` service and an app that waits for it."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_postgres_memory_service_matches_spec() -> None:
    service = load()["services"]["postgres-memory"]
    assert service["image"] == "postgres:17-alpine"
    assert service["container_name"] == "veramoney-memory"
    assert service["environment"] == {
        "POSTGRES_USER": "${POSTGRES_MEMORY_USER:-veramoney}",
        "POSTGRES_PASSWORD": "${POSTGRES_MEMORY_PASSWORD:-veramoney_secret}",
        "POSTGRES_DB": "${POSTGRES_MEMORY_DB:-veramoney_memory}",
    }
    assert service["volumes"] == ["postgres-memory-data:/var/lib/postgresql/data"]
    assert service["ports"] == ["${POSTGRES_MEMORY_PORT:-5433}:5432"]
    assert service["networks"] == ["vera-network"]
    health = service["healthcheck"]
    assert health["test"][0] == "CMD-SHELL"
    assert health["test"][1].startswith("pg_isready -U ${POSTGRES_MEMORY_USER:-veramoney}")
    assert "-d ${POSTGRES_MEMORY_DB:-veramoney_memory}" in health["test"][1]
    assert (health["interval"], health["timeout"], health["retries"]) == ("10s", "5s", 5)


def test_volume_and_network_declared() -> None:
    compose = load()
    assert compose["volumes"]["postgres-memory-data"] == {"driver": "local"}
    assert compose["networks"]["vera-network"] == {"driver": "bridge"}


def test_app_waits_for_healthy_database_and_reaches_it_by_service_name() -> None:
    compose = load()
    app = compose["services"]["app"]
    assert app["build"] == "."
    assert app["depends_on"] == {"postgres-memory": {"condition": "service_healthy"}}
    assert app["environment"]["POSTGRES_MEMORY_HOST"] == "postgres-memory"
    assert str(app["environment"]["POSTGRES_MEMORY_PORT"]) == "5432"
    assert app["environment"]["POSTGRES_MEMORY_EMBEDDED"] == "false"
    assert "vera-network" in app["networks"]
    # Only services the app uses.
    assert set(compose["services"]) == {"app", "postgres-memory"}


# The spec's block, but with the host a local run can reach (compose sets its own, see below).
SPEC_BLOCK = {
    "POSTGRES_MEMORY_HOST": "localhost",
    "POSTGRES_MEMORY_PORT": "5433",
    "POSTGRES_MEMORY_USER": "veramoney",
    "POSTGRES_MEMORY_PASSWORD": "veramoney_secret",
    "POSTGRES_MEMORY_DB": "veramoney_memory",
    "AGENT_MODEL": "gpt-5-mini",
    "AGENT_TIMEOUT_SECONDS": "30",
    "AGENT_MAX_CONTEXT_MESSAGES": "20",
}


def test_env_example_has_spec_block() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name, value in SPEC_BLOCK.items():
        assert f"{name}={value}" in lines, name


def test_env_example_lists_every_setting_with_a_comment() -> None:
    from src.config.settings import Settings

    lines = (ROOT / ".env.example").read_text().splitlines()
    for field in Settings.model_fields:
        name = field.upper()
        index = next(
            (i for i, line in enumerate(lines) if line.lstrip("# ").startswith(name + "=")), None
        )
        assert index is not None, f"{name} missing from .env.example"
        if name not in SPEC_BLOCK:  # the spec's block has one comment per group
            assert lines[index - 1].startswith("#"), f"{name} has no comment line above it"


def test_env_example_works_locally_and_compose_overrides_the_address() -> None:
    """`cp .env.example .env` keeps the settings' default host (a local run can resolve it);
    the compose app sets the in-network address itself, whatever `.env` says."""
    from src.config.settings import Settings

    lines = (ROOT / ".env.example").read_text().splitlines()
    default_host = Settings.model_fields["postgres_memory_host"].default
    assert f"POSTGRES_MEMORY_HOST={default_host}" in lines
    environment = load()["services"]["app"]["environment"]
    assert environment["POSTGRES_MEMORY_HOST"] == "postgres-memory"
    assert str(environment["POSTGRES_MEMORY_PORT"]) == "5432"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` / `${VAR:?error}` / `${VAR}` with the variables of `env`."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match[1], match[2], match[3]
        if env.get(name):
            return env[name]
        if kind == ":?":
            raise ValueError(rest)
        return rest if kind == ":-" else ""

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, value)


def dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def test_cp_env_example_to_env_keeps_compose_in_production() -> None:
    """`cp .env.example .env` (ENVIRONMENT=development, for `make run`) must not turn the
    compose setup into development: docs on, no key check."""
    env = dotenv(ROOT / ".env.example") | {"API_KEY": "k" * 40}
    app = load()["services"]["app"]["environment"]
    resolved = {name: interpolate(str(value), env) for name, value in app.items()}
    assert resolved["ENVIRONMENT"] == "production"
    assert resolved["POSTGRES_MEMORY_EMBEDDED"] == "false"
    assert "API_DOCS_ENABLED" not in resolved  # production's default: docs off


def test_the_build_context_leaves_out_local_state_but_not_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    ignored = {p for p in patterns if not p.startswith("!")}
    assert {".venv", ".tools", ".data", ".env", ".git"} <= ignored
    copied = [
        part
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]
    assert copied and not [c for c in copied if any(fnmatch.fnmatch(c, p) for p in ignored)]
