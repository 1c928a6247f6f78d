"""One thread that runs the detector: concurrent requests queue for it instead of competing for cores and memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """More requests are waiting for the detector than the queue takes."""


class InferenceWorker:
    """Runs jobs (decode + detect of one upload) one at a time on a single thread, off the event loop.

    At most one image is decoded and in the detector at any moment, so memory stays that of one request
    whatever the number of clients; a job submitted while ``max_pending`` others are running or waiting
    raises :class:`Busy` at once instead of queueing without bound.
    """

    def __init__(self, max_pending: int = 64) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_pending = max_pending
        self.pending = 0
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, job: Callable[..., T], *args: object) -> T:
        """``job(*args)`` on the detector thread, awaited without blocking the event loop."""
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} requests are already waiting for the detector")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="multibox-detector")
        self.pending += 1  # only touched from the event loop thread, so no lock is needed
        try:
            return await asyncio.wrap_future(self._executor.submit(job, *args))
        finally:
            self.pending -= 1

    def close(self) -> None:
        """Stop the thread once the running job ends; waiting jobs are dropped (a later job starts a new one)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
