"""The alert stage alone, on PostgreSQL or SQLite: CPU and SQL statements per event, to find where its time goes
without the rest of the pipeline (bench/throughput.py measures the whole).

Classifies N distinct posts of bench/tput_posts.py (each its own attack, half of them paging), then hands
their events to AlertPipeline.on_events in batches, as the alert worker does, on a fresh database with the
bench rule. The outbox is an in-memory list: Redis is measured by bench/throughput.py. Prints wall and CPU
per event and SQL statements per event; --profile prints cProfile's top functions. Then the deliver stage
(Dispatcher.on_alerts) owes what the stage published to one subscription, in batches: wall and CPU per version.

usage: .venv/bin/python bench/alert_stage.py [--posts 2000] [--batch 100] [--db postgresql|sqlite] [--profile]
"""

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import tput_posts  # noqa: E402
from topology import sql  # noqa: E402

from services.alert import commands  # noqa: E402
from services.alert.dispatch import Dispatcher  # noqa: E402
from services.alert.pipeline import AlertPipeline, Rulebook, cluster_policy  # noqa: E402
from services.alert.rules import load_rule_text  # noqa: E402
from services.alert.settings import AlertSettings  # noqa: E402
from services.alert.severity import default_policy  # noqa: E402
from services.classify.events import classify_events  # noqa: E402
from shared import ids  # noqa: E402
from shared.db import make_engine, make_sessionmaker, migrate  # noqa: E402
from shared.messages import AlertMessage, EventMessage, PostMessage  # noqa: E402


class ListOutbox:
    """What the stage publishes, kept in memory."""

    def __init__(self) -> None:
        self.sent: list[AlertMessage] = []
        self.versions: dict[str, int] = {}

    async def publish(self, messages: list[AlertMessage], headers: list[dict[str, str]] | None = None) -> None:
        self.sent += messages
        self.versions.update({m.alert_id: m.version for m in messages})

    async def published_versions(self, alert_ids: list[str]) -> dict[str, int]:
        return {a: self.versions.get(a, 0) for a in alert_ids}


def events(n: int, now: datetime) -> list[EventMessage]:
    out = []
    for i in range(n):
        body = tput_posts.post("stage", i, tput_posts.start_for(n, now))
        post = PostMessage(post_id=ids.post_id(body["source"], body["guid"]), source_id=body["source"],
                           url=body["url"], guid=body["guid"], title=body["title"], text=body["text"],
                           lang=body["lang"], published_at=datetime.fromisoformat(body["published_at"]),
                           fetched_at=now)
        out += classify_events(post, now=now)
    return out


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    evs = events(args.posts, now)
    print(f"{len(evs)} events from {args.posts} posts ({sum(e.is_event for e in evs)} events)")
    database = f"watchfloor_stage_{os.getpid()}"
    if args.db == "postgresql":
        await sql("postgres", f"CREATE DATABASE {database}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/stage.db"
    engine = make_engine(url)
    statements = 0
    kinds: Counter[str] = Counter()

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        nonlocal statements
        statements += 1
        kinds[" ".join(statement.split()[:4])[:60]] += 1

    try:
        await migrate(engine)
        sessions = make_sessionmaker(engine)
        async with sessions.begin() as session:
            await commands.upsert_rule(session, load_rule_text(tput_posts.RULE), tput_posts.RULE, None, "bench")
        outbox = ListOutbox()
        pipeline = AlertPipeline(sessions, outbox, cluster_policy(25, 6 * 3600), Rulebook(5.0),
                                 severity=default_policy(), max_event_age=timedelta(days=30 * 365))
        await pipeline.on_events(evs[:10])  # warm: rules loaded, statements compiled
        statements, outbox.sent = 0, []
        kinds.clear()
        rest = evs[10:]
        profile = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        for start in range(0, len(rest), args.batch):
            await pipeline.on_events(rest[start:start + args.batch])
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = len(rest)
        print(f"{args.db}: {n} events in batches of {args.batch}: {n / wall:.0f} events/s, "
              f"wall {wall / n * 1000:.2f} ms/event, CPU {cpu / n * 1000:.2f} ms/event (this process; the "
              f"database's own is not counted), {statements / n:.1f} SQL statements/event, "
              f"{len(outbox.sent)} alert versions")
        print("statements by kind:", ", ".join(f"{k!r} {n}" for k, n in kinds.most_common(12)))
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            pstats.Stats(profile).sort_stats("cumulative").print_stats("services|shared", 30)
        await deliver_stage(sessions, outbox.sent, args.batch)
    finally:
        await engine.dispose()
        if args.db == "postgresql":
            await sql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


async def deliver_stage(sessions: async_sessionmaker[AsyncSession], sent: list[AlertMessage], batch: int) -> None:
    """The deliver stage on what the alert stage sent: a notification per version for one subscription."""
    async with sessions.begin() as session:
        await commands.add_subscription(session, "http://127.0.0.1:9/bench", name="bench")
    dispatcher = Dispatcher(AlertSettings(), sessions)
    wall, cpu = time.perf_counter(), time.process_time()
    created = 0
    for start in range(0, len(sent), batch):
        created += await dispatcher.on_alerts(sent[start:start + batch])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = max(1, len(sent))
    print(f"deliver stage: {len(sent)} alert versions in batches of {batch}: {created} notifications, wall "
          f"{wall / n * 1000:.2f} ms/version, CPU {cpu / n * 1000:.2f} ms/version")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--profile", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
