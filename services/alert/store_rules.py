"""The SQL of rules: stored as ops wrote them (validated JSON and the YAML body), with an audit row per change.
Rows in, rows out: parsing a stored rule back into a RuleSpec is `rules.stored_rules`. Callers own the
transaction."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import AuditEntry, Rule, utcnow


async def upsert_rule(session: AsyncSession, spec: dict[str, Any], body: str, origin: str | None,
                      actor: str) -> Rule:
    """Creates or replaces a rule from its stored form (`RuleSpec.to_stored()`: id, name, severity, enabled…),
    with an audit row saying who did it and from where."""
    now = utcnow()
    rule_id, enabled = spec["id"], bool(spec["enabled"])
    row = await session.get(Rule, rule_id)
    action = "rule.created" if row is None else "rule.updated"
    if row is None:
        row = Rule(id=rule_id, created_at=now)
        session.add(row)
    changed = row.body != body or row.enabled != enabled
    row.name, row.severity, row.enabled = spec["name"], spec["severity"], enabled
    row.body, row.spec, row.origin, row.updated_at = body, spec, origin, now
    session.add(AuditEntry(at=now, actor=actor, action=action, target_kind="rule", target_id=rule_id,
                           detail={"origin": origin, "changed": changed, "enabled": enabled}))
    await session.flush()
    return row


async def set_rule_enabled(session: AsyncSession, rule_id: str, enabled: bool, actor: str) -> Rule | None:
    row = await session.get(Rule, rule_id)
    if row is None:
        return None
    row.enabled = enabled
    row.spec = {**row.spec, "enabled": enabled}
    row.updated_at = utcnow()
    session.add(AuditEntry(actor=actor, action="rule.enabled" if enabled else "rule.disabled",
                           target_kind="rule", target_id=rule_id, detail=None))
    return row


async def list_rules(session: AsyncSession) -> list[Rule]:
    return list((await session.scalars(sa.select(Rule).order_by(Rule.id))).all())



async def enabled_rules(session: AsyncSession) -> list[Rule]:
    """Every enabled rule row, by id."""
    return list((await session.scalars(sa.select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.id))).all())


async def rule_notify(session: AsyncSession, rule_id: str) -> list[int] | None:
    """The rule's `notify` list of subscription ids (None: every subscription may have it)."""
    rule = await session.get(Rule, rule_id)
    return (rule.spec or {}).get("notify") if rule else None


async def rules_revision(session: AsyncSession) -> tuple[int, str]:
    """Changes whenever a rule is added, changed, enabled or disabled: (count, latest update)."""
    count, latest = (await session.execute(sa.select(sa.func.count(), sa.func.max(Rule.updated_at)))).one()
    return int(count), str(latest)
