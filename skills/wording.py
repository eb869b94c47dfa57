"""The words of the detector's findings: what each saw, as one sentence for a 3 a.m. reader."""

from __future__ import annotations

from datetime import tzinfo

from detector.checkout import METRIC as SALES
from detector.findings import Evidence
from skills.formatting import hhmm, number, percent

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


def code_name(code: str, lang: str) -> str:
    """`51 — insufficient funds`, or just `77` when the code is unknown."""
    names = AUTH_CODES.get(code)
    if names is None:
        return code
    return f"{code} — {names[0] if lang == 'pt' else names[1]}"


def explain(seen: Evidence, lang: str, tz: tzinfo) -> str:
    """What was seen, in `lang` (`pt` or `en`), its start on `tz`'s clock."""
    since = hhmm(seen.since, tz)
    if seen.kind == "feed_silence":
        return _silence(seen, lang, since)
    if seen.metric == SALES:
        return _sales(seen, lang, since)
    if seen.kind == "outage":
        text = _outage(seen, lang, since)
    elif seen.kind == "volume_drop":
        text = _drop(seen, lang, since)
    elif seen.kind == "mix":
        text = _mix(seen, lang, since)
    else:
        text = _surge(seen, lang, since)
    if seen.also:
        text += ("; também: " if lang == "pt" else "; also: ") + ", ".join(seen.also)
    return text


def _outage(seen: Evidence, lang: str, since: str) -> str:
    rate = number(seen.expected, lang)
    if lang == "pt":
        return (
            f"nenhuma transação {seen.status} há {seen.window}+ min (esperado ~{rate}/min neste "
            f"horário) desde {since}"
        )
    return (
        f"no {seen.status} transactions for {seen.window}+ min (expected ~{rate}/min at this hour) "
        f"since {since}"
    )


def _drop(seen: Evidence, lang: str, since: str) -> str:
    now, usual, sd = (number(v, lang) for v in (seen.observed, seen.expected, seen.sd))
    change = f"−{number((1.0 - seen.ratio) * 100, lang)}%, z={seen.z:.0f}"
    if lang == "pt":
        return (
            f"{seen.status} caiu para {now}/min vs {usual} ± {sd} esperado neste horário "
            f"({change}) desde {since}"
        )
    return (
        f"{seen.status} down to {now}/min vs {usual} ± {sd} expected at this hour ({change}) "
        f"since {since}"
    )


def _mix(seen: Evidence, lang: str, since: str) -> str:
    now, usual = percent(seen.observed, lang, None), percent(seen.expected, lang, None)
    if lang == "pt":
        return (
            f"mistura de status incomum: {seen.status} em {now} vs {usual} normal (isolation "
            f"forest) desde {since}"
        )
    return (
        f"unusual status mix: {seen.status} at {now} vs {usual} normal (isolation forest) "
        f"since {since}"
    )


def _surge(seen: Evidence, lang: str, since: str) -> str:
    total = max(seen.total, 1e-9)
    now, usual, sd = (
        percent(v / total, lang, None) for v in (seen.observed, seen.expected, seen.sd)
    )
    times = number(seen.ratio, lang, 1 if seen.ratio < 10 else 0)
    z = f"{seen.z:.0f}"
    if lang == "pt":
        text = (
            f"{seen.status} em {now} das transações vs {usual} ± {sd} normal neste horário "
            f"(z={z}), {times}× o normal, desde {since}"
        )
    else:
        text = (
            f"{seen.status} at {now} of transactions vs {usual} ± {sd} normal at this hour "
            f"(z={z}), {times}× normal, since {since}"
        )
    if seen.cause is not None:
        code = ("código " if lang == "pt" else "code ") + code_name(seen.cause.code, lang)
        text += f"; {percent(seen.cause.share, lang, None)} {code}"
    if seen.merchants:
        shares = ", ".join(f"{m} ({percent(share, lang, None)})" for m, share in seen.merchants)
        text += ("; concentrado em " if lang == "pt" else "; mostly ") + shares
    return text


def _silence(seen: Evidence, lang: str, since: str) -> str:
    rate = number(seen.expected, lang)
    if lang == "pt":
        return (
            f"feed silencioso: nenhuma linha desde {since} ({seen.window} min), "
            f"esperado ~{rate} transações/min neste horário"
        )
    return (
        f"feed silent: no rows since {since} ({seen.window} min), "
        f"expected ~{rate} transactions/min at this hour"
    )


def _sales(seen: Evidence, lang: str, since: str) -> str:
    sold, usual = number(seen.observed, lang), number(seen.expected, lang)
    change = f"−{number((1 - seen.ratio) * 100, lang)}%, z={seen.z:.1f}"
    if lang == "pt":
        return f"vendas às {since}: {sold} vs {usual} esperadas ({change})"
    return f"sales at {since}: {sold} vs {usual} expected ({change})"
