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


#: Each sentence in (pt, en), filled with the evidence's numbers as `_words` writes them.
SENTENCES: dict[str, tuple[str, str]] = {
    "outage": (
        "nenhuma transação {status} há {window}+ min (esperado ~{expected}/min neste horário) "
        "desde {since}",
        "no {status} transactions for {window}+ min (expected ~{expected}/min at this hour) "
        "since {since}",
    ),
    "volume_drop": (
        "{status} caiu para {observed}/min vs {expected} ± {sd} esperado neste horário "
        "(−{drop}%, z={z}) desde {since}",
        "{status} down to {observed}/min vs {expected} ± {sd} expected at this hour "
        "(−{drop}%, z={z}) since {since}",
    ),
    "mix": (
        "mistura de status incomum: {status} em {observed} vs {expected} normal "
        "(isolation forest) desde {since}",
        "unusual status mix: {status} at {observed} vs {expected} normal (isolation forest) "
        "since {since}",
    ),
    "surge": (  # and "rate": a status's share of the transactions
        "{status} em {observed} das transações vs {expected} ± {sd} normal neste horário "
        "(z={z}), {times}× o normal, desde {since}",
        "{status} at {observed} of transactions vs {expected} ± {sd} normal at this hour "
        "(z={z}), {times}× normal, since {since}",
    ),
    "feed_silence": (
        "feed silencioso: nenhuma linha desde {since} ({window} min), esperado ~{expected} "
        "transações/min neste horário",
        "feed silent: no rows since {since} ({window} min), expected ~{expected} "
        "transactions/min at this hour",
    ),
    SALES: (
        "vendas às {since}: {observed} vs {expected} esperadas (−{drop}%, z={z})",
        "sales at {since}: {observed} vs {expected} expected (−{drop}%, z={z})",
    ),
}
#: What follows the sentence: a denial surge's cause, the merchants that carry a surge, and the
#: episode's other statuses.
CAUSE = ("; {share} código {code}", "; {share} code {code}")
MERCHANTS = ("; concentrado em {merchants}", "; mostly {merchants}")
ALSO = ("; também: {statuses}", "; also: {statuses}")
#: A slice's finding opens with its slice and closes with its share of the volume; a total's
#: finding names the slices that carry its deviation (drill-down).
SLICE = ("{slice}: ", "{slice}: ")
SLICE_SHARE = ("; {share} do volume", "; {share} of volume")
CARRIERS = ("; {carriers}", "; {carriers}")
CARRIER = ("{share} em {slice}", "{share} in {slice}")


def slice_name(where: tuple[tuple[str, str], ...]) -> str:
    """`acquirer=cielo` (or `acquirer=cielo,brand=visa`)."""
    return ",".join(f"{dimension}={value}" for dimension, value in where)


def _in(lang: str, words: tuple[str, str]) -> str:
    return words[0] if lang == "pt" else words[1]


def code_name(code: str, lang: str) -> str:
    """`51 — insufficient funds`, or just `77` when the code is unknown."""
    names = AUTH_CODES.get(code)
    return code if names is None else f"{code} — {_in(lang, names)}"


def explain(seen: Evidence, lang: str, tz: tzinfo) -> str:
    """What was seen, in `lang` (`pt` or `en`), its start on `tz`'s clock."""
    lead = seen.lead
    sentence = SALES if lead.metric == SALES else lead.kind
    if sentence not in SENTENCES:
        sentence = "surge"
    text = _in(lang, SENTENCES[sentence]).format_map(_words(seen, sentence, lang, tz))
    if seen.cause is not None:
        share = percent(seen.cause.share, lang, None)
        text += _in(lang, CAUSE).format(share=share, code=code_name(seen.cause.code, lang))
    if seen.merchants:
        shares = ", ".join(f"{m} ({percent(share, lang, None)})" for m, share in seen.merchants)
        text += _in(lang, MERCHANTS).format(merchants=shares)
    if seen.slices:
        carriers = ", ".join(
            _in(lang, CARRIER).format(
                share=percent(share, lang, None), slice=slice_name(((dimension, value),))
            )
            for dimension, value, share in seen.slices
        )
        text += _in(lang, CARRIERS).format(carriers=carriers)
    if seen.also:
        text += _in(lang, ALSO).format(statuses=", ".join(seen.also))
    if seen.slice is not None:
        text = _in(lang, SLICE).format(slice=slice_name(seen.slice)) + text
        if seen.share is not None:
            digits = 0 if seen.share >= 0.01 else None  # "6% do volume", not "6,0%"
            text += _in(lang, SLICE_SHARE).format(share=percent(seen.share, lang, digits))
    return text


def _words(seen: Evidence, sentence: str, lang: str, tz: tzinfo) -> dict[str, str]:
    """The evidence's numbers as `sentence` shows them: rates, or shares of the transactions."""
    lead = seen.lead
    values = (lead.observed, lead.expected, lead.sd)
    if sentence == "mix":
        observed, expected, sd = (percent(v, lang, None) for v in values)
    elif sentence == "surge":
        total = max(lead.total, 1e-9)
        observed, expected, sd = (percent(v / total, lang, None) for v in values)
    else:
        observed, expected, sd = (number(v, lang) for v in values)
    return {
        "status": lead.status,
        "window": str(lead.window),
        "since": hhmm(seen.since, tz),
        "observed": observed,
        "expected": expected,
        "sd": sd,
        "z": f"{lead.z:.1f}" if sentence == SALES else f"{lead.z:.0f}",
        "drop": number((1 - lead.ratio) * 100, lang),
        "times": number(lead.ratio, lang, 1 if lead.ratio < 10 else 0),
    }
