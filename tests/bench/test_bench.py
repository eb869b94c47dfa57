"""The benchmark harness: verdicts against goals, the report, and the load generator for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import data, servers
from bench.load import Job, percentile, run_load
from bench.report import Figure, Goal, Machine, Report, Section, missing, render


def test_a_ratio_goal_judges_value_over_baseline() -> None:
    goal = Goal("ratio", ">=", 0.5)
    fast = Figure(1, "rows", "SQLite", 60.0, "rows/s", 100.0, "raw", goal)
    slow = Figure(1, "rows", "SQLite", 40.0, "rows/s", 100.0, "raw", goal)
    assert fast.ratio == pytest.approx(0.6)
    assert (fast.verdict, slow.verdict) == ("pass", "MISS")


def test_a_latency_goal_is_an_upper_bound_and_unmeasured_is_not_a_pass() -> None:
    goal = Goal("value", "<=", 50, "ms")
    assert Figure(2, "p99", "SQLite", 49.0, "ms", goal=goal).verdict == "pass"
    assert Figure(2, "p99", "SQLite", 51.0, "ms", goal=goal).verdict == "MISS"
    assert missing(3, "chat p99", "SQLite", "not built yet", goal).verdict == "not measured"


def test_the_report_lists_misses_and_every_figure_with_its_baseline() -> None:
    report = Report(
        machine=Machine((("CPU", "test cpu, nproc 2"),)),
        sections=[Section(1, "Feed intake", "how it is measured")],
        figures=[
            Figure(
                1,
                "count rows | JSON",
                "SQLite",
                30_000.0,
                "rows/s",
                120_000.0,
                "raw",
                Goal("ratio", ">=", 0.5),
            ),
            missing(1, "all figures", "PostgreSQL", "not measured (no server)"),
        ],
    )
    text = render(report)
    assert "| CPU | test cpu, nproc 2 |" in text
    assert "0 goals met, 1 missed" in text
    assert "count rows \\| JSON | SQLite | 30,000 rows/s | 120,000 rows/s (raw) | 0.250" in text
    assert "not measured (no server)" in text


def test_percentiles_rank_the_samples() -> None:
    samples = [i / 1000 for i in range(1, 101)]
    assert percentile(samples, 50) == pytest.approx(0.0505, abs=1e-3)
    assert percentile(samples, 99) == pytest.approx(0.099, abs=1e-3)


def test_feed_bodies_carry_the_same_rows_in_json_and_csv() -> None:
    rows = data.count_rows(1_735_689_600, 14)
    as_json = json.loads(data.counts_json(rows))
    as_csv = data.counts_csv(rows).decode().splitlines()
    assert len(as_json) == len(as_csv) - 1 == 14
    assert as_csv[0] == "timestamp,status,count"
    assert as_json[7]["timestamp"] == "2025-01-01T00:01:00Z"
    assert as_csv[8] == f"2025-01-01T00:01:00Z,{as_json[7]['status']},{as_json[7]['count']}"


def test_the_load_generator_measures_a_real_server_from_its_own_process(tmp_path: Path) -> None:
    with servers.bare(tmp_path) as bare:
        assert bare.rss_mib() > 5
        job = Job(
            url=f"{bare.url}/webhooks/alertmanager",
            bodies=[data.alert_payload(i) for i in range(30)],
            content_type="application/json",
            concurrency=4,
            warmup=5,
        )
        result = run_load(job, tmp_path)
    assert result.requests == 25
    assert result.statuses == {200: 25}
    assert result.per_second > 0
    assert result.client_cpu_ms > 0
    assert 0 <= result.steal < 1
    assert all(a["status"] == "stored" for a in result.answers)


def test_dimensioned_bodies_carry_each_combo_once_in_json_and_csv() -> None:
    rows = data.dimensioned_rows(1_735_689_600, 3)
    assert len({(m, s, v) for m, s, v, _ in rows}) == len(rows) > 250
    as_json = json.loads(data.dimensioned_json(rows))
    as_csv = data.dimensioned_csv(rows).decode().splitlines()
    assert as_csv[0] == "timestamp,status,acquirer,brand,method,region,merchant,count"
    assert len(as_json) == len(as_csv) - 1 == len(rows)
    minute, status, values, count = rows[-1]
    assert as_json[-1] == {
        "timestamp": data.iso(minute),
        "status": status,
        **dict(zip(data.DIMENSIONS, values, strict=True)),
        "count": count,
    }
    assert as_csv[-1] == f"{data.iso(minute)},{status},{','.join(values)},{count}"
