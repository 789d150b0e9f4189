"""The alert tables on both databases: rules with audit, routing to subscriptions, notifications owed once."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands, dispatch, store_deliveries, store_rules, store_subscriptions
from services.alert.rules import load_rule_text
from shared.db import session_scope
from shared.models import AuditEntry
from tests.alert.test_rules import FIRST_RULE


async def test_rules_are_audited_and_their_revision_moves(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessions) as session:
        before = await store_rules.rules_revision(session)
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE), FIRST_RULE, "rules/a.yaml", actor="ana")
    async with session_scope(sessions) as session:
        after_add = await store_rules.rules_revision(session)
        disabled = FIRST_RULE + "enabled: false\n"
        await commands.upsert_rule(session, load_rule_text(disabled), disabled, "rules/a.yaml", actor="ben")
    async with session_scope(sessions) as session:
        after_disable = await store_rules.rules_revision(session)
        assert len({before, after_add, after_disable}) == 3
        assert await commands.enabled_rules(session) == []
        assert [r.enabled for r in await store_rules.list_rules(session)] == [False]
        audit = (await session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))).all()
        assert [(a.actor, a.action, a.target_id) for a in audit] == [
            ("ana", "rule.created", "issp-niamey-50km"), ("ben", "rule.updated", "issp-niamey-50km")]


async def test_routing_by_rule_list_subscription_filter_and_severity(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with session_scope(sessions) as session:
        everything, _ = await commands.add_subscription(session, "http://127.0.0.1:9/all")
        only_this_rule, _ = await commands.add_subscription(session, "http://127.0.0.1:9/r",
                                                         rule_ids=["issp-niamey-50km"])
        only_other_rule, _ = await commands.add_subscription(session, "http://127.0.0.1:9/o", rule_ids=["x"])
        critical_only, _ = await commands.add_subscription(session, "http://127.0.0.1:9/c", min_severity="critical")
        gone, _ = await commands.add_subscription(session, "http://127.0.0.1:9/g")
        await store_subscriptions.disable_subscription(session, gone.id, "HTTP 410", actor="dispatcher")
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE), FIRST_RULE, None, actor="t")
    async with session_scope(sessions) as session:
        subs = await dispatch.subscriptions_for(session, "issp-niamey-50km", "high")
        assert [s.id for s in subs] == [everything.id, only_this_rule.id]
        routed = FIRST_RULE + f"notify: [{only_this_rule.id}]\n"
        await commands.upsert_rule(session, load_rule_text(routed), routed, None, actor="t")
    async with session_scope(sessions) as session:
        subs = await dispatch.subscriptions_for(session, "issp-niamey-50km", "high")
        assert [s.id for s in subs] == [only_this_rule.id]
    assert only_other_rule.id and critical_only.id


async def test_a_notification_is_owed_once_and_sent_by_one_dispatcher(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessions) as session:
        sub, secret = await commands.add_subscription(session, "http://127.0.0.1:9/hook", secret=None)
        assert secret.startswith("whsec_") and sub.secret == secret
        args = dict(subscription_id=sub.id, alert_id="a" * 64, version=1, message_id="msg_a_v1", body="{}",
                    due=now)
        assert await store_deliveries.add_notification(session, **args) is True
        assert await store_deliveries.add_notification(session, **args) is False          # redelivered AlertMessage
    async with session_scope(sessions) as session:
        first = await store_deliveries.claim_due(session, now, timedelta(seconds=45), 10)
    async with session_scope(sessions) as session:
        second = await store_deliveries.claim_due(session, now, timedelta(seconds=45), 10)  # leased by the first
        later = await store_deliveries.claim_due(session, now + timedelta(seconds=46), timedelta(seconds=45), 10)
    assert [n.alert_version for n in first] == [1] and second == [] and len(later) == 1
