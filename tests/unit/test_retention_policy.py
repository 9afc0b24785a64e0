"""Checkpoint retention's selection (`retention.select`) without a database: which
checkpoints a policy keeps of a thread, and its settings (`CHECKPOINT_RETENTION_*`,
langgraph.json's `checkpointer.retention` and `ttl` strategy `keep_latest`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from src.agent.memory.retention import RetentionPolicy, StoredCheckpoint, select
from src.config.langgraph_ttl import retention_settings, ttl_settings
from src.config.settings import Settings, SettingsError, load_settings

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def chain(n: int, ns: str = "", root: str | None = None, **kw: object) -> list[StoredCheckpoint]:
    """`n` checkpoints of namespace `ns`, each the child of the one before, a minute apart
    (the last one made at NOW)."""
    return [
        StoredCheckpoint(
            ns=ns,
            id=f"{ns}{i:03}",
            parent=f"{ns}{i - 1:03}" if i else None,
            created_at=NOW - timedelta(minutes=n - 1 - i),
            root=root,
            **kw,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]


def kept_ids(checkpoints: list[StoredCheckpoint], policy: RetentionPolicy) -> list[str]:
    return sorted(i for _, i in select(checkpoints, policy, NOW).kept)


def test_latest_n_keeps_the_newest_root_checkpoints_and_orphans_the_oldest() -> None:
    roots = chain(20)
    selection = select(roots, RetentionPolicy(keep_latest=3), NOW)
    assert sorted(selection.kept) == [("", "017"), ("", "018"), ("", "019")]
    assert selection.orphaned == {("", "017")}  # its parent goes: its history starts there
    assert selection.gone(roots) == [("", f"{i:03}") for i in range(17)]
    assert selection.due_at is None


def test_the_head_stays_whatever_the_policy() -> None:
    roots = chain(5)
    assert kept_ids(roots, RetentionPolicy(max_age=timedelta(seconds=1))) == ["004"]
    assert kept_ids(roots, RetentionPolicy(keep_latest=1)) == ["004"]
    old = [c.__class__(**{**c.__dict__, "created_at": NOW - timedelta(days=9)}) for c in roots]
    assert kept_ids(old, RetentionPolicy(max_age=timedelta(hours=1))) == ["004"]


def test_off_keeps_everything() -> None:
    roots = chain(5)
    assert len(select(roots, RetentionPolicy(), NOW).kept) == 5


def test_age_and_count_keep_the_union_and_say_when_the_next_falls_out() -> None:
    roots = chain(10)  # minutes old: 9, 8, ... 0
    policy = RetentionPolicy(keep_latest=2, max_age=timedelta(minutes=4, seconds=30))
    selection = select(roots, policy, NOW)
    assert sorted(i for _, i in selection.kept) == ["005", "006", "007", "008", "009"]
    # "005" (4 minutes old) is kept only for its age: it falls out 30 s from now.
    assert selection.due_at == NOW + timedelta(seconds=30)


def test_branches_count_alike_newest_first() -> None:
    trunk = chain(6)
    fork = [
        StoredCheckpoint("", "010", "002", NOW),  # a fork from "002", made last
        StoredCheckpoint("", "011", "010", NOW),
    ]
    assert kept_ids(trunk + fork, RetentionPolicy(keep_latest=3)) == ["005", "010", "011"]


def test_subgraph_calls_go_with_their_root_checkpoint() -> None:
    roots = chain(6)
    old_call = chain(4, ns="plan:t1", root="001")
    live_call = chain(3, ns="plan:t2", root="005")  # interrupted under the head
    unsaved = chain(2, ns="plan:t3", root="999")  # its root checkpoint is not stored yet
    memory = chain(3, ns="recall", root="001")  # checkpointer=True: outlives each call
    kept = select(
        roots + old_call + live_call + unsaved + memory, RetentionPolicy(keep_latest=2), NOW
    ).kept
    assert {k for k in kept if k[0] == "plan:t1"} == set()
    assert {k for k in kept if k[0] == "plan:t2"} == {c.key for c in live_call}
    assert {k for k in kept if k[0] == "plan:t3"} == {c.key for c in unsaved}
    assert {k for k in kept if k[0] == "recall"} == {("recall", "recall002")}


def test_a_delta_channel_keeps_its_ancestors_back_to_the_seed() -> None:
    roots = chain(10, versioned=frozenset({"items"}))
    seeded = {3: frozenset({"items"})}  # a snapshot at "003"
    roots = [
        c.__class__(**{**c.__dict__, "valued": seeded.get(i, frozenset())})
        for i, c in enumerate(roots)
    ]
    assert kept_ids(roots, RetentionPolicy(keep_latest=2)) == [f"{i:03}" for i in range(3, 10)]
    # Without a seed, the walk goes to the first checkpoint: all stay.
    unseeded = chain(6, versioned=frozenset({"items"}))
    assert len(kept_ids(unseeded, RetentionPolicy(keep_latest=1))) == 6


def test_an_old_format_checkpoint_keeps_the_parent_holding_its_sends() -> None:
    roots = chain(5)
    roots[-1] = roots[-1].__class__(**{**roots[-1].__dict__, "reads_parent_sends": True})
    assert kept_ids(roots, RetentionPolicy(keep_latest=1)) == ["003", "004"]


def test_a_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="keep_latest"):
        RetentionPolicy(keep_latest=0)
    with pytest.raises(ValueError, match="max_age"):
        RetentionPolicy(max_age=timedelta(0))
    assert RetentionPolicy(keep_latest=10).label != RetentionPolicy(keep_latest=11).label


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_retention_settings_are_off_by_default_and_map_from_langgraph_json(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    assert settings.checkpoint_retention_keep_latest is None
    assert settings.checkpoint_retention_max_age_minutes is None
    monkeypatch.setenv("CHECKPOINT_RETENTION_KEEP_LATEST", "0")
    with pytest.raises(SettingsError, match="CHECKPOINT_RETENTION_KEEP_LATEST"):
        load_settings()
    monkeypatch.delenv("CHECKPOINT_RETENTION_KEEP_LATEST")
    assert retention_settings({"keep_latest": 10, "max_age_minutes": 60, "sweep_limit": 5}) == {
        "checkpoint_retention_keep_latest": 10,
        "checkpoint_retention_max_age_minutes": 60,
        "checkpoint_retention_sweep_limit": 5,
    }
    assert retention_settings(None) == {}
    with pytest.raises(SettingsError, match=r"checkpointer.retention: unknown keys \['latest'\]"):
        retention_settings({"latest": 10})
    # LangGraph's own: prune the checkpoints of threads idle past default_ttl.
    assert ttl_settings({"strategy": "keep_latest", "default_ttl": 60, "sweep_limit": 9}) == {
        "checkpoint_retention_max_age_minutes": 60,
        "checkpoint_retention_sweep_limit": 9,
    }
    loaded = load_settings(**retention_settings({"keep_latest": 10}))
    assert loaded.checkpoint_retention_keep_latest == 10
