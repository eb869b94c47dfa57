"""The skills registry: every chat command, in one visible tuple."""

from __future__ import annotations

from skills import (
    alerts,
    anomalies,
    briefing,
    chart,
    help,
    incident,
    metrics,
    runbook,
    silence,
    status,
)
from skills.core import SkillSpec

SKILLS: tuple[SkillSpec, ...] = (
    SkillSpec(
        name="status",
        aliases=("status do sistema", "como esta o sistema", "como está o sistema", "health"),
        summary_pt="saúde do feed, do store e dos chats; transações/min; aprovação; alertas",
        summary_en="health of feed, store and chats; transactions/min; approval; alerts",
        usage="status",
        run=status.run,
    ),
    SkillSpec(
        name="alertas",
        aliases=("alerts", "alertas ativos", "active alerts"),
        summary_pt="alertas ativos (severidade, desde quando, silenciado?); "
        "`todos` inclui resolvidos",
        summary_en="active alerts (severity, since when, silenced?); `all` includes resolved",
        usage="alertas [todos]",
        run=alerts.run,
    ),
    SkillSpec(
        name="anomalias",
        aliases=("anomalies", "anomalia", "anomaly"),
        summary_pt="anomalias do detector no período (padrão 1h), explicadas",
        summary_en="detector findings in the period (default 1h), explained",
        usage="anomalias [período]",
        run=anomalies.run,
    ),
    SkillSpec(
        name="metricas",
        aliases=("metrics", "metrica", "metric"),
        summary_pt="uma métrica agora vs o normal do horário",
        summary_en="a metric now vs its normal for this time of day",
        usage="metricas [nome]",
        run=metrics.run,
        presets=(("taxa de aprovacao", "aprovacao"), ("approval rate", "aprovacao")),
    ),
    SkillSpec(
        name="grafico",
        aliases=("chart", "gráfico", "graph"),
        summary_pt="gráfico PNG do período por status, com a faixa normal e as anomalias",
        summary_en="PNG chart of the period per status, with the normal band and anomalies",
        usage="grafico [período] [status]",
        run=chart.run,
    ),
    SkillSpec(
        name="briefing",
        aliases=("resumo", "shift briefing"),
        summary_pt="o briefing do turno: 24h (foco nas 8h), anomalias, alertas, silêncios, "
        "volume esperado, pendências",
        summary_en="the shift briefing: last 24h (8h in focus), anomalies, alerts, silences, "
        "expected volume, pending",
        usage="briefing",
        run=briefing.run,
    ),
    SkillSpec(
        name="passagem",
        aliases=("handoff", "passagem de turno", "shift handoff"),
        summary_pt="a passagem de turno: a noite, acks, runbooks, incidentes, "
        "MTTA/MTTR vs 7 noites",
        summary_en="the shift handoff: the night, acks, runbooks, incidents, MTTA/MTTR vs 7 nights",
        usage="passagem",
        run=briefing.run_handoff,
    ),
    SkillSpec(
        name="incidentes",
        aliases=("incidents", "incidentes abertos", "open incidents"),
        summary_pt="incidentes abertos, os piores primeiro: membros, impacto, ack, idade",
        summary_en="open incidents, worst first: members, impact, ack, age",
        usage="incidentes",
        run=incident.run_list,
    ),
    SkillSpec(
        name="incidente",
        aliases=("incident",),
        summary_pt="`incidente N` mostra um com a linha do tempo; `incidente <descrição>` abre "
        "um à mão; `incidente fechar N` encerra",
        summary_en="`incident N` shows one with its timeline; `incident <description>` opens "
        "one by hand; `incident close N` closes one",
        usage="incidente [N | descrição | fechar N]",
        run=incident.run,
    ),
    SkillSpec(
        name="falso",
        aliases=("false", "falso alarme", "false alarm"),
        summary_pt="marca um incidente do detector como falso alarme (silencia o tipo por 1h)",
        summary_en="marks a detector incident a false alarm (mutes that kind for 1h)",
        usage="falso N",
        run=incident.judge_false,
    ),
    SkillSpec(
        name="silenciar",
        aliases=("silence", "silenciar alerta", "mute"),
        summary_pt="silencia um incidente (`#N`), um alerta no Alertmanager (id ou nome) ou um "
        "tipo de anomalia (`tipo:métrica`) pela duração",
        summary_en="silences an incident (`#N`), an alert in Alertmanager (id or name) or an "
        "anomaly kind (`kind:metric`) for the duration",
        usage="silenciar ALVO DURAÇÃO [comentário]",
        run=silence.run,
    ),
    SkillSpec(
        name="ack",
        aliases=("reconhecer", "acknowledge"),
        summary_pt="você está cuidando do incidente (`#N`, ou id/nome de um alerta dele): para o "
        "escalonamento e edita as mensagens",
        summary_en="you are on the incident (`#N`, or one of its alerts' id/name): stops its "
        "escalation and edits its messages",
        usage="ack ALVO",
        run=silence.ack,
    ),
    SkillSpec(
        name="runbook",
        aliases=("runbooks", "executar", "run"),
        summary_pt="lista, simula (--dry-run) ou executa um runbook; `runbook historico`",
        summary_en="lists, simulates (--dry-run) or runs a runbook; `runbook history`",
        usage="runbook [NOME k=v ...] [--dry-run]",
        run=runbook.run,
    ),
    SkillSpec(
        name="confirmar",
        aliases=("confirm",),
        summary_pt="confirma um runbook perigoso com o código recebido",
        summary_en="confirms a dangerous runbook with the code you received",
        usage="confirmar CÓDIGO",
        run=runbook.confirm,
    ),
    SkillSpec(
        name="cancelar",
        aliases=("cancel",),
        summary_pt="para o runbook em execução ou descarta uma confirmação",
        summary_en="stops the running runbook or drops a confirmation",
        usage="cancelar [NOME|CÓDIGO]",
        run=runbook.cancel,
    ),
    SkillSpec(
        name="ajuda",
        aliases=("help", "?", "start", "comandos", "commands"),
        summary_pt="esta lista",
        summary_en="this list",
        usage="ajuda",
        run=help.run,
    ),
)


def menu(lang: str) -> list[tuple[str, str]]:
    """(name, summary) of every skill, as a chat's command menu lists them."""
    return [(s.name, (s.summary_pt if lang == "pt" else s.summary_en)[:256]) for s in SKILLS]
