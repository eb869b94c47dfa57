"""The offline sub-commands: `analyze`, `detect` and `simulate` (no store, no network)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.errors import CliError
from bot.settings import Settings
from detector import DetectorError
from detector.findings import Segment
from detector.grouping import OfflineIncident, group
from detector.simulate import INCIDENTS, Label, simulate
from detector.slicefeed import SLICE_INCIDENTS, joint_rows, parse_dimensions, simulate_slices
from skills.formatting import hhmm
from skills.wording import explain, slice_name
from storage.parsing import FeedBatch, FeedError, load_file


def _zone(args: argparse.Namespace) -> tzinfo:
    settings: Settings = args.settings  # read once, by the command line (bot/settings.py)
    return settings.timezone


def _lang(args: argparse.Namespace) -> str:
    settings: Settings = args.settings
    return settings.lang


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"{path}: cannot be read ({error})") from None


# ------------------------------------------------------------------ analyze


def cmd_analyze(args: argparse.Namespace) -> int:
    from detector.checkout import analyze_checkout, read_checkout
    from detector.config import DetectorConfig
    from detector.offline import analyze_transactions

    tz = _zone(args)
    lang = _lang(args)
    path = Path(args.path)
    text = _read_text(path)
    day: date = args.date or datetime.now(tz).date()
    header = text.split("\n", 1)[0].lower()
    try:
        if "today" in header:
            kind = "checkout"
            segments, baseline = analyze_checkout(read_checkout(text, str(path)), day, tz)
            counts = pd.DataFrame(
                {"minute": baseline.index, "status": "sales", "count": baseline["observed"]}
            )
            status = "sales"
        else:
            kind = "transactions"
            dimensions = args.settings.dimensions  # NIGHTSHIFT_DIMENSIONS
            batch = load_file(path, default_date=day, tz=tz, dimensions=dimensions)
            counts = batch.counts_frame()
            if counts.empty:
                raise CliError(f"{path}: no count rows (time,status,count) to analyze")
            auth = batch.auth_codes_frame()
            if args.auth_codes:
                auth = load_file(Path(args.auth_codes), default_date=day, tz=tz).auth_codes_frame()
            cuts = _slices(batch)
            result = analyze_transactions(counts, auth, DetectorConfig(tz=tz), slices=cuts)
            segments, baseline = list(result.segments), result.baseline
            status = "approved"
    except FeedError as error:
        raise CliError(str(error)) from None
    except DetectorError as error:
        raise CliError(f"{path}: {error}") from None
    if args.chart:
        from detector.chart import render_chart

        png = render_chart(counts, segments, baseline, status=status, tz=tz, title=path.name)
        try:
            Path(args.chart).write_bytes(png)
        except OSError as error:
            raise CliError(f"{args.chart}: cannot write ({error})") from None
    incidents = group(segments, _lost(counts, baseline, status))
    if args.json:
        body = _analysis_json(str(path), kind, segments, incidents, lang, tz)
        print(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        print(_incident_table(incidents, segments, tz, lang, kind))
        if segments:
            print()
        print(_analysis_table(segments, tz, lang, kind))
    return 0


def _slices(batch: FeedBatch) -> pd.DataFrame | None:
    """The batch's slice marginals (`minute, status, dimension, value, count`), if it has any."""
    return batch.slices_frame() if batch.slices else None


def _what(segment: Segment) -> str:
    """A table's name of what a segment is about: `approved`, or `acquirer=cielo approved`."""
    if segment.slice is None:
        return segment.metric
    return f"{slice_name(segment.slice)} {segment.metric}"


def _lost(counts: pd.DataFrame, baseline: pd.DataFrame, status: str) -> pd.Series:
    """Expected minus observed of the judged status (approvals, or sales) per time step."""
    if "observed" in baseline.columns:
        observed = baseline["observed"].astype(float)
    else:
        rows = counts[counts["status"] == status]
        by_time = rows.groupby(pd.to_datetime(rows["minute"], utc=True))["count"].sum()
        observed = by_time.reindex(baseline.index, fill_value=0).astype(float)
    return (baseline["expected"].astype(float) - observed).fillna(0.0)


def _incident_table(
    incidents: list[OfflineIncident], segments: list[Segment], tz: tzinfo, lang: str, kind: str
) -> str:
    if not incidents:
        return "nenhum incidente" if lang == "pt" else "no incidents"
    unit = "sales" if kind == "checkout" else "approvals"
    head = ("#", "when", "severity", "raised at", f"{unit} lost", "members")
    rows = [head]
    for n, incident in enumerate(incidents, 1):
        end = hhmm(incident.end, tz) if incident.end else "…"
        rows.append(
            (
                str(n),
                f"{incident.start.astimezone(tz).strftime('%Y-%m-%d %H:%M')}–{end}",
                incident.severity,
                hhmm(incident.detected_at, tz),
                f"{incident.approvals_lost:.0f}",
                ", ".join(dict.fromkeys(_what(segments[i]) for i in incident.members)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    title = "incidentes" if lang == "pt" else "incidents"
    lines = [f"{title}: {len(incidents)}"]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]))
    return "\n".join(lines)


