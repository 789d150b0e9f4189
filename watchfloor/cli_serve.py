"""`watchfloor up`, `run`, `migrate` and `config show`: start the services, shape the schema, show settings."""

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from shared.db import make_engine, migrate
from watchfloor.context import CliContext, checked, pass_ctx, run
from watchfloor.runtime import RUNNABLE_NAMES, SERVICE_NAMES, Serving, run_names, serve

DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where embedded SQLite and Redis keep their files (default ./var, or WATCHFLOOR_DATA_DIR).",
)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Runs a service process on uvloop where it is installed (Linux, macOS): the services spend much of
    their own time writing to sockets (Redis, PostgreSQL, webhooks), which uvloop does in C."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


@click.command()
@click.option("--port", default=8000, show_default=True, help="HTTP port of the API and console.")
@click.option("--host", default="127.0.0.1", show_default=True)
@DATA_DIR
@pass_ctx
def up(obj: CliContext, port: int, host: str, data_dir: Path | None) -> None:
    """Run the whole pipeline (ingest, classify, alert, deliver) in one process, with the console on
    http://HOST:PORT.

    With no WATCHFLOOR_REDIS_URL an embedded Redis runs under the data dir; with no
    WATCHFLOOR_DATABASE_URL the event log is SQLite under the data dir. Ctrl-C stops it cleanly;
    started again, it goes on where it stopped.
    """
    obj.with_data_dir(data_dir)
    try:
        checked(lambda: _run_loop(serve(Serving(SERVICE_NAMES, host, port, obj.overrides, migrate_first=True,
                                                    announce=True))))
    except KeyboardInterrupt:
        pass


@click.command(name="run")
@click.argument("service", type=click.Choice(RUNNABLE_NAMES))
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--no-deliver", is_flag=True,
              help="alert only: leave wf:alerts and the webhook sender to `run deliver` processes.")
@pass_ctx
def run_service(obj: CliContext, service: str, port: int, host: str, no_deliver: bool) -> None:
    """Run one service (its HTTP routes and /health on HOST:PORT). The schema must be migrated already.

    `alert` is one alert worker, sending webhooks and emails too: run as many as you like. Under load,
    `alert --no-deliver` and `deliver` (the deliver stage and the sender alone) give each its own process.
    `api` is the console and API alone, without the alert pipeline: run it once, where the port is published."""
    if no_deliver and service != "alert":
        raise click.UsageError("--no-deliver goes with `run alert` only")
    names = run_names(service, deliver=not no_deliver)
    try:
        checked(lambda: _run_loop(serve(Serving(names, host, port, obj.overrides, migrate_first=False))))
    except KeyboardInterrupt:
        pass


@click.command(name="migrate")
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


@click.group()
def config() -> None:
    """Effective configuration."""


@config.command(name="show")
@pass_ctx
def config_show(obj: CliContext) -> None:
    """Print the settings in force, passwords masked: the common ones, then each service's own."""
    from services.alert.settings import AlertSettings
    from services.classify.settings import ClassifySettings
    from services.ingest.settings import IngestSettings

    shown = obj.settings.redacted()
    for name, kind in (("ingest", IngestSettings), ("classify", ClassifySettings), ("alert", AlertSettings)):
        try:
            own = obj.settings_of(kind).redacted()
        except ValidationError as exc:  # the service would refuse to start: say why, as it would
            shown[f"{name} service"] = {"invalid": [e["msg"] for e in exc.errors()]}
            continue
        shown[f"{name} service"] = {k: v for k, v in own.items() if k not in shown}
    click.echo(json.dumps(shown, indent=2, default=str))


@click.command(name="asyncapi")
@click.option("--yaml", "as_yaml", is_flag=True, help="YAML instead of JSON.")
@pass_ctx
def asyncapi(obj: CliContext, as_yaml: bool) -> None:
    """Print the AsyncAPI document of the Redis streams (what `up` serves at /asyncapi.json).

    Built from the services' own subscribers and publishers, without connecting to anything: each stream,
    who reads and writes it, and the JSON schema of its messages."""
    from watchfloor import apidocs
    from watchfloor.runtime import streams_document

    document = streams_document(obj.overrides)
    click.echo(apidocs.asyncapi_yaml(document) if as_yaml else json.dumps(document, indent=2, ensure_ascii=False))
