"""A round of work every few seconds in the background, for as long as the process runs.

The consumer-group watch, the stream trimmer and the Redis-epoch watch are such loops. Here is the loop once:
a round that raises is reported to `failed` and the next round runs anyway (a dependency that is away comes
back), and `stop()` ends it at once.

And `cancel_and_wait`, how every background task of the services is ended: cancelled until it has ended, not
once. On Python 3.11 `asyncio.wait_for` loses a cancellation that arrives just as the operation it waits for
completes (CPython gh-86296, fixed in 3.12), and redis-py wraps every command in it (its default socket timeout
is 5 s): a loop cancelled during a Redis command then runs on as if nothing happened, and a stop that awaits it
once cancelled waits for ever. That is what held `watchfloor up` after Ctrl-C, past the tests' 20 s.
"""

import asyncio
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)

RECANCEL_SECONDS = 1.0
"""How long `cancel_and_wait` gives a cancelled task to end before it cancels it again: time for its clean-up
(a rollback, a connection returned), and the longest a swallowed cancellation delays a stop."""


async def cancel_and_wait(tasks: "asyncio.Task[object] | Iterable[asyncio.Task[object] | None] | None") -> None:
    """Cancels the task(s) and returns once every one has ended, cancelling again every RECANCEL_SECONDS those
    that have not: a cancellation swallowed on its way (see above) is sent again, and the wait ends. What a task
    ended with other than its cancellation is logged, not raised: the caller is stopping it."""
    if tasks is None:
        return
    pending = {t for t in ([tasks] if isinstance(tasks, asyncio.Task) else tasks) if t is not None}
    ended = set(pending)
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        for task in pending:
            logger.debug("background task %s still runs %.1f s after it was cancelled: cancelling it again",
                         task.get_name(), RECANCEL_SECONDS)
    for task in ended:
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("background task %s ended with %r while stopping", task.get_name(), exc)


class Periodic:
    """Subclasses give `round()` and, if they like, `failed(exc)`, `succeeded()` and `should_run()`."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def round(self) -> None:
        raise NotImplementedError

    def failed(self, exc: Exception) -> None:
        """A round raised; the loop goes on."""

    def succeeded(self) -> None:
        """A round ended well."""

    def should_run(self) -> bool:
        return True

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping = True  # a round that loses the cancellation still ends the loop
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval)
            if self._stopping or not self.should_run():
                return
            try:
                await self.round()
            except Exception as exc:
                self.failed(exc)
            else:
                self.succeeded()
