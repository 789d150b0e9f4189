"""`watchfloor`: one command for every operator task.

    watchfloor up [--port N] [--data-dir DIR]      the whole system in one process (embedded defaults)
    watchfloor run ingest|classify|alert           one service (what each container runs)
    watchfloor migrate                             bring the event log schema to the latest version
    watchfloor source add|list|edit|disable|enable|remove|alerts   feeds to poll; silent or failing ones
    watchfloor rule add|list|dry-run               alert rules (YAML); what a rule would have fired
    watchfloor subscription add|list|edit|disable|enable|remove|rotate-secret
                                                   webhook endpoints; enable offers what fired meanwhile
    watchfloor delivery list|replay [--failed]     webhook deliveries; replay with the original webhook-id
    watchfloor alerts [--follow] [--json]          what fired
    watchfloor ack ALERT_ID [--note]               acknowledge: stops re-pages, not updates
    watchfloor silence add|list|expire             mute alerts with a reason (audited)
    watchfloor classify --input F --output F       classify a JSONL file offline
    watchfloor dlq list|replay STAGE               dead letters
    watchfloor place add|list [--unresolved]       the watch floor's own gazetteer; what to add next
    watchfloor token add|list|revoke               API tokens (viewer, officer, admin)
    watchfloor export --format csv|geojson|jsonl   the event log
    watchfloor explain POST_ID                     why each rule did or did not fire for a post
    watchfloor config show                         effective settings, secrets masked
    watchfloor asyncapi [--yaml]                   the streams' AsyncAPI document (also /asyncapi.json)

Commands run from a second terminal against the same data dir or database take effect in a
running `up` without a restart: the services read sources, rules and subscriptions from the database.

Each command's module is imported only when that command runs (click's lazy-loading pattern), so
`watchfloor --help` does not pay for FastAPI, SQLAlchemy and the classifier.
"""

import importlib
from pathlib import Path
from typing import NamedTuple

import click

from watchfloor.context import CliContext


class _Lazy(NamedTuple):
    module: str
    attr: str
    summary: str


# name -> where the command lives and the line `watchfloor --help` shows for it (kept here so listing
# the commands imports none of them; tests/test_cli.py checks each line against the command's own help)
COMMANDS: dict[str, _Lazy] = {
    "up": _Lazy("watchfloor.cli_serve", "up", "Run the whole pipeline in one process, with the console."),
    "run": _Lazy("watchfloor.cli_serve", "run_service", "Run one service (its HTTP routes on HOST:PORT)."),
    "migrate": _Lazy("watchfloor.cli_serve", "migrate_cmd", "Bring the event log schema to the latest version."),
    "config": _Lazy("watchfloor.cli_serve", "config", "Effective configuration."),
    "asyncapi": _Lazy("watchfloor.cli_serve", "asyncapi",
                      "Print the AsyncAPI document of the Redis streams (what `up` serves at /asyncapi.json)."),
    "source": _Lazy("watchfloor.cli_sources", "source", "Feeds to poll."),
    "rule": _Lazy("watchfloor.cli_alerting", "rule", "Alert rules (YAML)."),
    "subscription": _Lazy("watchfloor.cli_alerting", "subscription", "Webhook endpoints (Standard Webhooks)."),
    "delivery": _Lazy("watchfloor.cli_deliveries", "delivery",
                      "Webhook deliveries: what is owed, what failed; replay with the original webhook-id."),
    "alerts": _Lazy("watchfloor.cli_alerting", "alerts", "The latest alerts; with --follow, new ones as they happen."),
    "ack": _Lazy("watchfloor.cli_noise", "ack", "Acknowledge an alert: stops re-pages, not updates."),
    "silence": _Lazy("watchfloor.cli_noise", "silence", "Silences: mute matching alerts for a while (audited)."),
    "classify": _Lazy("watchfloor.cli_classify", "classify", "Classify posts from a JSONL file (offline)."),
    "dlq": _Lazy("watchfloor.cli_ops", "dlq", "Dead letters: messages a stage could not process."),
    "place": _Lazy("watchfloor.cli_places", "place", "Places officers add to the gazetteer."),
    "token": _Lazy("watchfloor.cli_access", "token", "API tokens: who may read, acknowledge, change rules."),
    "export": _Lazy("watchfloor.cli_eventlog", "export", "Export the event log as CSV, GeoJSON or JSON lines."),
    "explain": _Lazy("watchfloor.cli_eventlog", "explain", "Why each enabled rule did or did not fire for a post."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        command = getattr(importlib.import_module(spec.module), spec.attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec.summary) for name, spec in COMMANDS.items()])


@click.group(cls=LazyGroup)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where embedded SQLite and Redis keep their files (default ./var, or WATCHFLOOR_DATA_DIR).",
)
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """watchfloor: feeds in, classified events, geofenced alerts and signed webhooks out."""
    obj = ctx.ensure_object(CliContext)
    obj.with_data_dir(data_dir)