def _analysis_json(
    path: str,
    kind: str,
    segments: list[Segment],
    incidents: list[OfflineIncident],
    lang: str,
    tz: tzinfo,
) -> dict[str, Any]:
    return {
        "file": path,
        "kind": kind,
        "anomalies": [
            {
                "start": s.start.astimezone(tz).isoformat(),
                "end": s.end.astimezone(tz).isoformat() if s.end else None,
                "detected_at": s.detected_at.astimezone(tz).isoformat(),
                "metric": s.metric,
                "kind": s.kind,
                "severity": s.severity,
                "score": s.score,
                "expected": s.expected,
                "observed": s.observed,
                "deviation": s.z,
                "explanation": explain(s.evidence, lang, tz),
                **({"slice": dict(s.slice)} if s.slice is not None else {}),
            }
            for s in segments
        ],
        "incidents": [
            {
                "start": i.start.astimezone(tz).isoformat(),
                "end": i.end.astimezone(tz).isoformat() if i.end else None,
                "detected_at": i.detected_at.astimezone(tz).isoformat(),
                "severity": i.severity,
                "members": list(i.members),
                "approvals_lost": i.approvals_lost,
            }
            for i in incidents
        ],
    }


def _analysis_table(segments: list[Segment], tz: tzinfo, lang: str, kind: str) -> str:
    if not segments:
        return "nenhuma anomalia" if lang == "pt" else "no anomalies"
    unit = "/h" if kind == "checkout" else "/min"
    head = ("when", "metric", "value vs expected", "dev (z)", "severity", "raised at", "why")
    rows = [head]
    for s in segments:
        end = hhmm(s.end, tz) if s.end else "…"
        rows.append(
            (
                f"{s.start.astimezone(tz).strftime('%Y-%m-%d %H:%M')}–{end}",
                _what(s),
                f"{s.observed:.4g}{unit} vs {s.expected:.4g}{unit}",
                f"{s.z:+.1f}",
                s.severity,
                hhmm(s.detected_at, tz),
                explain(s.evidence, lang, tz),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]))
    return "\n".join(lines)


# ------------------------------------------------------------------- detect


def _header(path: Path) -> list[str]:
    """The CSV's column names (one clear error for a missing, unreadable or empty file)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader([handle.readline()]), [])
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"{path}: cannot be read ({error})") from None
    if not first:
        raise CliError(f"{path}: empty file (a header line and rows are expected)")
    return [c.strip() for c in first]


def _stamps(column: pd.Series) -> Any:
    """The time column as datetime64 when it reads as dates, else None (rows are then taken as
    evenly spaced)."""
    if pd.api.types.is_numeric_dtype(column):
        return None
    for fmt in ("ISO8601", "mixed"):
        try:
            parsed = pd.to_datetime(column, utc=True, format=fmt)
        except (ValueError, TypeError, OverflowError):
            continue
        if not parsed.isna().any():
            return parsed.to_numpy(dtype="datetime64[ns]")
    return None


_SCORE_TEXT = [repr(round(i / 10_000, 4)) for i in range(10_001)]


def _scored_csv(rows: Any, score: Any, label: Any) -> str:
    """The output as CSV text: each row's leading text (`timestamp,value`), its score and label,
    joined in C (pandas' writer, and formatting floats, were half of the run)."""
    ticks = np.rint(np.clip(score, 0.0, 1.0) * 10_000).astype(np.int64).tolist()
    scores = map(_SCORE_TEXT.__getitem__, ticks)
    labels = map(("0", "1").__getitem__, label.tolist())
    body = "\n".join(map(",".join, zip(rows, scores, labels, strict=True)))
    return "timestamp,value,anomaly_score,label\n" + body + ("\n" if body else "")


def _leading_text(
    path: Path, columns: list[str], time_col: str, value_col: str, times: Any, values: Any
) -> Any:
    """Each row's `timestamp,value` as text: the file's own lines when it is just those two
    columns in that order (no quoting, no blank lines), else the values written out."""
    if columns == [time_col, value_col]:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"{path}: cannot be read ({error})") from None
        lines = text.splitlines()[1:]
        if len(lines) == len(times) and '"' not in text and all(lines[-1:]):
            return lines
    stamps = times.tolist()
    if times.str.contains('[,"\n]').any():  # such a timestamp is quoted, as CSV wants
        stamps = ['"' + t.replace('"', '""') + '"' for t in stamps]
    text_values = ["" if v != v else repr(v) for v in values.tolist()]
    return map(",".join, zip(stamps, text_values, strict=True))


