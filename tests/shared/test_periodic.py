"""Background loops end when they are stopped, even when a cancellation is lost on its way.

On Python 3.11 `asyncio.wait_for` returns the result of what it waited for, and drops the cancellation, when the
cancellation arrives just as that completed (CPython gh-86296); redis-py wraps every command in it. A loop
cancelled at that moment ran on, and `stop()`, awaiting it once cancelled, never returned: `watchfloor up`
hung on Ctrl-C.
"""

import asyncio
import logging
import time

import pytest

from shared.periodic import Periodic, cancel_and_wait


class Swallowing(Periodic):
    """Each round waits, and drops the first cancellation that reaches it, as 3.11's wait_for can."""

    name = "swallowing"

    def __init__(self) -> None:
        super().__init__(0.01)
        self.in_round = asyncio.Event()
        self.swallow = True

    async def round(self) -> None:
        self.in_round.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if not self.swallow:
                raise


class WaitsFor(Periodic):
    """Each round awaits `asyncio.wait_for` on a future the test completes just before it stops the loop."""

    name = "waits-for"

    def __init__(self) -> None:
        super().__init__(0.01)
        self.future: asyncio.Future[None] | None = None
        self.in_round = asyncio.Event()

    async def round(self) -> None:
        self.future = asyncio.get_running_loop().create_future()
        self.in_round.set()
        await asyncio.wait_for(self.future, 30)


async def _seconds_to_stop(loop: Periodic, within: float = 5.0) -> float:
    """How long `loop.stop()` took; a stop still waiting after `within` is ended by force (the loop stops losing
    its cancellations) so that a failing test does not hang the suite."""
    task, started = loop._task, time.monotonic()
    stopping = asyncio.create_task(loop.stop())
    await asyncio.wait({stopping}, timeout=within)
    took = time.monotonic() - started
    if not stopping.done() and task is not None:
        if isinstance(loop, Swallowing):
            loop.swallow = False
        while not stopping.done():
            task.cancel()
            await asyncio.wait({stopping}, timeout=0.1)
    await stopping
    return took


async def test_a_loop_that_drops_its_cancellation_still_stops() -> None:
    loop = Swallowing()
    loop.start()
    await asyncio.wait_for(loop.in_round.wait(), 5)
    assert await _seconds_to_stop(loop) < 3
    assert loop._task is None


async def test_a_loop_cancelled_as_its_wait_for_completes_still_stops() -> None:
    """The exact moment: the awaited future is done, wait_for has not woken yet, the stop cancels."""
    loop = WaitsFor()
    loop.start()
    await asyncio.wait_for(loop.in_round.wait(), 5)
    assert loop.future is not None
    loop.future.set_result(None)  # its callbacks (wait_for's wake-up) are scheduled before the stop runs
    assert await _seconds_to_stop(loop) < 3


async def test_cancel_and_wait_ends_every_task_and_logs_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    async def stubborn() -> None:
        for _ in range(3):  # drops two cancellations, ends at the third
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    async def failing() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise RuntimeError("clean-up failed") from None

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(failing(), name="failing"),
             asyncio.create_task(asyncio.sleep(30), name="plain")]
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="shared.periodic"):
        async with asyncio.timeout(10):
            await cancel_and_wait([*tasks, None])
    assert all(t.done() for t in tasks)
    assert "background task failing ended with RuntimeError('clean-up failed')" in caplog.text
    await cancel_and_wait(None)  # nothing to stop
