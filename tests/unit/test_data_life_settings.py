"""The settings of a session's life (issue 27): admin keys checked at start-up like gateway
keys, the TTL's bounds, and LangGraph's `checkpointer.ttl` keys mapped onto them."""

from __future__ import annotations

import pytest

from src.api.security import KeyRing
from src.config.langgraph_ttl import ttl_settings
from src.config.settings import Settings, SettingsError, load_settings

KEYS = "ops:ops-key-0123456789abcdefghijklmnopqrs,web:web-key-0123456789abcdefghijklmnopqrs"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_admin_keys_name_configured_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", KEYS)
    monkeypatch.setenv("API_ADMIN_KEYS", " ops , ")
    ring = KeyRing(load_settings())
    assert {key.name: key.admin for key in ring.keys} == {"ops": True, "web": False}
    monkeypatch.setenv("API_ADMIN_KEYS", "ops,root")
    with pytest.raises(SettingsError, match=r"API_ADMIN_KEYS names no configured key: \['root'\]"):
        KeyRing(load_settings())


def test_no_one_is_an_admin_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", KEYS)
    assert not any(key.admin for key in KeyRing(load_settings()).keys)


def test_session_ttl_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.session_ttl_minutes is None  # off
    assert settings.session_ttl_sweep_interval_minutes == 5
    assert (settings.session_ttl_sweep_limit, settings.session_ttl_sweep_batch) == (1000, 100)
    monkeypatch.setenv("SESSION_TTL_MINUTES", "1440")
    assert load_settings().session_ttl_minutes == 1440
    for variable, bad in (
        ("SESSION_TTL_MINUTES", "0"),
        ("SESSION_TTL_MINUTES", "1e12"),
        ("SESSION_TTL_SWEEP_BATCH", "0"),
        ("SESSION_TTL_SWEEP_LIMIT", "-1"),
        ("SESSION_TTL_SWEEP_INTERVAL_MINUTES", "0"),
    ):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(SettingsError, match=variable):
            load_settings()
        monkeypatch.delenv(variable)


def test_langgraph_checkpointer_ttl_maps_onto_the_settings() -> None:
    ttl = {"strategy": "delete", "default_ttl": 60, "sweep_interval_minutes": 2, "sweep_limit": 50}
    assert ttl_settings(ttl) == {
        "session_ttl_minutes": 60,
        "session_ttl_sweep_interval_minutes": 2,
        "session_ttl_sweep_limit": 50,
    }
    assert load_settings(**ttl_settings(ttl)).session_ttl_minutes == 60
    assert ttl_settings(None) == ttl_settings({}) == {}
    assert ttl_settings({"default_ttl": 5, "sweep_interval_minutes": None}) == {
        "session_ttl_minutes": 5
    }
    with pytest.raises(SettingsError, match="strategy 'archive'"):
        ttl_settings({"strategy": "archive", "default_ttl": 60})
    with pytest.raises(SettingsError, match=r"unknown keys \['ttl'\]"):
        ttl_settings({"ttl": 60})
