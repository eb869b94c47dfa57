"""Slices (issue 15, the detector half): per-slice findings, drill-down, simulate and analyze."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from bench.slices import analysis, split
from bot.cli import main
from detector.drilldown import carriers
from detector.engine import Engine
from detector.findings import Finding
from detector.offline import by_minute
from detector.slicefeed import simulate_slices
from detector.slices import SliceWatch
from skills.wording import explain

MINUTE = timedelta(minutes=1)
TZ = ZoneInfo("America/Sao_Paulo")


def test_a_five_percent_acquirer_down_is_named_within_five_minutes_the_total_silent() -> None:
    feed = simulate_slices([("acquirer", 8)], 24 * 8, seed=4, incidents=[], slice_incidents=[])
    history, judged, cut = split(feed, 7)
    shares = history["slices"].groupby("value")["count"].sum()
    shares = shares / shares.sum()
    small = str((shares - 0.05).abs().idxmin())
    assert 0.035 <= shares[small] <= 0.065
    start = cut + timedelta(hours=16)  # 13:00 local, a busy hour
    end = start + 30 * MINUTE
    slices = judged["slices"]
    down = (slices["value"] == small) & (slices["minute"] >= start) & (slices["minute"] < end)
    lost = slices[down].groupby(["minute", "status"])["count"].sum()
    counts = judged["counts"].set_index(["minute", "status"])["count"]
    counts = counts.sub(lost, fill_value=0).astype("int64")
    judged = {**judged, "slices": slices[~down], "counts": counts.reset_index()}

    result = analysis(history, judged)

    totals = [f for f in result.findings if f.slice is None]
    named = [f for f in result.findings if f.slice == (("acquirer", small),)]
    assert totals == []  # the total alone raises nothing
    assert named, result.findings
    first = named[0]
    assert first.detected_at - start <= 5 * MINUTE
    assert first.evidence.share is not None and 0.03 <= first.evidence.share <= 0.08
    assert [f for f in result.findings if f.slice is not None and f not in named] == []
    text = explain(first.evidence, "pt", TZ)
    assert text.startswith(f"acquirer={small}: ") and "do volume" in text
    assert f'"acquirer": "{small}"' in json.dumps({"slice": dict(first.slice or ())})


def test_a_brand_denial_surge_is_named_by_brand_and_by_authorization_code() -> None:
    feed = simulate_slices(
        [("acquirer", 5), ("brand", 6)],
        24 * 8,
        seed=1,
        incidents=[],
        slice_incidents=["slice_denied_surge"],
        quiet_hours=24 * 7,
    )
    (label,) = feed.labels
    assert label.slice is not None and label.slice[0][0] == "brand"
    history, judged, _ = split(feed, 7)

    result = analysis(history, judged)

    hits = [
        f for f in result.findings if f.start < label.end and (f.end or label.end) > label.start
    ]
    assert hits, result.findings
    first = min(hits, key=lambda f: f.detected_at)
    assert first.detected_at - label.start <= 5 * MINUTE
    names = set(first.slice or ()) | {(d, v) for d, v, _ in first.evidence.slices}
    assert label.slice[0] in names
    assert first.evidence.cause is not None and first.evidence.cause.code == "59"
    text = explain(first.evidence, "en", TZ)
    assert label.slice[0][1] in text and "code 59" in text


def test_a_clean_day_on_a_hundred_slices_raises_nothing() -> None:
    dims = [(name, 20) for name in ("acquirer", "brand", "method", "region", "merchant")]
    feed = simulate_slices(dims, 24 * 8, seed=7, incidents=[], slice_incidents=[])
    history, judged, _ = split(feed, 7)
    watch = SliceWatch()
    watch.warm(history["slices"])
    assert 60 <= len(watch.watched) <= 100  # the thinnest slices are under the volume floor
    found = []
    for minute, cut in sorted(by_minute(judged["slices"]).items()):
        found.extend(watch.step(minute, cut))
    assert found == []


def test_drill_down_names_the_acquirer_that_carries_a_drop_and_not_the_even_brands() -> None:
    rng = np.random.default_rng(0)
    start = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
    rows = []
    for i in range(-60, 10):
        minute = start + i * MINUTE
        for value, rate in (("cielo", 40), ("stone", 30), ("rede", 30)):
            n = 0 if (value == "cielo" and i >= 0) else int(rng.poisson(rate))
            rows.append((minute, "approved", "acquirer", value, n))
        total = sum(r[4] for r in rows[-3:])
        for value, share in (("visa", 0.5), ("master", 0.3), ("elo", 0.2)):
            rows.append((minute, "approved", "brand", value, round(total * share)))
    frame = pd.DataFrame(rows, columns=["minute", "status", "dimension", "value", "count"])
    found = carriers(frame, "approved", start, start + 10 * MINUTE)
    assert [c[:2] for c in found] == [("acquirer", "cielo")]
    assert 0.85 <= found[0][2] <= 1.0


def test_simulate_dimensions_round_trip(tmp_path: Path) -> None:
    feed, labels = tmp_path / "feed.csv", tmp_path / "labels.json"
    argv = ["simulate", "--hours", "48", "--seed", "3", "--dimensions", "acquirer:5,brand:4"]
    assert main([*argv, "--output", str(feed), "--labels", str(labels)]) == 0
    rows = pd.read_csv(feed)
    assert list(rows.columns) == ["timestamp", "status", "acquirer", "brand", "count"]
    assert rows["acquirer"].nunique() == 5 and rows["brand"].nunique() == 4
    again = simulate_slices([("acquirer", 5), ("brand", 4)], 48, 3)
    assert rows["count"].sum() == again.counts["count"].sum()
    by_acquirer = rows.groupby("acquirer")["count"].sum()
    marginal = again.slices[again.slices["dimension"] == "acquirer"].groupby("value")["count"]
    assert by_acquirer.sort_index().tolist() == marginal.sum().sort_index().tolist()
    doc = json.loads(labels.read_text())
    sliced = [lab for lab in doc if "slice" in lab]
    assert {lab["kind"] for lab in sliced} == {
        "slice_outage",
        "slice_denied_surge",
        "slice_degradation",
    }
    assert all(len(lab["slice"]) == 1 for lab in sliced)
    assert len(doc) - len(sliced) == 7  # the total's incidents as before


def test_analyze_json_gives_the_slice_of_slice_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = simulate_slices([("acquirer", 5)], 30, seed=2, incidents=[], quiet_hours=6)
    rows = feed.slices.rename(columns={"value": "acquirer"})
    rows["timestamp"] = rows["minute"].map(lambda m: m.isoformat())
    path = tmp_path / "feed.csv"
    rows[["timestamp", "status", "acquirer", "count"]].to_csv(path, index=False)
    assert main(["analyze", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sliced = [a for a in doc["anomalies"] if "slice" in a]
    outage = next(lab for lab in feed.labels if lab.kind == "slice_outage")
    assert {"acquirer": outage.slice[0][1]} in [a["slice"] for a in sliced]  # type: ignore[index]
    assert all(a["explanation"].startswith("acquirer=") for a in sliced)
    assert main(["analyze", str(path)]) == 0
    table = capsys.readouterr().out
    assert f"acquirer={outage.slice[0][1]} approved" in table  # type: ignore[index]


def _live(down_from: int, total_open: bool) -> tuple[list[Finding], list[Finding], SliceWatch]:
    """Three cold-start hours of acquirers a (40/min) and b (60/min), then b down; the total
    engine and the slice watcher stepped together as the live tick does."""
    rng = np.random.default_rng(5)
    engine, watch = Engine(), SliceWatch()
    start = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
    totals: list[Finding] = []
    sliced: list[Finding] = []
    for i in range(down_from + 15):
        minute = start + i * MINUTE
        cut = {("acquirer", "a"): {"approved": int(rng.poisson(40))}}
        if i < down_from:
            cut[("acquirer", "b")] = {"approved": int(rng.poisson(60))}
        counts = {"approved": sum(c["approved"] for c in cut.values())}
        totals.extend(engine.step(minute, counts))
        is_open = total_open or bool(engine.open_findings)
        sliced.extend(watch.step(minute, cut, total_open=is_open))
    return totals, sliced, watch


def test_live_slice_watch_names_the_slice_and_the_total_drills_down_to_it() -> None:
    totals, sliced, watch = _live(180, total_open=False)
    assert watch.watched == ((("acquirer", "a"),), (("acquirer", "b"),))
    assert totals  # b is 60% of the volume: the total drops too
    drilled = watch.drill(totals[0])
    assert drilled.evidence.slices[0][:2] == ("acquirer", "b")
    assert drilled.evidence.slices[0][2] >= 0.9
    assert "em acquirer=b" in explain(drilled.evidence, "pt", TZ)
    # no slice episode opens once the total is in one (its drill-down names the slice); one
    # that opened before it (the slice's outage rule can be a minute quicker) goes on
    assert all(f.detected_at <= totals[0].detected_at for f in sliced)


def test_no_new_slice_episode_while_the_total_is_in_one() -> None:
    _, sliced, watch = _live(180, total_open=True)
    assert sliced == []
    assert watch.open_findings == []


def test_an_open_slice_episode_is_there_for_status() -> None:
    _, sliced, watch = _live(180, total_open=False)
    (broken,) = watch.open_findings
    assert broken.slice == (("acquirer", "b"),) and not broken.resolved
    assert broken.key in {f.key for f in sliced}
