"""Numbers, percentages, durations and times as an operator reads them, in pt or en."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from skills.core import SkillContext


def number(value: float, lang: str, digits: int = 0) -> str:
    """`12345.6` → `12.345,6` (pt) or `12,345.6` (en)."""
    text = f"{value:,.{digits}f}"
    if lang == "pt":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def percent(value: float, lang: str, digits: int | None = 1) -> str:
    """A share in [0, 1] as a percentage; `digits` None: as many as its size needs (`31%`,
    `3,5%`, `0,07%`)."""
    pct = 100 * value
    if digits is None:
        digits = 0 if pct >= 10 else 1 if pct >= 0.1 else 2
    return f"{number(pct, lang, digits)}%"


def duration(span: timedelta, lang: str) -> str:
    """`1h05m`, `3 min`, `2d4h`: short, for a phone screen."""
    minutes = max(0, int(span.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{mins:02d}m"
    return f"{mins} min"


def hhmm(when: datetime, tz: tzinfo) -> str:
    """`03:12`: the local time of day of `when` on `tz`'s clock."""
    return when.astimezone(tz).strftime("%H:%M")


def clock(ctx: SkillContext, when: datetime, now: datetime | None = None) -> str:
    """`03:12` today on the shift clock, `22/11 23:40` on another day."""
    local = ctx.local(when)
    today = ctx.local(now or ctx.clock.now()).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    return local.strftime("%d/%m %H:%M") if ctx.lang == "pt" else local.strftime("%m-%d %H:%M")


def ago(ctx: SkillContext, when: datetime) -> str:
    """`03:12 (há 5 min)` / `03:12 (5 min ago)`."""
    now = ctx.clock.now()
    span = duration(now - when, ctx.lang)
    return f"{clock(ctx, when, now)} " + ctx.tr(f"(há {span})", f"({span} ago)")


SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


def severity_icon(severity: str) -> str:
    return SEVERITY_ICON.get(severity.lower(), "⚪")


def criticos(n: int) -> str:
    """`1 crítico`, `2 críticos`: how many of them are critical, in Portuguese."""
    return f"{n} crítico" if n == 1 else f"{n} críticos"
