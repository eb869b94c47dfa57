"""Plain-language explanations of findings, in Portuguese and English, for a 3 a.m. reader."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from detector.signals import Signal

# ISO 8583 response codes an operator meets most; unknown codes are shown by number only.
AUTH_CODES: dict[str, tuple[str, str]] = {
    "00": ("aprovada", "approved"),
    "01": ("consultar emissor", "refer to issuer"),
    "03": ("estabelecimento inválido", "invalid merchant"),
    "04": ("reter cartão", "pick up card"),
    "05": ("não autorizada", "do not honor"),
    "12": ("transação inválida", "invalid transaction"),
    "13": ("valor inválido", "invalid amount"),
    "14": ("cartão inválido", "invalid card number"),
    "41": ("cartão perdido", "lost card"),
    "43": ("cartão roubado", "stolen card"),
    "51": ("saldo insuficiente", "insufficient funds"),
    "54": ("cartão vencido", "expired card"),
    "55": ("senha incorreta", "incorrect PIN"),
    "57": ("transação não permitida ao portador", "not permitted to cardholder"),
    "58": ("transação não permitida ao terminal", "not permitted to terminal"),
    "59": ("suspeita de fraude", "suspected fraud"),
    "61": ("excede limite de valor", "exceeds amount limit"),
    "62": ("cartão restrito", "restricted card"),
    "65": ("excede limite de frequência", "exceeds frequency limit"),
    "75": ("tentativas de senha excedidas", "PIN tries exceeded"),
    "91": ("emissor indisponível", "issuer unavailable"),
    "96": ("falha do sistema", "system malfunction"),
}


def number(value: float, lang: str, digits: int = 1) -> str:
    """`value` with `digits` decimals, comma as the decimal mark in Portuguese."""
    text = f"{value:,.{digits}f}"
    if lang == "pt":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


def percent(share: float, lang: str) -> str:
    """A share in [0, 1] as a percentage with a sensible number of decimals."""
    pct = share * 100
    digits = 0 if pct >= 10 else 1 if pct >= 0.1 else 2
    return number(pct, lang, digits) + "%"


def clock(moment: datetime, tz: tzinfo) -> str:
    """Local HH:MM of `moment`."""
    return moment.astimezone(tz).strftime("%H:%M")


def code_name(code: str, lang: str) -> str:
    """`51 — insufficient funds` or just `code 77` when the code is unknown."""
    names = AUTH_CODES.get(code)
    if names is None:
        return code
    return f"{code} — {names[0] if lang == 'pt' else names[1]}"


@dataclass(frozen=True, slots=True)
class Cause:
    """The dominant authorization code of a denial surge, and its share of the denials."""

    code: str
    share: float


def dominant_code(codes: Mapping[str, int]) -> Cause | None:
    """The most frequent non-approval code, when there are enough denials to say."""
    denials = {code: n for code, n in codes.items() if code != "00" and n > 0}
    total = sum(denials.values())
    if total < 5:
        return None
    code = max(denials, key=lambda c: denials[c])
    return Cause(code, denials[code] / total)


def top_merchants(merchants: Mapping[str, int], surplus: float) -> list[tuple[str, float]]:
    """The few merchants that carry most of the rows of a surge, with their share of it."""
    total = sum(merchants.values())
    if total <= 0 or surplus <= 0:
        return []
    ranked = sorted(merchants.items(), key=lambda kv: -kv[1])
    picked: list[tuple[str, float]] = []
    covered = 0
    for merchant, count in ranked[:3]:
        share = count / total
        if share < 0.15:
            break
        picked.append((merchant, share))
        covered += count
        if covered >= 0.6 * total:
            break
    return picked


def describe(
    s: Signal,
    start: datetime,
    codes: Counter[str],
    merchants: dict[str, Counter[str]],
    statuses: list[str],
    tz: tzinfo,
) -> tuple[str, str]:
    """The sentences (Portuguese, English) of an episode or segment led by `s`."""
    since = clock(start, tz)
    if s.kind == "outage":
        pt = (
            f"nenhuma transação {s.status} há {s.window}+ min (esperado ~"
            f"{number(s.expected, 'pt', 0)}/min neste horário) desde {since}"
        )
        en = (
            f"no {s.status} transactions for {s.window}+ min (expected ~"
            f"{number(s.expected, 'en', 0)}/min at this hour) since {since}"
        )
    elif s.kind == "volume_drop":
        drop = (1.0 - s.ratio) * 100
        pt = (
            f"{s.status} caiu para {number(s.observed, 'pt', 0)}/min vs "
            f"{number(s.expected, 'pt', 0)} ± {number(s.sd, 'pt', 0)} esperado neste horário "
            f"(−{number(drop, 'pt', 0)}%, z={s.z:.0f}) desde {since}"
        )
        en = (
            f"{s.status} down to {number(s.observed, 'en', 0)}/min vs "
            f"{number(s.expected, 'en', 0)} ± {number(s.sd, 'en', 0)} expected at this hour "
            f"(−{number(drop, 'en', 0)}%, z={s.z:.0f}) since {since}"
        )
    elif s.kind == "mix":
        pt = (
            f"mistura de status incomum: {s.status} em {percent(s.observed, 'pt')} vs "
            f"{percent(s.expected, 'pt')} normal (isolation forest) desde {since}"
        )
        en = (
            f"unusual status mix: {s.status} at {percent(s.observed, 'en')} vs "
            f"{percent(s.expected, 'en')} normal (isolation forest) since {since}"
        )
    else:
        tot = max(s.total, 1e-9)
        obs_share, exp_share, sd_share = s.observed / tot, s.expected / tot, s.sd / tot
        times_pt = number(s.ratio, "pt", 1 if s.ratio < 10 else 0)
        times_en = number(s.ratio, "en", 1 if s.ratio < 10 else 0)
        pt = (
            f"{s.status} em {percent(obs_share, 'pt')} das transações vs "
            f"{percent(exp_share, 'pt')} ± {percent(sd_share, 'pt')} normal neste horário "
            f"(z={s.z:.0f}), {times_pt}× o normal, desde {since}"
        )
        en = (
            f"{s.status} at {percent(obs_share, 'en')} of transactions vs "
            f"{percent(exp_share, 'en')} ± {percent(sd_share, 'en')} normal at this hour "
            f"(z={s.z:.0f}), {times_en}× normal, since {since}"
        )
        if s.status == "denied":
            cause = dominant_code(codes)
            if cause is not None:
                pct_pt, pct_en = percent(cause.share, "pt"), percent(cause.share, "en")
                pt += f"; {pct_pt} código {code_name(cause.code, 'pt')}"
                en += f"; {pct_en} code {code_name(cause.code, 'en')}"
        tops = top_merchants(merchants.get(s.status, Counter()), s.observed - s.expected)
        if tops:
            pt += "; concentrado em " + ", ".join(f"{m} ({percent(sh, 'pt')})" for m, sh in tops)
            en += "; mostly " + ", ".join(f"{m} ({percent(sh, 'en')})" for m, sh in tops)
    others = [st for st in statuses if st != s.status]
    if others:
        pt += "; também: " + ", ".join(others)
        en += "; also: " + ", ".join(others)
    return pt, en


def describe_silence(start: datetime, minutes: int, rate: float, tz: tzinfo) -> tuple[str, str]:
    """The sentences (Portuguese, English) of a silent feed."""
    since = clock(start, tz)
    return (
        f"feed silencioso: nenhuma linha desde {since} ({minutes} min), "
        f"esperado ~{number(rate, 'pt', 0)} transações/min neste horário",
        f"feed silent: no rows since {since} ({minutes} min), "
        f"expected ~{number(rate, 'en', 0)} transactions/min at this hour",
    )
