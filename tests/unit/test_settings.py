"""Settings load the spec's variables with the spec's defaults, and reject bad values."""

from __future__ import annotations

import pytest

from src.config.settings import Settings, SettingsError, load_settings

SPEC_DEFAULTS = {
    "postgres_memory_host": "localhost",
    "postgres_memory_port": 5433,
    "postgres_memory_user": "veramoney",
    "postgres_memory_db": "veramoney_memory",
    "agent_model": "gpt-5-mini",
    "agent_timeout_seconds": 30.0,
    "agent_max_context_messages": 20,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No inherited variables and no project .env: each test sets what it needs."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_spec_defaults() -> None:
    settings = load_settings()
    for field, expected in SPEC_DEFAULTS.items():
        assert getattr(settings, field) == expected, field
    assert settings.postgres_memory_password.get_secret_value() == "veramoney_secret"
    assert settings.postgres_memory_pool_min == 5
    assert settings.postgres_memory_pool_max == 20
    assert settings.agent_call_timeout_seconds == 120.0
    assert settings.agent_max_model_steps_per_turn == 8
    assert settings.agent_max_tool_calls_per_turn == 20


def test_every_spec_variable_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "POSTGRES_MEMORY_HOST": "db.internal",
        "POSTGRES_MEMORY_PORT": "6543",
        "POSTGRES_MEMORY_USER": "alice",
        "POSTGRES_MEMORY_PASSWORD": "p@ss:w/rd",
        "POSTGRES_MEMORY_DB": "memory",
        "AGENT_MODEL": "gpt-4o-mini",
        "AGENT_TIMEOUT_SECONDS": "12.5",
        "AGENT_MAX_CONTEXT_MESSAGES": "7",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.postgres_memory_host, s.postgres_memory_port) == ("db.internal", 6543)
    assert (s.postgres_memory_user, s.postgres_memory_db) == ("alice", "memory")
    assert s.postgres_memory_password.get_secret_value() == "p@ss:w/rd"
    assert (s.agent_model, s.agent_timeout_seconds, s.agent_max_context_messages) == (
        "gpt-4o-mini",
        12.5,
        7,
    )
    # The DSN escapes the password's special characters.
    assert s.postgres_memory_dsn() == "postgresql://alice:p%40ss%3Aw%2Frd@db.internal:6543/memory"


def test_dotenv_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    (tmp_path / ".env").write_text("AGENT_MODEL=from-file\nPOSTGRES_MEMORY_PORT=7000\n")
    monkeypatch.setenv("POSTGRES_MEMORY_PORT", "7001")
    s = load_settings()
    assert s.agent_model == "from-file"
    assert s.postgres_memory_port == 7001


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POSTGRES_MEMORY_PORT", "abc"),
        ("POSTGRES_MEMORY_PORT", "70000"),
        ("AGENT_TIMEOUT_SECONDS", "-1"),
        ("AGENT_MAX_CONTEXT_MESSAGES", "0"),
        ("AGENT_CALL_TIMEOUT_SECONDS", "0"),
        ("AGENT_MAX_MODEL_STEPS_PER_TURN", "0"),
        ("AGENT_MAX_TOOL_CALLS_PER_TURN", "-1"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_secrets_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_MEMORY_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    s = load_settings()
    assert "hunter2-secret" not in repr(s) and "sk-very-secret" not in repr(s)
    assert "hunter2-secret" not in str(s.model_dump())


def test_the_direct_url_is_a_secret_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """`POSTGRES_MEMORY_DIRECT_URL` holds a password: checked, never shown."""
    assert load_settings().postgres_memory_direct_url is None
    monkeypatch.setenv("POSTGRES_MEMORY_DIRECT_URL", "postgresql://u:hunter2-secret@db:5432/m")
    s = load_settings()
    assert s.postgres_memory_direct_url is not None
    assert "hunter2-secret" not in repr(s)
    monkeypatch.setenv("POSTGRES_MEMORY_DIRECT_URL", "db:5432 password=hunter2-secret")
    with pytest.raises(SettingsError, match="POSTGRES_MEMORY_DIRECT_URL") as bad:
        load_settings()
    assert "hunter2-secret" not in str(bad.value)


def test_cache_max_bytes_reaches_the_store_and_the_checkpointer() -> None:
    from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
    from src.wiring import memory_options

    settings = Settings(_env_file=None, postgres_memory_cache_max_bytes=1_000_000)
    store = PostgresMemoryStore(**memory_options(settings))
    assert store.cache_max_bytes == 1_000_000
    assert ConversationCheckpointer(store).message_logs.max_bytes == 1_000_000
    default = Settings(_env_file=None).postgres_memory_cache_max_bytes
    assert default == 64 * 2**20