def cmd_detect(args: argparse.Namespace) -> int:
    from detector.univariate import score_series

    path = Path(args.path)
    columns = _header(path)
    time_col = args.time_col or next(
        (c for c in columns if c.lower() in ("timestamp", "time", "date", "datetime")), columns[0]
    )
    if time_col not in columns:
        raise CliError(f"{path}:1: no column {time_col!r} (columns: {', '.join(columns)})")
    if args.value_col and args.value_col not in columns:
        raise CliError(f"{path}:1: no column {args.value_col!r} (columns: {', '.join(columns)})")
    try:
        frame = pd.read_csv(path, dtype={time_col: object}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CliError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if args.value_col:
        value_col = args.value_col
    else:
        numeric = [c for c in columns if c != time_col and pd.api.types.is_numeric_dtype(frame[c])]
        named = [c for c in columns if c != time_col and c.lower() == "value"]
        if not named and not numeric:
            raise CliError(f"{path}:1: no numeric value column; name one with --value-col")
        value_col = (named or numeric)[0]
    values = pd.to_numeric(frame[value_col], errors="coerce")
    bad = values.isna() & frame[value_col].notna()
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2
        raise CliError(
            f"{path}:{line}: {value_col} {frame[value_col].iloc[line - 2]!r} is not a number"
        )
    times = frame[time_col].fillna("").astype(str)
    scored = score_series(values.to_numpy(dtype=float), _stamps(times))
    labels = scored.label
    rows = _leading_text(path, columns, time_col, value_col, times, values)
    body = _scored_csv(rows, scored.score, labels)
    if args.output:
        try:
            Path(args.output).write_text(body, encoding="utf-8")
        except OSError as error:
            raise CliError(f"{args.output}: cannot write ({error})") from None
        period = f"a period of {scored.period} steps" if scored.period else "no period"
        print(
            f"{int(labels.sum())} anomal{'y' if labels.sum() == 1 else 'ies'} (episode onsets) "
            f"in {len(labels)} rows; "
            f"{scored.learning} learning rows, {period}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(body)
    return 0


# ----------------------------------------------------------------- simulate


def cmd_simulate(args: argparse.Namespace) -> int:
    incidents = None
    known = INCIDENTS + (SLICE_INCIDENTS if args.dimensions else ())
    if args.incidents is not None:
        incidents = [k.strip() for k in args.incidents.split(",") if k.strip()]
        unknown = [k for k in incidents if k not in known]
        if unknown:
            raise CliError(f"--incidents: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    try:
        if args.dimensions:
            out, labels = _dimensioned(args, incidents)
        else:
            frame, labels = simulate(args.hours, args.seed, incidents)
            out = frame.assign(timestamp=_iso(frame["minute"]))[["timestamp", "status", "count"]]
    except DetectorError as error:
        raise CliError(f"simulate: {error}") from None
    try:
        out.to_csv(args.output, index=False, quoting=csv.QUOTE_MINIMAL)
        if args.labels:
            Path(args.labels).write_text(
                json.dumps([lab.as_json() for lab in labels], indent=2) + "\n", encoding="utf-8"
            )
    except OSError as error:
        raise CliError(f"{error.filename}: cannot write ({error.strerror})") from None
    print(
        f"{len(out)} rows, {args.hours} h, {len(labels)} incident(s) -> {args.output}",
        file=sys.stderr,
    )
    return 0


def _iso(minutes: pd.Series) -> pd.Series:
    return minutes.map(lambda m: m.to_pydatetime().astimezone(UTC).isoformat())


def _dimensioned(
    args: argparse.Namespace, incidents: list[str] | None
) -> tuple[pd.DataFrame, list[Label]]:
    """`timestamp,status,<dimensions>,count` rows with total and slice incidents."""
    dimensions = parse_dimensions(args.dimensions)
    totals = None if incidents is None else [k for k in incidents if k in INCIDENTS]
    cuts = None if incidents is None else [k for k in incidents if k in SLICE_INCIDENTS]
    feed = simulate_slices(dimensions, args.hours, args.seed, totals, cuts)
    rows = joint_rows(feed, np.random.default_rng(args.seed))
    names = [name for name, _ in dimensions]
    out = rows.assign(timestamp=_iso(rows["minute"]))[["timestamp", "status", *names, "count"]]
    return out, feed.labels
