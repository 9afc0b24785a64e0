"""Start-up says, in a few lines, where the API listens, which database and which model."""

from __future__ import annotations

import logging
import socket

from src.api.app import create_app
from src.config.settings import load_settings
from tests.support import memory_settings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_embedded_start_up_logs_few_clear_lines(pg_dir, caplog) -> None:
    port = closed_port()
    data = pg_dir.resolve()
    settings = load_settings(
        postgres_memory_host="127.0.0.1",
        postgres_memory_port=port,
        postgres_memory_embedded_dir=data,
        postgres_memory_pool_min=1,
        postgres_memory_pool_max=2,
        openai_api_key=None,
        api_host="127.0.0.1",
        api_port=8123,
    )
    caplog.set_level(logging.INFO)
    for run in range(2):
        caplog.clear()
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            records = [r for r in caplog.records if r.levelno >= logging.INFO]
        text = [r.getMessage() for r in records]
        # The offline model's warning is deliberate (answers are not a real LLM's).
        warnings = [
            r for r in records if r.levelno == logging.WARNING and r.name != "src.agent.model"
        ]
        assert len(warnings) == 1, text
        warning = warnings[0].getMessage()
        assert f"memory database 127.0.0.1:{port} unreachable (" in warning
        assert "ConnectionRefusedError" in warning
        assert f"using the embedded PostgreSQL in {data}" in warning
        assert len(records) <= 7, text  # a few lines a person reads
        assert all(r.name.startswith("src.") for r in records), [r.name for r in records]
        joined = "\n".join(text)
        assert "http://127.0.0.1:8123" in joined
        assert "http://127.0.0.1:8123/docs" in joined
        assert f"embedded PostgreSQL in {data}" in joined
        assert "model: offline" in joined
        assert f"psql -h {data} -p 5432 -U postgres veramoney_memory" in joined
        if run == 0:
            assert any("started" in t for t in text), text
        assert not any("reusing" in t for t in text), text
        stopped = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
        assert stopped == [f"embedded PostgreSQL stopped (data kept in {data})"], stopped


async def test_no_embedded_lines_with_a_reachable_database(database_dsn, caplog) -> None:
    values = memory_settings(database_dsn) | {"postgres_memory_embedded": True}  # TCP or socket
    settings = load_settings(
        **values,
        postgres_memory_pool_min=1,
        postgres_memory_pool_max=2,
        openai_api_key=None,
        api_docs_enabled=False,
    )
    caplog.set_level(logging.INFO)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    text = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], text
    joined = "\n".join(text)
    host, port = values["postgres_memory_host"], values["postgres_memory_port"]
    assert f"memory database: {host}:{port}/" in joined
    assert "/docs" not in joined
    assert "embedded" not in joined
