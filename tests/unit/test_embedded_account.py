"""The embedded PostgreSQL under root: the system account it runs as is created with a
`useradd` found outside PATH too, or start-up says in one line what is missing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from src.agent.memory import embedded
from src.agent.memory.embedded import EmbeddedPostgresError, ensure_system_account


@pytest.fixture
def root_without_the_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Root, no `embedded_postgres` account, a PATH without /usr/sbin (as `env -i
    PATH=/usr/local/bin:/usr/bin:/bin`), and an empty sbin folder; returns the folder."""
    sbin = tmp_path / "sbin"
    sbin.mkdir()

    def no_account(name: str) -> None:
        raise KeyError(name)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(embedded.pwd, "getpwnam", no_account)
    monkeypatch.setattr(embedded, "_SYSTEM_BIN", (str(sbin),))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return sbin


def fake_useradd(sbin: Path, script: str) -> Path:
    tool = sbin / "useradd"
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


def test_useradd_outside_path_creates_a_system_account(root_without_the_account: Path) -> None:
    called = root_without_the_account / "called"
    fake_useradd(root_without_the_account, f'echo "$@" > {called}')
    ensure_system_account()
    assert called.read_text().split() == [
        "--system",
        "--shell",
        "/usr/sbin/nologin",
        "embedded_postgres",
    ]


def test_no_useradd_anywhere_is_one_clear_error(root_without_the_account: Path) -> None:
    with pytest.raises(EmbeddedPostgresError) as refused:
        ensure_system_account()
    message = str(refused.value)
    assert "\n" not in message
    assert "system user embedded_postgres, which does not exist" in message
    assert "no useradd was found (PATH, /usr/sbin, /sbin)" in message


def test_a_failing_useradd_is_named_with_its_reason(root_without_the_account: Path) -> None:
    tool = fake_useradd(
        root_without_the_account, "echo 'useradd: cannot lock /etc/passwd' >&2; exit 1"
    )
    with pytest.raises(EmbeddedPostgresError, match="cannot lock /etc/passwd") as refused:
        ensure_system_account()
    assert str(tool) in str(refused.value)


def test_nothing_is_created_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(embedded.shutil, "which", lambda *a, **k: pytest.fail("looked for useradd"))
    ensure_system_account()
