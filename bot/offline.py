"""The offline sub-commands: `analyze`, `detect` and `simulate` (no store, no network)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from bot.errors import CliError
from detector import DetectorError
from detector.findings import Segment
from detector.simulate import INCIDENTS, simulate
from storage.parsing import FeedError, load_file

# scikit-learn and matplotlib load inside the handlers: every `nightshift` command imports this


def _zone(args: argparse.Namespace) -> tzinfo:
    settings = getattr(args, "settings", None)
    zone = getattr(settings, "timezone", None)
    if isinstance(zone, tzinfo):
        return zone
    name = os.environ.get("NIGHTSHIFT_TIMEZONE", "America/Sao_Paulo")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"NIGHTSHIFT_TIMEZONE: unknown time zone {name!r}") from None


def _lang(args: argparse.Namespace) -> str:
    settings = getattr(args, "settings", None)
    lang = getattr(settings, "lang", None) or os.environ.get("NIGHTSHIFT_LANG", "pt")
    return "en" if str(lang).lower() == "en" else "pt"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-07-12") from None


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
            batch = load_file(path, default_date=day, tz=tz)
            counts = batch.counts_frame()
            if counts.empty:
                raise CliError(f"{path}: no count rows (time,status,count) to analyze")
            auth = batch.auth_codes_frame()
            if args.auth_codes:
                auth = load_file(Path(args.auth_codes), default_date=day, tz=tz).auth_codes_frame()
            result = analyze_transactions(counts, auth, DetectorConfig(tz=tz))
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
    if args.json:
        print(
            json.dumps(
                _analysis_json(str(path), kind, segments, lang, tz), ensure_ascii=False, indent=2
            )
        )
    else:
        print(_analysis_table(segments, tz, lang, kind))
    return 0


def _analysis_json(
    path: str, kind: str, segments: list[Segment], lang: str, tz: tzinfo
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
                "explanation": s.explanation_en if lang == "en" else s.explanation_pt,
            }
            for s in segments
        ],
    }


def _analysis_table(segments: list[Segment], tz: tzinfo, lang: str, kind: str) -> str:
    if not segments:
        return "nenhuma anomalia" if lang == "pt" else "no anomalies"
    unit = "/h" if kind == "checkout" else "/min"
    head = ("when", "metric", "value vs expected", "dev (z)", "severity", "raised at", "why")
    rows = [head]
    for s in segments:
        end = s.end.astimezone(tz).strftime("%H:%M") if s.end else "…"
        rows.append(
            (
                f"{s.start.astimezone(tz).strftime('%Y-%m-%d %H:%M')}–{end}",
                s.metric,
                f"{s.observed:.4g}{unit} vs {s.expected:.4g}{unit}",
                f"{s.z:+.1f}",
                s.severity,
                s.detected_at.astimezone(tz).strftime("%H:%M"),
                s.explanation_en if lang == "en" else s.explanation_pt,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, r[-1]]))
    return "\n".join(lines)


# ------------------------------------------------------------------- detect


def cmd_detect(args: argparse.Namespace) -> int:
    from detector.univariate import score_stream

    path = Path(args.path)
    _read_text(path)  # one clear error for a missing or unreadable file
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CliError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    columns = [str(c) for c in frame.columns]
    time_col = args.time_col or next(
        (c for c in columns if c.lower() in ("timestamp", "time", "date", "datetime")), columns[0]
    )
    if time_col not in columns:
        raise CliError(f"{path}:1: no column {time_col!r} (columns: {', '.join(columns)})")
    if args.value_col:
        value_col = args.value_col
        if value_col not in columns:
            raise CliError(f"{path}:1: no column {value_col!r} (columns: {', '.join(columns)})")
    else:
        numeric = [c for c in columns if c != time_col and pd.api.types.is_numeric_dtype(frame[c])]
        preferred = [c for c in numeric if c.lower() == "value"]
        if not numeric:
            raise CliError(f"{path}:1: no numeric value column; name one with --value-col")
        value_col = (preferred or numeric)[0]
    values = pd.to_numeric(frame[value_col], errors="coerce")
    bad = values.isna() & frame[value_col].notna()
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2
        raise CliError(
            f"{path}:{line}: {value_col} {frame[value_col].iloc[line - 2]!r} is not a number"
        )
    scores, labels = score_stream(values.to_numpy(dtype=float))
    out = pd.DataFrame(
        {
            "timestamp": frame[time_col],
            "value": values,
            "anomaly_score": scores.round(4),
            "label": labels,
        }
    )
    if args.output:
        try:
            out.to_csv(args.output, index=False)
        except OSError as error:
            raise CliError(f"{args.output}: cannot write ({error})") from None
        print(f"{int(labels.sum())} anomalous rows of {len(out)}", file=sys.stderr)
    else:
        out.to_csv(sys.stdout, index=False)
    return 0


# ----------------------------------------------------------------- simulate


def cmd_simulate(args: argparse.Namespace) -> int:
    incidents = None
    if args.incidents is not None:
        incidents = [k.strip() for k in args.incidents.split(",") if k.strip()]
        unknown = [k for k in incidents if k not in INCIDENTS]
        if unknown:
            raise CliError(
                f"--incidents: unknown {', '.join(unknown)} (known: {', '.join(INCIDENTS)})"
            )
    try:
        frame, labels = simulate(args.hours, args.seed, incidents)
    except DetectorError as error:
        raise CliError(f"simulate: {error}") from None
    out = frame.assign(
        timestamp=frame["minute"].map(lambda m: m.to_pydatetime().astimezone(UTC).isoformat())
    )[["timestamp", "status", "count"]]
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `analyze`, `detect` and `simulate` to the `nightshift` command line."""
    p = subparsers.add_parser(
        "analyze", help="offline anomaly analysis of a checkout or transactions CSV"
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chart", metavar="OUT.png", help="write a PNG chart")
    p.add_argument("--date", type=_date, help="date for files whose times have none")
    p.add_argument("--auth-codes", metavar="FILE", help="authorization-code breakdown CSV")
    p.set_defaults(handler=cmd_analyze)

    p = subparsers.add_parser("detect", help="streaming anomaly scores for a univariate CSV")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--time-col", metavar="C")
    p.add_argument("--value-col", metavar="C")
    p.add_argument("--output", metavar="OUT.csv")
    p.set_defaults(handler=cmd_detect)

    p = subparsers.add_parser("simulate", help="a synthetic per-minute feed with incidents")
    p.add_argument("--hours", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--incidents", metavar="LIST", help=f"comma list of {', '.join(INCIDENTS)}")
    p.add_argument("--output", metavar="FEED.csv", required=True)
    p.add_argument("--labels", metavar="LABELS.json")
    p.set_defaults(handler=cmd_simulate)
