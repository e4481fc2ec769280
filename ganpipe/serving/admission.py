"""The bounded queue of a server: at most ``workers`` inference calls run at a time (a thread pool),
at most ``workers + queue`` requests are admitted (the others are refused at once: 503 + Retry-After,
better than a client timing out behind a queue it cannot see). A streamed answer holds its admission
until its last byte is sent, so a slow reader counts against the bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """No room: answer 503 with Retry-After."""


class Admission:
    def __init__(self, workers: int, queue: int, on_change: Callable[[int], None] | None = None):
        self.limit = workers + queue
        self.active = 0  # changed on the event loop's thread only
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self._on_change = on_change

    def enter(self) -> None:
        if self.active >= self.limit:
            raise QueueFull(f"{self.active} requests in progress (workers + queue = {self.limit})")
        self.active += 1
        if self._on_change:
            self._on_change(self.active)

    def leave(self) -> None:
        self.active -= 1
        if self._on_change:
            self._on_change(self.active)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on an inference worker."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
