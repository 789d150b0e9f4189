"""Emails as officers read them (pure): one per alert version, one per operator alert on a source, one per
shift digest; plain text, UTF-8, quoted-printable.

What is stored (the notification's body) is the message without From, To and Date: those are set when it is
sent (`addressed`), so a corrected WATCHFLOOR_SMTP_FROM or a subscription's new address applies to retries and
replays, while the content and the Message-ID stay as first owed.

    Message-ID    <msg_<alert>_v<N>@watchfloor>   the webhook-id's shape: stable per alert version and recipient
                                                  kind, so a re-send (retry, replay) is recognisable as one
    In-Reply-To,  <msg_<alert>_v1@watchfloor>     updates thread under the alert's first version in mail clients
    References
    Auto-Submitted auto-generated                 RFC 3834: no vacation replies, no loops
"""

from datetime import UTC, datetime
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from services.alert.digest import Entry, Sections, Shift
from shared.messages import AlertMessage, SourceWatchMessage

MSG_DOMAIN = "watchfloor"
CORROBORATION_WORDS = {"single_source": "single source", "corroborated": "corroborated", "confirmed": "confirmed"}
KIND_WORDS = {"fired": "", "updated": "Update: ", "resolved": "Resolved: "}


def mail_id(message_id: str) -> str:
    """The RFC 5322 Message-ID of a notification's message id (`msg_…_v2` -> `<msg_…_v2@watchfloor>`)."""
    return f"<{message_id}@{MSG_DOMAIN}>"


def when(at: datetime, tz: str | None) -> str:
    """"2026-12-05 06:41 UTC (07:41 Africa/Niamey)": UTC always, the recipient's time beside it if set."""
    utc = at.astimezone(UTC)
    text = f"{utc:%Y-%m-%d %H:%M} UTC"
    if tz and tz != "UTC":
        local = at.astimezone(ZoneInfo(tz))
        day = "" if local.date() == utc.date() else f"{local:%Y-%m-%d} "
        text += f" ({day}{local:%H:%M} {tz})"
    return text


def _new(subject: str, message_id: str, text: str, *, thread_root: str | None = None) -> EmailMessage:
    msg = EmailMessage(policy=policy.default)
    msg["Subject"] = subject
    msg["Message-ID"] = mail_id(message_id)
    if thread_root is not None and thread_root != message_id:
        msg["In-Reply-To"] = mail_id(thread_root)
        msg["References"] = mail_id(thread_root)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    return msg


STORED = policy.default.clone(max_line_length=998)
"""Headers not folded (see smtp.WIRE): what is stored parses back to exactly what was composed."""


def _stored(msg: EmailMessage) -> str:
    return msg.as_string(policy=STORED)


def _who(alert: AlertMessage) -> str:
    return alert.perpetrator or ", ".join(alert.actors[:2])


def alert_subject(alert: AlertMessage) -> str:
    """"[III] Car bomb near Niamey — ISSP, vbied (corroborated)"; updates, re-pages and resolutions say so."""
    level = alert.incident_severity or alert.severity
    kind = KIND_WORDS.get(alert.kind, "")
    if alert.kind == "repaged":
        kind = f"Re-page {alert.page_count}, not acknowledged: "
    what = ", ".join(p for p in (_who(alert), ", ".join(alert.tactics[:2])) if p)
    notes = [CORROBORATION_WORDS.get(alert.corroboration or "", "")] if alert.corroboration else []
    if alert.disputed:
        notes.append("disputed")
    tail = f" ({', '.join(n for n in notes if n)})" if any(notes) else ""
    return f"[{level}] {kind}{alert.title}" + (f" — {what}" if what else "") + tail


def _console(public_url: str | None, path: str) -> str | None:
    return f"{public_url.rstrip('/')}{path}" if public_url else None


