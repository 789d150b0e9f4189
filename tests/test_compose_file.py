"""docker-compose.yml, read as `docker compose` would (no Docker engine here): every service's command is one the
CLI runs, every stage of the pipeline has a service consuming it, and no webhook is left without a sender."""

from pathlib import Path

import click
import yaml

from watchfloor.cli import COMMANDS, main
from watchfloor.runtime import RUNNABLE_NAMES, consumed_stages, run_names

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def _commands() -> dict[str, list[str]]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    # The services built from this repository (the `x-watchfloor` anchor), not redis or postgres
    return {name: spec["command"] for name, spec in services.items() if spec.get("build") == "."}


def test_every_command_parses_with_the_cli() -> None:
    for name, command in _commands().items():
        assert command[0] in COMMANDS, (name, command)
        if command[0] == "run":
            assert command[1] in RUNNABLE_NAMES, (name, command)
            run = main.get_command(click.Context(main), "run")
            assert run is not None
            with click.Context(run) as ctx:
                run.parse_args(ctx, list(command[1:]))  # raises on an option `run` does not have


def test_every_stage_is_consumed_and_webhooks_have_a_sender() -> None:
    running: set[str] = set()
    for command in _commands().values():
        if command[0] == "run":
            running |= set(run_names(command[1], deliver="--no-deliver" not in command))
    stages = set(consumed_stages(tuple(running)))
    assert {"classify", "alert", "deliver", "source-alerts"} <= stages, stages
    assert {"ingest", "classify", "alert", "deliver", "api"} <= running, running
