"""The operator's CLI: clear errors for bad input, effects visible to the next command."""

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from redis.asyncio import Redis

from shared import deadletter, streams
from shared.db import make_engine
from shared.models import Source
from watchfloor.cli import main

RULE = Path(__file__).resolve().parent.parent / "rules" / "issp-niamey-50km.yaml"


@pytest.fixture
def wf(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("WATCHFLOOR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("WATCHFLOOR_REDIS_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_a_rule_with_a_bad_field_names_file_line_and_field(wf, tmp_path: Path) -> None:
    bad = tmp_path / "bad-rule.yaml"
    bad.write_text(RULE.read_text().replace("radius_km: 50", "radius_km: -5"))
    result = wf("rule", "add", str(bad))
    assert result.exit_code == 1
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "radius_km" in text)
    assert f"bad-rule.yaml:{line}" in result.output
    assert "radius_km" in result.output
    assert wf("rule", "list").output.strip() == ""


async def _set_next_poll(db_url: str, source_id: str, when: datetime) -> None:
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(sa.update(Source).where(Source.id == source_id).values(next_poll_at=when))
    await engine.dispose()


def test_rules_sources_and_subscriptions_added_are_listed(wf, db_url: str) -> None:
    assert wf("rule", "add", str(RULE)).exit_code == 0
    assert "issp-niamey-50km" in wf("rule", "list").output

    added = wf("subscription", "add", "http://127.0.0.1:9/hook")
    assert added.exit_code == 0
    secret = next(line.split()[1] for line in added.output.splitlines() if line.startswith("secret:"))
    assert secret.startswith("whsec_")
    listed = wf("subscription", "list").output
    assert "http://127.0.0.1:9/hook" in listed and secret not in listed

    assert wf("source", "add", "http://127.0.0.1:9/feed.xml", "--name", "wire").exit_code == 0
    again = wf("source", "add", "http://127.0.0.1:9/feed.xml", "--name", "wire-2")
    assert again.exit_code == 1 and "already" in again.output
    rows = [json.loads(line) for line in wf("source", "list", "--json").output.splitlines()]
    assert [r["id"] for r in rows] == ["wire"]
    # A source in a long backoff, as after a run of failures; `source poll` makes it due now.
    asyncio.run(_set_next_poll(db_url, "wire", datetime.now(UTC) + timedelta(hours=6)))
    assert wf("source", "poll", "wire").exit_code == 0
    [row] = [json.loads(line) for line in wf("source", "list", "--json").output.splitlines()]
    asked = datetime.fromisoformat(row["next_poll_at"])
    assert abs((datetime.now(UTC) - asked).total_seconds()) < 60   # due now, whatever its backoff was
    unknown = wf("source", "poll", "nope")
    assert unknown.exit_code == 1 and "no feed source 'nope'" in unknown.output


def test_dlq_without_any_redis_says_what_is_missing(wf) -> None:
    result = wf("dlq", "list", "classify")
    assert result.exit_code == 1
    assert "no Redis to talk to" in result.output


def test_config_show_masks_passwords(wf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHFLOOR_DATABASE_URL", "postgresql://ops:s3cret@db.internal:5432/watchfloor")
    shown = json.loads(wf("config", "show").output)
    assert "s3cret" not in json.dumps(shown)
    assert shown["database_url"] == "postgresql+asyncpg://ops:***@db.internal:5432/watchfloor"


def test_config_show_has_each_services_own_settings(wf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHFLOOR_SMTP_HOST", "mail.example.org")
    monkeypatch.setenv("WATCHFLOOR_SMTP_PASSWORD", "hunter2")
    refused = json.loads(wf("config", "show").output)["alert service"]     # no From: the service would not start
    assert "WATCHFLOOR_SMTP_FROM is required" in refused["invalid"][0]
    monkeypatch.setenv("WATCHFLOOR_SMTP_FROM", "Watchfloor <alerts@example.org>")
    shown = json.loads(wf("config", "show").output)
    assert "hunter2" not in json.dumps(shown)
    alert = shown["alert service"]
    assert (alert["smtp_host"], alert["smtp_password"], alert["dispatch_concurrency"]) == (
        "mail.example.org", "***", 100)
    assert "classify_max_chars" in shown["classify service"] and "max_request_bytes" not in shown["alert service"]


def test_subscription_filters_from_the_cli(wf) -> None:
    bad = wf("subscription", "add", "http://127.0.0.1:9/night", "--quiet-hours", "22h-6h")
    assert bad.exit_code == 2 and "expected HH:MM-HH:MM" in bad.output
    ok = wf("subscription", "add", "http://127.0.0.1:9/night", "--min-severity", "III",
            "--quiet-hours", "22:00-06:00@Africa/Niamey")
    assert ok.exit_code == 0, ok.output
    assert "http://127.0.0.1:9/night" in wf("subscription", "list").output


def test_dlq_list_and_replay_from_the_cli(wf, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHFLOOR_REDIS_URL", redis_url)

    async def park() -> None:
        client = Redis.from_url(redis_url)
        await deadletter.park(client, streams.CLASSIFY, b'{"post_id": "short"}', "invalid PostMessage: post_id")
        await client.aclose()

    asyncio.run(park())
    [letter] = [json.loads(line) for line in wf("dlq", "list", "classify", "--json").output.splitlines()]
    assert letter["reason"] == "invalid PostMessage: post_id"
    assert letter["payload"] == '{"post_id": "short"}'

    assert wf("dlq", "replay", "classify").output.strip() == f"replayed 1 onto {streams.POSTS}"
    assert wf("dlq", "list", "classify", "--json").output == ""

    async def on_posts() -> list[bytes]:
        client = Redis.from_url(redis_url)
        entries = await client.xrange(streams.POSTS)
        await client.aclose()
        return [fields[b"__data__"] for _, fields in entries]

    assert asyncio.run(on_posts()) == [b'{"post_id": "short"}']


def test_every_listed_command_loads_and_says_what_the_listing_says() -> None:
    """The root lists commands without importing them; each name must load, and its summary must match."""
    import click

    from watchfloor.cli import COMMANDS, LazyGroup

    ctx = click.Context(main)
    assert isinstance(main, LazyGroup)
    for name, spec in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None, name
        own = (command.help or "").split("\n")[0].strip().rstrip(".").lower()
        assert own[:12] == spec.summary.rstrip(".").lower()[:12], (name, own, spec.summary)


def test_watchfloor_help_loads_no_service_stack() -> None:
    """`watchfloor --help` answers without importing the database, web or classifier stacks."""
    program = (
        "import sys; from watchfloor.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "stacks = ('sqlalchemy', 'fastapi', 'faststream', 'services.classify.classify')\n"
        "print('HEAVY', [m for m in stacks if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "classify" in out and "subscription" in out


def test_an_officer_adds_a_place_and_a_bad_one_is_refused_naming_the_field(wf) -> None:
    missing = wf("place", "add", "Kandagou", "--lat", "14.62", "--lon", "1.21", "--country", "NE", "--source", " ")
    assert missing.exit_code == 1 and "source:" in missing.output
    far = wf("place", "add", "Kandagou", "--lat", "114.62", "--lon", "1.21", "--country", "NE", "--source", "map")
    assert far.exit_code == 1 and "lat:" in far.output
    added = wf("place", "add", "Kandagou", "--lat", "14.62", "--lon", "1.21", "--country", "ne", "--admin1",
               "Tillabéri", "--alias", "Kandagu", "--source", "officer's 1:200k map sheet", "--by", "ada")
    assert added.exit_code == 0 and "Kandagou (NE)" in added.output
    again = wf("place", "add", "kandagou", "--lat", "14.6", "--lon", "1.2", "--country", "NE", "--source", "map")
    assert again.exit_code == 1 and "already place" in again.output
    [row] = [json.loads(line) for line in wf("place", "list", "--json").output.splitlines()]
    assert (row["name"], row["country"], row["aliases"], row["created_by"]) == ("Kandagou", "NE", ["Kandagu"], "ada")
    assert "no unresolved places" in wf("place", "list", "--unresolved").output


def test_subscription_event_types_from_the_cli(wf, db_url: str) -> None:
    typo = wf("subscription", "add", "http://127.0.0.1:9/a", "--events", "alerts.*")
    assert typo.exit_code == 2 and "'alerts.*' matches no event type" in typo.output
    ok = wf("subscription", "add", "http://127.0.0.1:9/a", "--events", "alert.*, source.failing")
    assert ok.exit_code == 0, ok.output
    assert "events alert.*,source.failing" in wf("subscription", "list").output
    sub_id = ok.output.split()[1]
    edited = wf("subscription", "edit", sub_id, "--events", "source.*")
    assert edited.exit_code == 0 and "changed events" in edited.output
    assert "events source.*" in wf("subscription", "list").output
    assert wf("subscription", "edit", sub_id, "--events", "all").exit_code == 0
    assert "events" not in wf("subscription", "list").output


async def _silence(db_url: str, source_id: str) -> None:
    """What ingest's watch and the alert service write for a source gone quiet."""
    from shared.models import SourceAlert

    engine = make_engine(db_url)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(sa.update(Source).where(Source.id == source_id).values(
            watch_state="silent", watch_since=now, watch_reason="quiet for 9 h; usually posts every 40 min"))
        await conn.execute(sa.insert(SourceAlert).values(
            id="a" * 64, source_id=source_id, source_name=source_id, source_kind="feed", source_url=None,
            kind="silent", state="raised", reason="quiet for 9 h; usually posts every 40 min", raised_at=now))
    await engine.dispose()


def test_source_list_shows_a_silent_source_and_source_alerts_lists_it(wf, db_url: str) -> None:
    assert wf("source", "add", "http://127.0.0.1:9/rss", "--name", "veille", "--as-is").exit_code == 0
    assert wf("source", "alerts").output.strip() == "no source is silent or failing"
    asyncio.run(_silence(db_url, "veille"))
    listed = wf("source", "list").output
    assert "SILENT since" in listed and "quiet for 9 h; usually posts every 40 min" in listed
    [row] = [json.loads(line) for line in wf("source", "list", "--json").output.splitlines()]
    assert row["watch_state"] == "silent" and row["last_post_at"] is None and row["posts_learned"] == 0
    alerts = wf("source", "alerts").output
    assert "RAISED" in alerts and "veille" in alerts and "quiet for 9 h" in alerts
