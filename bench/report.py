"""Markdown tables of a benchmark run, and the targets of issue 6 checked against it."""

from __future__ import annotations

from dataclasses import dataclass

from bench.checkpointers import CacheMemory, ColdReads, Conversation


@dataclass
class SizeRun:
    """Both savers at one conversation length."""

    turns: int
    ours: Conversation
    official: Conversation
    ours_vacuumed_often: int  # bytes when VACUUM runs every `vacuum_every` turns
    official_vacuumed_often: int
    vacuum_every: int
    runs_pooled: int  # interleaved runs whose turn times the medians pool


def ratio(ours: float, official: float) -> str:
    return f"{ours / official:.3f}" if official else "n/a"


def size_table(run: SizeRun) -> str:
    o, f = run.ours, run.official
    growth_o, growth_f = o.tenth(True) / o.tenth(False), f.tenth(True) / f.tenth(False)
    pooled = f"{run.runs_pooled} runs pooled" if run.runs_pooled > 1 else "one run"
    rows = [
        (f"turn ms, median of first 10% ({pooled})", o.tenth(False) * 1e3, f.tenth(False) * 1e3, 2),
        (f"turn ms, median of last 10% ({pooled})", o.tenth(True) * 1e3, f.tenth(True) * 1e3, 2),
        ("turn-time growth, last/first 10%", growth_o, growth_f, 2),
        ("bytes on disk after VACUUM", o.bytes_vacuumed, f.bytes_vacuumed, 0),
        (
            f"bytes on disk, VACUUM every {run.vacuum_every} turns",
            run.ours_vacuumed_often,
            run.official_vacuumed_often,
            0,
        ),
        ("bytes of live rows (after VACUUM FULL)", o.bytes_live, f.bytes_live, 0),
        ("raw payload bytes stored (uncompressed)", o.payload, f.payload, 0),
        ("WAL bytes written during the conversation", o.wal, f.wal, 0),
        ("aget_state ms", o.get_state_s * 1e3, f.get_state_s * 1e3, 2),
        ("full state history ms", o.history_s * 1e3, f.history_s * 1e3, 1),
    ]
    lines = [
        f"### {run.turns} turns ({o.checkpoints} checkpoints)",
        "",
        "| figure | ours | official | ours/official |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, ours, official, digits in rows:
        lines.append(
            f"| {name} | {ours:,.{digits}f} | {official:,.{digits}f} | {ratio(ours, official)} |"
        )
    return "\n".join(lines)


def simple_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def targets(runs: list[SizeRun], tps: tuple[float, float], api_errors: int, api_lost: int) -> str:
    """Each target of issue 6 with what this run measured."""
    big, mid = runs[-1], runs[-2]
    o, f = big.ours, big.official
    growth_o, growth_f = o.tenth(True) / o.tenth(False), f.tenth(True) / f.tenth(False)
    never_slower = all(
        r.ours.tenth(last) <= r.official.tenth(last) for r in runs for last in (False, True)
    )
    checks = [
        (
            f"bytes on disk at {big.turns} turns <= 1/10 of official (after VACUUM)",
            ratio(o.bytes_vacuumed, f.bytes_vacuumed),
            o.bytes_vacuumed * 10 <= f.bytes_vacuumed,
        ),
        (
            f"live bytes at {big.turns} turns <= 1/10 of official",
            ratio(o.bytes_live, f.bytes_live),
            o.bytes_live * 10 <= f.bytes_live,
        ),
        (
            f"bytes({big.turns}) / bytes({mid.turns}) <= 2.2, after VACUUM",
            f"{o.bytes_vacuumed / mid.ours.bytes_vacuumed:.2f}",
            o.bytes_vacuumed <= 2.2 * mid.ours.bytes_vacuumed,
        ),
        (
            f"bytes({big.turns}) / bytes({mid.turns}) <= 2.2, live rows",
            f"{o.bytes_live / mid.ours.bytes_live:.2f}",
            o.bytes_live <= 2.2 * mid.ours.bytes_live,
        ),
        (
            "turn time never slower than official (first and last 10%, every size)",
            "yes" if never_slower else "no",
            never_slower,
        ),
        (
            f"last-10% turn time at {big.turns} turns <= 0.6x official",
            ratio(o.tenth(True), f.tenth(True)),
            o.tenth(True) <= 0.6 * f.tenth(True),
        ),
        (
            "own growth (last/first 10%) <= half of official's",
            f"{growth_o:.2f} vs {growth_f:.2f}",
            growth_o <= growth_f / 2,
        ),
        (
            f"full state history at {big.turns} turns >= 20x faster",
            f"{f.history_s / o.history_s:.1f}x",
            f.history_s >= 20 * o.history_s,
        ),
        (
            "concurrent conversations >= 1.5x official turns/s",
            f"{tps[0] / tps[1]:.2f}x",
            tps[0] >= 1.5 * tps[1],
        ),
        (
            "API load: 0 errors, 0 lost messages",
            f"{api_errors} errors, {api_lost} lost",
            api_errors == 0 and api_lost == 0,
        ),
    ]
    return simple_table(
        ("target", "measured", "met"),
        [(name, value, "yes" if ok else "**MISSED**") for name, value, ok in checks],
    )


def read_targets(reads: ColdReads) -> str:
    """Issue 17's read and first-turn targets, ours vs official in one run, met or missed."""
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, ours: float, official: float, limit: float | None) -> None:
        r = ours / official
        met = "-" if limit is None else ("yes" if r <= limit else "**MISSED**")
        target = "-" if limit is None else f"<= {limit:g}x"
        rows.append(
            (
                name,
                f"{ours * 1e3:.2f}",
                f"{official * 1e3:.2f}",
                f"{r:.2f}",
                f"{target}: {met}" if limit is not None else "-",
            )
        )

    for i, turns in enumerate(reads.turns):
        row(
            f"cold `aget_state` ms, {turns} turns (new saver instance)",
            reads.cold_s["ours"][i],
            reads.cold_s["official"][i],
            0.5,
        )
    for i, turns in enumerate(reads.turns):
        row(
            f"warm `aget_state` ms, {turns} turns",
            reads.warm_s["ours"][i],
            reads.warm_s["official"][i],
            None,
        )
    row(
        "first turn of a new conversation, ms",
        reads.first_turn_s["ours"],
        reads.first_turn_s["official"],
        1.0,
    )
    row(
        "turn ms, two workers taking turns on one session",
        reads.two_workers_s["ours"],
        reads.two_workers_s["official"],
        1.0,
    )
    row("turn ms, one worker", reads.one_worker_s["ours"], reads.one_worker_s["official"], 1.0)
    table = simple_table(("figure", "ours", "official", "ours/official", "target"), rows)
    own = reads.two_workers_s["ours"] / reads.one_worker_s["ours"]
    return (
        f"{table}\n\nTwo workers against one (ours): {own:.2f}x the turn time "
        f"(official: {reads.two_workers_s['official'] / reads.one_worker_s['official']:.2f}x)."
    )


def cache_table(runs: list[CacheMemory]) -> str:
    """Our message cache under large messages: its bound, estimate and the RSS growth."""
    mib = 2**20
    rows = [
        (
            f"{r.bound / mib:.0f} MiB",
            f"{r.sessions} x 2 x 100 KB",
            str(r.cached_sessions),
            f"{r.estimated / mib:.1f}",
            f"{r.rss_growth / mib:.1f}",
            "yes" if r.estimated <= r.bound else "**MISSED**",
        )
        for r in runs
    ]
    return simple_table(
        (
            "cache_max_bytes",
            "messages written",
            "sessions cached",
            "estimated MiB",
            "RSS growth MiB",
            "within bound",
        ),
        rows,
    )
