"""Time periods as operators type them: `30m`, `2h`, `1d`, `última hora`, `last 30 minutes`."""

from __future__ import annotations

import re
from datetime import timedelta

from skills.core import SkillError, normalize

_UNITS = {
    "m": 1,
    "min": 1,
    "mins": 1,
    "minuto": 1,
    "minutos": 1,
    "minute": 1,
    "minutes": 1,
    "h": 60,
    "hr": 60,
    "hrs": 60,
    "hora": 60,
    "horas": 60,
    "hour": 60,
    "hours": 60,
    "d": 1440,
    "dia": 1440,
    "dias": 1440,
    "day": 1440,
    "days": 1440,
}
_WORDS = r"(?:ultim[oa]s?|last|nas?|nos?|in|the|past|de|do|da)"
_PERIOD = re.compile(rf"^(?:{_WORDS}\s+)*(?P<n>\d+)?\s*(?P<unit>[a-z]+)$")
MAX_PERIOD = timedelta(days=90)


def parse_period(text: str, default: timedelta = timedelta(hours=1)) -> timedelta:
    """A period from free text; empty text gives `default`. Raises SkillError if unreadable."""
    words = normalize(text)
    if not words:
        return default
    match = _PERIOD.match(words)
    unit = match.group("unit") if match else None
    if match is None or unit not in _UNITS:
        raise SkillError(
            f"período {text!r} não reconhecido (ex.: 30m, 2h, 1d, última hora) / "
            f"period {text!r} not understood (e.g. 30m, 2h, 1d, last hour)"
        )
    amount = int(match.group("n") or 1)
    period = timedelta(minutes=amount * _UNITS[unit])
    if period <= timedelta(0) or period > MAX_PERIOD:
        raise SkillError("o período deve ficar entre 1 minuto e 90 dias / period must be 1m to 90d")
    return period


def split_period(args: str) -> tuple[str, str]:
    """Split `args` into (period text, rest): the longest leading run of words that parses."""
    words = args.split()
    for end in range(len(words), 0, -1):
        head = " ".join(words[:end])
        try:
            parse_period(head)
        except SkillError:
            continue
        return head, " ".join(words[end:])
    return "", args.strip()


def describe(period: timedelta, lang: str) -> str:
    """`2h` → `últimas 2 horas` / `last 2 hours`."""
    minutes = int(period.total_seconds() // 60)
    if minutes % 1440 == 0:
        n, pt_one, pt_many, en = minutes // 1440, "último dia", "últimos {n} dias", "day"
    elif minutes % 60 == 0:
        n, pt_one, pt_many, en = minutes // 60, "última hora", "últimas {n} horas", "hour"
    else:
        n, pt_one, pt_many, en = minutes, "último minuto", "últimos {n} minutos", "minute"
    if lang == "pt":
        return pt_one if n == 1 else pt_many.format(n=n)
    return f"last {en}" if n == 1 else f"last {n} {en}s"