def alert_mail(alert: AlertMessage, *, message_id: str, tz: str | None, public_url: str | None,
               subscription_id: int) -> str:
    """The stored message of one alert version for one recipient."""
    place = alert.place
    where = "-"
    if place is not None:
        where = ", ".join(p for p in (place.name, place.admin1, place.country) if p)
        where += f" ({place.lat:.3f}, {place.lon:.3f})"
    independent = alert.independent_source_ids
    sources = ", ".join(alert.source_ids) or "-"
    lines = [alert.title, ""]
    if alert.kind != "fired" and alert.change:
        lines += [f"What changed:  {alert.change}", ""]
    if alert.disputed:
        lines += [f"DISPUTED:      {alert.disputed}", ""]
    what = ", ".join(alert.tactics) or "-"
    if alert.killed is not None:
        what += f"; {alert.killed} killed"
    lines += [
        f"Severity:      {alert.incident_severity or '-'} (incident) · {alert.severity} (rule)",
        f"What:          {what}",
        f"Who:           {', '.join(alert.actors) or '-'}"
        + (f" (perpetrator {alert.perpetrator})" if alert.perpetrator else ""),
        f"Where:         {where}",
        f"When:          first {when(alert.fired_at, tz)}; this version {when(alert.updated_at, tz)}",
        f"Corroboration: {CORROBORATION_WORDS.get(alert.corroboration or '', '-')}"
        + (f": {alert.corroboration_reason}" if alert.corroboration_reason else ""),
        f"Reports:       {alert.report_count if alert.report_count is not None else len(alert.event_ids)} from "
        f"{len(alert.source_ids)} source(s)"
        + (f", {len(independent)} independent" if independent is not None else "") + f": {sources}",
        f"State:         {alert.state}" + (f", re-page {alert.page_count}" if alert.kind == "repaged" else ""),
    ]
    if alert.url:
        lines.append(f"First report:  {alert.url}")
    lines += ["", f"Why it matched rule {alert.rule_id} ({alert.rule_name}):"]
    lines += [f"  - {reason}" for reason in alert.matched] or ["  - (no reason recorded)"]
    if alert.severity_reasons:
        lines += ["", "Why this severity:"] + [f"  - {reason}" for reason in alert.severity_reasons]
    link = _console(public_url, "/")
    lines += [""]
    if link:
        lines += [f"Console: {link}   (alert {alert.alert_id[:12]}; "
                  f"{_console(public_url, '/api/alerts/' + alert.alert_id)})"]
    lines += [f"Acknowledge: watchfloor ack {alert.alert_id[:12]}",
              "", "--",
              f"watchfloor alert {alert.alert_id} version {alert.version} ({alert.kind}); "
              f"subscription {subscription_id}."]
    root = message_id.rsplit("_v", 1)[0] + "_v1"
    msg = _new(alert_subject(alert), message_id, "\n".join(lines) + "\n", thread_root=root)
    msg["X-Watchfloor-Alert"] = f"{alert.alert_id} v{alert.version}"
    return _stored(msg)


def source_mail(message: SourceWatchMessage, *, message_id: str, tz: str | None, public_url: str | None,
                subscription_id: int) -> str:
    """The stored message of an operator alert on a source (source.silent, source.failing, or resolved)."""
    state = "resolved" if message.state == "resolved" else message.kind
    subject = f"[source] {message.source_name} {state}" + (
        f": {message.resolved_reason}" if message.state == "resolved" and message.resolved_reason else "")
    lines = [f"Source {message.source_name} ({message.source_id}, {message.source_kind}) "
             f"{'is ' + message.kind if message.state == 'raised' else 'is back: ' + (message.resolved_reason or '')}",
             "",
             f"Raised:        {when(message.since, tz)}",
             f"Why:           {message.reason}"]
    if message.state == "resolved":
        lines.append(f"Resolved:      {when(message.at, tz)}")
    if message.last_post_at:
        lines.append(f"Last post:     {when(message.last_post_at, tz)}")
    if message.source_url:
        lines.append(f"Address:       {message.source_url}")
    link = _console(public_url, "/#sources")
    if link:
        lines += ["", f"Console: {link}"]
    lines += ["", "--", f"watchfloor {message.event_type} {message.watch_id}; subscription {subscription_id}."]
    root = message_id.rsplit("_v", 1)[0] + "_v1"
    return _stored(_new(subject, message_id, "\n".join(lines) + "\n", thread_root=root))


