"""`watchfloor`: one command for every operator task.

    watchfloor up [--port N] [--data-dir DIR]      the whole system in one process (embedded defaults)
    watchfloor run ingest|classify|alert           one service (what each container runs)
    watchfloor migrate                             bring the event log schema to the latest version
    watchfloor source add|list                     feeds to poll
    watchfloor rule add|list|dry-run               alert rules (YAML); what a rule would have fired
    watchfloor subscription add|list               webhook endpoints
    watchfloor alerts [--follow] [--json]          what fired
    watchfloor ack ALERT_ID [--note]               acknowledge: stops re-pages, not updates
    watchfloor silence add|list|expire             mute alerts with a reason (audited)
    watchfloor classify --input F --output F       classify a JSONL file offline
    watchfloor dlq list|replay STAGE               dead letters
    watchfloor token add|list|revoke               API tokens (viewer, officer, admin)
    watchfloor export --format csv|geojson|jsonl   the event log
    watchfloor explain POST_ID                     why each rule did or did not fire for a post
    watchfloor config show                         effective settings, secrets masked

Commands run from a second terminal against the same data dir or database take effect in a
running `up` without a restart: the services read sources, rules and subscriptions from the database.
"""

import asyncio
import json
from pathlib import Path

import click

from shared.db import make_engine, migrate
from watchfloor import cli_access, cli_alerting, cli_eventlog, cli_noise, cli_ops, cli_sources
from watchfloor.context import CliContext, checked, pass_ctx, run
from watchfloor.runtime import SERVICE_NAMES, Serving, serve

DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where embedded SQLite and Redis keep their files (default ./var, or WATCHFLOOR_DATA_DIR).",
)


@click.group()
@DATA_DIR
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """watchfloor: feeds in, classified events, geofenced alerts and signed webhooks out."""
    obj = ctx.ensure_object(CliContext)
    obj.with_data_dir(data_dir)


@main.command()
@click.option("--port", default=8000, show_default=True, help="HTTP port of the API and console.")
@click.option("--host", default="127.0.0.1", show_default=True)
@DATA_DIR
@pass_ctx
def up(obj: CliContext, port: int, host: str, data_dir: Path | None) -> None:
    """Run ingest, classify and alert in one process, with the console on http://HOST:PORT.

    With no WATCHFLOOR_REDIS_URL an embedded Redis runs under the data dir; with no
    WATCHFLOOR_DATABASE_URL the event log is SQLite under the data dir. Ctrl-C stops it cleanly;
    started again, it goes on where it stopped.
    """
    obj.with_data_dir(data_dir)
    try:
        checked(lambda: asyncio.run(serve(Serving(SERVICE_NAMES, host, port, obj.overrides, migrate_first=True))))
    except KeyboardInterrupt:
        pass


@main.command(name="run")
@click.argument("service", type=click.Choice(SERVICE_NAMES))
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True)
@pass_ctx
def run_service(obj: CliContext, service: str, port: int, host: str) -> None:
    """Run one service (its HTTP routes on HOST:PORT). The schema must be migrated already."""
    try:
        checked(lambda: asyncio.run(serve(Serving((service,), host, port, obj.overrides, migrate_first=False))))
    except KeyboardInterrupt:
        pass


@main.command(name="migrate")
@pass_ctx
def migrate_cmd(obj: CliContext) -> None:
    """Bring the event log schema to the latest version (safe to run again)."""

    async def body() -> None:
        engine = make_engine(obj.settings.db_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    run(body)
    click.echo(f"migrated {obj.settings.db_url}")


@main.group()
def config() -> None:
    """Effective configuration."""


@config.command(name="show")
@pass_ctx
def config_show(obj: CliContext) -> None:
    """Print the settings in force, passwords masked."""
    click.echo(json.dumps(obj.settings.redacted(), indent=2, default=str))


main.add_command(cli_sources.source)
main.add_command(cli_alerting.rule)
main.add_command(cli_alerting.subscription)
main.add_command(cli_alerting.alerts)
main.add_command(cli_ops.classify)
main.add_command(cli_ops.dlq)
main.add_command(cli_noise.ack)
main.add_command(cli_noise.silence)
cli_alerting.rule.add_command(cli_noise.rule_dry_run)
main.add_command(cli_access.token)
main.add_command(cli_eventlog.export)
main.add_command(cli_eventlog.explain)
