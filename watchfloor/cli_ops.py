"""`watchfloor dlq`: list and replay dead letters."""

import json

import click
from redis.asyncio import Redis

from shared import deadletter, streams
from watchfloor.context import CliContext, pass_ctx, run
from watchfloor.runtime import redis_url_for_cli


@click.group()
def dlq() -> None:
    """Dead letters: messages a stage could not process, with the reason."""


STAGE = click.argument("stage", type=click.Choice(streams.STAGES))


@dlq.command(name="list")
@STAGE
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def dlq_list(obj: CliContext, stage: str, as_json: bool) -> None:
    """Parked messages of a stage, oldest first."""

    async def body() -> list[deadletter.DeadLetter]:
        redis = Redis.from_url(redis_url_for_cli(obj.settings))
        try:
            return await deadletter.list_parked(redis, stage)
        finally:
            await redis.aclose()

    letters = run(body)
    for d in letters:
        if as_json:
            click.echo(json.dumps({"id": d.entry_id, "stage": d.stage, "reason": d.reason,
                                   "parked_at": d.parked_at, "deliveries": d.deliveries,
                                   "payload": d.payload.decode("utf-8", "replace")}, ensure_ascii=False))
        else:
            click.echo(f"{d.entry_id}  {d.parked_at}  tries={d.deliveries}  {d.reason}")
    if not as_json:
        click.echo(f"{len(letters)} parked in {streams.dlq_stream(stage)}", err=True)


@dlq.command(name="replay")
@STAGE
@click.option("--id", "entry_ids", multiple=True, help="Replay only these dead-letter ids.")
@pass_ctx
def dlq_replay(obj: CliContext, stage: str, entry_ids: tuple[str, ...]) -> None:
    """Put parked messages back on the stage's input stream (after fixing what made them fail)."""

    async def body() -> int:
        redis = Redis.from_url(redis_url_for_cli(obj.settings))
        try:
            return await deadletter.replay(redis, stage, list(entry_ids) or None)
        finally:
            await redis.aclose()

    count = run(body)
    click.echo(f"replayed {count} onto {streams.STREAM_FOR_STAGE[stage]}")