def digest_subject(shift: Shift, sections: Sections) -> str:
    """"Shift digest 18:00–06:00: 3 new, 1 escalating, 2 unacknowledged, 1 disputed", or "…: nothing new"."""
    if sections.empty:
        return f"Shift digest {shift.label()}: nothing new"
    return f"Shift digest {shift.label()}: " + ", ".join(f"{n} {k}" for k, n in sections.counts().items())


def _local(at: datetime, tz: str) -> str:
    return f"{at.astimezone(ZoneInfo(tz)):%m-%d %H:%M}"


def _digest_line(entry: Entry, tz: str, *, unacknowledged: bool = False) -> list[str]:
    level = entry.incident_severity or entry.rule_severity
    who = ", ".join(p for p in (", ".join(entry.actors[:2]), ", ".join(entry.tactics[:2])) if p)
    head = f"  [{level}] {entry.title}" + (f" — {who}" if who else "")
    facts = [entry.place or "place unknown", CORROBORATION_WORDS.get(entry.corroboration or "", "-")]
    if unacknowledged:
        facts += [f"rule {entry.rule_id} ({entry.rule_severity})", f"firing since {_local(entry.fired_at, tz)}"]
        if entry.page_count:
            facts.append(f"{entry.page_count} re-page(s)")
        facts.append(f"alert {entry.alert_id[:12]}")
    else:
        facts += [entry.incident_state, f"first {_local(entry.first_seen_at, tz)}",
                  f"last {_local(entry.last_seen_at, tz)}"]
        if entry.escalated_at is not None:
            facts.append(f"escalated {_local(entry.escalated_at, tz)}")
    out = [head, "      " + " · ".join(facts)]
    if entry.disputed_at is not None and entry.dispute_reason:
        out.append(f"      disputed {_local(entry.disputed_at, tz)}: {entry.dispute_reason[:200]}")
    return out


SECTION_TITLES = {
    "new": "New incidents",
    "escalating": "Escalating (severity or corroboration rose)",
    "unacknowledged": "Unacknowledged alerts",
    "disputed": "Disputed incidents",
}


def digest_mail(sections: Sections, shift: Shift, *, message_id: str, public_url: str | None,
                subscription_id: int, limit: int, truncated: bool = False) -> str:
    """The stored message of one recipient's digest of one shift; each section lists at most `limit`, then
    "… and N more". `truncated`: the store read its cap of alerts, so counts may be low (said in the text)."""
    tz = shift.zone
    lines = [f"Shift {_local(shift.start, tz)} – {_local(shift.end, tz)} ({tz}); "
             f"{when(shift.start, None)} – {when(shift.end, None)}", ""]
    if sections.empty:
        lines += ["Nothing new: no incident alerted, escalated or disputed during the shift, and no alert is "
                  "waiting for an acknowledgement.", ""]
    for key, title in SECTION_TITLES.items():
        entries: list[Entry] = getattr(sections, key)
        if not entries:
            continue
        lines.append(f"{title}: {len(entries)}")
        for entry in entries[:limit]:
            lines += _digest_line(entry, tz, unacknowledged=key == "unacknowledged")
        if len(entries) > limit:
            lines.append(f"  … and {len(entries) - limit} more")
        lines.append("")
    if truncated:
        lines += ["(Only the most recent alerts were read: counts may be higher; see the console.)", ""]
    link = _console(public_url, "/#incidents")
    if link:
        lines += [f"Console: {link}", ""]
    lines += ["--", f"watchfloor shift digest; subscription {subscription_id}."]
    msg = _new(digest_subject(shift, sections), message_id, "\n".join(lines) + "\n")
    msg["X-Watchfloor-Digest"] = f"{shift.start.isoformat()}/{shift.end.isoformat()}"
    return _stored(msg)


def addressed(stored: str, *, sender: str, recipient: str, now: datetime) -> EmailMessage:
    """The stored message ready to send: From, To and Date set now (replacing any)."""
    msg = message_from_string(stored, _class=EmailMessage, policy=policy.default)
    for name in ("From", "To", "Date"):
        del msg[name]
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(now.astimezone(UTC))
    return msg
