"""`nightshift analyze`, `detect` and `simulate` as a user runs them (bot/offline.py)."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.cli import main
from tests.detector.conftest import DATA
from tests.detector.labels import TRANSACTIONS, TZ


def test_analyze_checkout_json_has_the_spec_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "checkout_2.csv"), "--json", "--date", "2025-01-01"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "checkout" and doc["file"].endswith("checkout_2.csv")
    critical = [a for a in doc["anomalies"] if a["severity"] == "critical"]
    assert [a["start"][11:16] for a in critical] == ["15:00", "16:00", "17:00"]
    for a in doc["anomalies"]:
        assert set(a) >= {
            "start",
            "end",
            "detected_at",
            "metric",
            "severity",
            "score",
            "expected",
            "observed",
            "explanation",
        }
        assert 0 <= a["score"] <= 1 and a["detected_at"] >= a["start"]
    assert critical[0]["explanation"] == "vendas às 15:00: 0 vs 53 esperadas (−100%, z=-8.4)"


def test_analyze_explains_in_english_when_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTSHIFT_LANG", "en")
    assert main(["analyze", str(DATA / "checkout_2.csv"), "--json", "--date", "2025-01-01"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["explanation"] for a in doc["anomalies"][:2]] == [
        "sales at 14:00: 19 vs 43 expected (−56%, z=-3.4)",
        "sales at 15:00: 0 vs 53 expected (−100%, z=-8.4)",
    ]


def test_analyze_transactions_table_and_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "out.png"
    assert (
        main(
            [
                "analyze",
                str(DATA / "transactions_1.csv"),
                "--date",
                "2025-01-01",
                "--chart",
                str(chart),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "reversed_rate" in out and "critical" in out
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_analyze_missing_file_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "no/such.csv"]) == 2
    err = capsys.readouterr().err
    assert "no/such.csv" in err and err.count("\n") == 1


def test_detect_writes_scores_per_row(tmp_path: Path) -> None:
    src = tmp_path / "series.csv"
    values = [10.0] * 300
    values[250] = 90.0
    pd.DataFrame({"timestamp": range(300), "value": values}).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    assert main(["detect", str(src), "--output", str(out)]) == 0
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert scored["label"].tolist().index(1) == 250


def test_detect_reads_dates_finds_the_day_and_labels_one_row_per_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2025-03-03", periods=4032, freq="5min")
    t = np.arange(4032)
    values = 100 + 40 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 2, 4032)
    values[3000:3050] += 60  # one event of 50 rows
    src = tmp_path / "cpu.csv"
    pd.DataFrame({"when": stamps.strftime("%Y-%m-%d %H:%M"), "cpu": values.round(3)}).to_csv(
        src, index=False
    )
    assert main(["detect", str(src), "--time-col", "when"]) == 0
    scored = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(scored) == 4032 and scored["timestamp"].iloc[0] == "2025-03-03 00:00"
    assert scored["value"].iloc[:5].tolist() == values.round(3)[:5].tolist()
    assert scored["label"].sum() == 1 and scored["label"].iloc[3000] == 1
    assert scored["anomaly_score"].between(0, 1).all()
    out = tmp_path / "scored.csv"
    assert main(["detect", str(src), "--time-col", "when", "--output", str(out)]) == 0
    assert "period of 288 steps" in capsys.readouterr().err
    assert pd.read_csv(out)["label"].sum() == 1


def test_detect_value_that_is_not_a_number_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "s.csv"
    src.write_text("timestamp,value\n2025-01-01,1\n2025-01-02,lots\n")
    assert main(["detect", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3: value 'lots' is not a number" in err and err.count("\n") == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["detect", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err


def test_detect_bad_value_column_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "s.csv"
    src.write_text("t,v\n1,2\n")
    assert main(["detect", str(src), "--value-col", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_simulate_writes_feed_and_labels_that_analyze_reads(tmp_path: Path) -> None:
    feed, labels = tmp_path / "feed.csv", tmp_path / "labels.json"
    assert (
        main(
            [
                "simulate",
                "--hours",
                "24",
                "--seed",
                "1",
                "--incidents",
                "outage,failed_surge",
                "--output",
                str(feed),
                "--labels",
                str(labels),
            ]
        )
        == 0
    )
    kinds = sorted(x["kind"] for x in json.loads(labels.read_text()))
    assert kinds == ["failed_surge", "outage"]
    assert main(["analyze", str(feed), "--json"]) == 0


def test_simulate_unknown_incident_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--incidents", "meteor", "--output", str(tmp_path / "f.csv")]) == 2
    assert "meteor" in capsys.readouterr().err


def test_analyze_groups_each_fire_into_one_incident_with_the_approvals_it_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """transactions.csv: the 13 labelled incidents and the 07-14 23:21 dip LABELS.md leaves
    out are 14 incidents, one each, and no incident has no fire behind it."""
    assert main(["analyze", str(DATA / "transactions.csv"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    incidents = doc["incidents"]
    fires = [(i.start, i.end) for i in TRANSACTIONS]
    fires.append(
        (datetime(2025, 7, 14, 23, 21, tzinfo=TZ), datetime(2025, 7, 14, 23, 44, tzinfo=TZ))
    )

    def overlaps(incident: dict[str, object], fire: tuple[datetime, datetime]) -> bool:
        start = datetime.fromisoformat(str(incident["start"]))
        end = datetime.fromisoformat(str(incident["end"]))
        return start < fire[1] and fire[0] < end

    assert len(incidents) == 14
    for fire in fires:
        assert sum(overlaps(i, fire) for i in incidents) == 1, fire
    for incident in incidents:
        assert any(overlaps(incident, fire) for fire in fires), incident
        assert set(incident) == {
            "start",
            "end",
            "detected_at",
            "severity",
            "members",
            "approvals_lost",
        }
        members = [doc["anomalies"][m] for m in incident["members"]]
        assert all(m["start"] < incident["end"] for m in members)
        assert incident["detected_at"] == min(m["detected_at"] for m in members)
    denial = next(i for i in incidents if i["start"].startswith("2025-07-13T08:48"))
    assert sorted(doc["anomalies"][m]["metric"] for m in denial["members"]) == [
        "approved",
        "denied_rate",
        "mix",
    ]  # a denial surge, the approval drop and the mix shift it causes: one incident
    assert denial["approvals_lost"] > 500
    assert all(i["approvals_lost"] >= 0 for i in incidents)
    assert doc["anomalies"][0]["explanation"] == (
        "denied em 31% das transações vs 3,5% ± 1,3% normal neste horário (z=21), 8,7× o normal, "
        "desde 17:09"
    )


def test_analyze_table_shows_incidents_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "checkout_2.csv"), "--date", "2025-01-01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "incidentes: 1"
    assert out[2].split()[:4] == ["1", "2025-01-01", "14:00–19:00", "critical"]
