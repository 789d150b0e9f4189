"""The rulebook under concurrent handlers: events handled at once right after a (re)start all see the rules.

Found by bench/faults.py: a restarted alert worker evaluated an event against the empty index another handler
was still replacing, and that attack never paged."""

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alert import commands
from services.alert.pipeline import Rulebook
from services.alert.rules import load_rule_text
from shared.db import session_scope

RULE = Path(__file__).resolve().parent.parent.parent / "rules" / "issp-niamey-50km.yaml"


async def test_handlers_starting_together_all_see_the_rules(sessions: async_sessionmaker[AsyncSession]) -> None:
    spec = load_rule_text(RULE.read_text(), RULE.name)
    async with session_scope(sessions) as session:
        await commands.upsert_rule(session, spec, RULE.read_text(), str(RULE), actor="test")
    rulebook = Rulebook(reload_s=60)

    async def one_handler(delay: float) -> list[str]:
        await asyncio.sleep(delay)  # handlers arrive while the first one is still loading
        async with sessions() as session:
            return [rule.id for rule in (await rulebook.current(session)).rules]

    seen = await asyncio.gather(*(one_handler(n / 2000) for n in range(40)))
    assert seen == [["issp-niamey-50km"]] * 40
