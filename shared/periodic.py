"""A round of work every few seconds in the background, for as long as the process runs.

The consumer-group watch, the stream trimmer and the Redis-epoch watch are such loops. Here is the loop once:
a round that raises is reported to `failed` and the next round runs anyway (a dependency that is away comes
back), and `stop()` ends it at once.
"""

import asyncio
import contextlib


class Periodic:
    """Subclasses give `round()` and, if they like, `failed(exc)`, `succeeded()` and `should_run()`."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def round(self) -> None:
        raise NotImplementedError

    def failed(self, exc: Exception) -> None:
        """A round raised; the loop goes on."""

    def succeeded(self) -> None:
        """A round ended well."""

    def should_run(self) -> bool:
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.should_run():
                return
            try:
                await self.round()
            except Exception as exc:
                self.failed(exc)
            else:
                self.succeeded()
