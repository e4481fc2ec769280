"""The bounded queue of a server: at most ``workers`` inference calls run at a time (a thread pool),
at most ``workers + queue`` requests are admitted, counted from the start of their upload; the others
are refused at once (503 + Retry-After: better than a client timing out behind a queue it cannot
see). A streamed answer holds its admission until its last byte is sent, so a slow reader counts
against the bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """No room: answer 503 with Retry-After."""


class Ticket:
    """One admitted request; :meth:`release` once (a streamed answer releases it at its last byte)."""

    def __init__(self, admission: Admission):
        self._admission: Admission | None = admission
        self.streaming = False  # handed to a streamed answer, which releases it

    def release(self) -> None:
        if self._admission is not None:
            self._admission.leave()
            self._admission = None


class Admission:
    def __init__(self, workers: int, queue: int, on_change: Callable[[int], None] | None = None):
        self.limit = workers + queue
        self.active = 0  # changed on the event loop's thread only
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self._on_change = on_change

    def enter(self) -> Ticket:
        """Admit a request (before its body is read: a slow upload holds its place) or raise :class:`QueueFull`."""
        if self.active >= self.limit:
            raise QueueFull(f"{self.active} requests in progress (workers + queue = {self.limit})")
        self.active += 1
        if self._on_change:
            self._on_change(self.active)
        return Ticket(self)

    def leave(self) -> None:
        self.active -= 1
        if self._on_change:
            self._on_change(self.active)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on an inference worker."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
