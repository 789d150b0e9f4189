"""`watchfloor silence|ack|rule dry-run` against a real database: effects visible to the next command."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from services.alert import commands, store_alerts, store_incidents
from services.alert.rules import load_rule_text
from services.classify.store import upsert_event
from shared.db import make_engine, make_sessionmaker, session_scope
from shared.messages import AlertMessage
from shared.models import AuditEntry
from tests.alert.events import vbied_niamey_en
from tests.alert.test_rules import FIRST_RULE
from watchfloor.cli_noise import ack, rule_dry_run, silence


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    def invoke(command, *args: str):
        return runner.invoke(command, list(args), catch_exceptions=False)

    return invoke


async def _seed(db_url: str) -> str:
    """A stored event and its firing alert, as the pipeline leaves them."""
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    event = vbied_niamey_en()
    now = datetime.now(UTC)
    async with session_scope(sessions) as session:
        await upsert_event(session, event)
        await commands.upsert_rule(session, load_rule_text(FIRST_RULE), FIRST_RULE, None, actor="t")
        from services.alert.incidents import open_incident

        incident = open_incident("i" * 64, event)
        await store_incidents.save_incident(session, incident.id, incident.columns())
        message = AlertMessage(alert_id="a" * 64, version=1, kind="fired", rule_id="issp-niamey-50km",
                               rule_name="n", severity="high", incident_id=incident.id, fired_at=now, updated_at=now,
                               event_ids=[event.event_id], source_ids=["src-en"], title="Car bomb", actors=["ISSP"],
                               tactics=["vbied"], confidence=0.9, incident_severity="III")
        await store_alerts.save_alert(session, message.model_dump(mode="json", by_alias=True),
                                      alert_id=message.alert_id, rule_id=message.rule_id, incident_id=incident.id,
                                      severity="high", version=1, fired_at=now, updated_at=now)
    await engine.dispose()
    return message.alert_id


async def _audit(db_url: str) -> list[tuple[str, str]]:
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as session:
        audit = (await session.execute(sa.select(AuditEntry.actor, AuditEntry.action)
                                       .where(AuditEntry.target_kind.in_(("silence", "alert")))
                                       .order_by(AuditEntry.id))).all()
    await engine.dispose()
    return [tuple(a) for a in audit]


def test_silence_add_list_expire_ack_and_dry_run(cli, db_url: str, tmp_path: Path) -> None:
    alert_id = asyncio.run(_seed(db_url))
    preview = cli(silence, "add", "--rule", "issp-niamey-50km", "--reason", "drill", "--preview")
    assert preview.exit_code == 0 and "would mute 1 alert(s) now" in preview.output
    assert "aaaaaaaaaaaa" in preview.output
    added = cli(silence, "add", "--actor", "JNIM", "--country", "ml", "--reason", "convoy drill", "--for", "3h",
                "--by", "ana")
    assert added.exit_code == 0 and added.output.startswith("silence 1 from ") and "mutes 0 alert(s)" in added.output
    no_reason = cli(silence, "add", "--actor", "JNIM", "--reason", " ")
    assert no_reason.exit_code == 1 and "needs a reason" in no_reason.output
    nothing = cli(silence, "add", "--reason", "all quiet")
    assert nothing.exit_code == 1 and "at least one matcher" in nothing.output
    listed = cli(silence, "list").output
    assert "by ana" in listed and "actors=JNIM countries=ML" in listed and "'convoy drill'" in listed
    assert cli(silence, "expire", "1", "--by", "ben").output == "silence 1 expired\n"
    assert cli(silence, "list").output == "" and "expired by ben" in cli(silence, "list", "--all").output
    again = cli(silence, "expire", "1")
    assert again.exit_code == 1 and "already ended" in again.output

    acked = cli(ack, alert_id[:10], "--note", "desk informed", "--by", "duty officer")
    assert acked.exit_code == 0 and acked.output == "alert aaaaaaaaaaaa acknowledged by duty officer: desk informed\n"
    unknown = cli(ack, "bbbbbbbbbb")
    assert unknown.exit_code == 1 and "no alert bbbbbbbbbb" in unknown.output

    rule_file = tmp_path / "r.yaml"
    rule_file.write_text(FIRST_RULE)
    since = (vbied_niamey_en().published_at - timedelta(days=1)).isoformat()
    dry = cli(rule_dry_run, str(rule_file), "--since", since)
    assert dry.exit_code == 0, dry.output
    assert "rule issp-niamey-50km: 1 alert(s)" in dry.output and "actor ISSP (perpetrator)" in dry.output
    after = (vbied_niamey_en().published_at + timedelta(minutes=1)).isoformat()
    assert "0 alert(s)" in cli(rule_dry_run, str(rule_file), "--since", after).output   # the event is older
    bad = tmp_path / "bad.yaml"
    bad.write_text(FIRST_RULE.replace("radius_km: 50", "radius_km: 0"))
    broken = cli(rule_dry_run, str(bad))
    assert broken.exit_code == 1 and "bad.yaml:9: area.radius_km" in broken.output

    assert asyncio.run(_audit(db_url)) == [("ana", "silence.created"), ("ben", "silence.expired"),
                                         ("duty officer", "alert.acknowledged")]
