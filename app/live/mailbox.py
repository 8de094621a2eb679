"""Hand-over points between pipeline threads.

`Mailbox`: drop-oldest, for live sources; the reader always gets the newest item and the
writer never waits. `Channel`: lossless and bounded, for files; a full channel blocks the
writer. Both are closable: `close()` wakes every blocked reader and writer. Writers then get
`Closed`; readers first receive what is still queued (closing means "no more items"), then
`Closed`. `close(discard=True)` drops the queue too (a stop rather than an end).

Several boxes may share one `threading.Condition` so that one thread can wait on all of them
(`wait_any`): the inference thread serving several sources does this.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The box was closed: no more items will come (or be accepted)."""


class _Box(Generic[T]):
    def __init__(self, capacity: int, condition: threading.Condition | None):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._cond = condition if condition is not None else threading.Condition()
        self._closed = False
        self.put_count = 0  # items accepted
        self.get_count = 0  # items handed to readers
        self.dropped = 0  # items discarded before anyone read them

    @property
    def condition(self) -> threading.Condition:
        """The condition notified on every put, get and close (share it to wait on many boxes)."""
        return self._cond

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self, discard: bool = False) -> None:
        """No more puts. Readers drain what is queued, then get `Closed`; `discard=True` drops
        the queue first (counted in `dropped`). Idempotent."""
        with self._cond:
            self._closed = True
            if discard and self._items:
                self.dropped += len(self._items)
                self._items.clear()
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T | None:
        """The next item, waiting up to `timeout` seconds (None = forever); None when the
        wait timed out. Raises `Closed` once the box is closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise Closed()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._items.popleft()
            self.get_count += 1
            self._cond.notify_all()
            return item

    def get_nowait(self) -> T | None:
        """The next item or None when empty; raises `Closed` once closed and empty."""
        with self._cond:
            if not self._items:
                if self._closed:
                    raise Closed()
                return None
            item = self._items.popleft()
            self.get_count += 1
            self._cond.notify_all()
            return item

    def __iter__(self) -> Iterator[T]:
        """Items until the box is closed and drained."""
        while True:
            try:
                item = self.get()
            except Closed:
                return
            if item is not None:
                yield item


class Mailbox(_Box[T]):
    """Holds the newest `capacity` items; a put into a full mailbox drops the oldest."""

    def __init__(self, capacity: int = 1, condition: threading.Condition | None = None):
        super().__init__(capacity, condition)

    def put(self, item: T) -> int:
        """Store `item`, never waiting; returns how many old items were dropped for it.
        Raises `Closed` when closed."""
        if item is None:
            raise ValueError("None cannot be put in a mailbox (it means 'timed out')")
        with self._cond:
            if self._closed:
                raise Closed()
            dropped = 0
            while len(self._items) >= self.capacity:
                self._items.popleft()
                dropped += 1
            self.dropped += dropped
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return dropped

    def peek(self) -> T | None:
        """The newest item without taking it (None when empty)."""
        with self._cond:
            return self._items[-1] if self._items else None


class Channel(_Box[T]):
    """A lossless FIFO of at most `capacity` items; a put into a full channel waits."""

    def __init__(self, capacity: int = 8, condition: threading.Condition | None = None):
        super().__init__(capacity, condition)

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Append `item`, waiting up to `timeout` seconds for room (None = forever); False
        when the wait timed out. Raises `Closed` when closed (also while waiting)."""
        if item is None:
            raise ValueError("None cannot be put in a channel (it means 'timed out')")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise Closed()
                if len(self._items) < self.capacity:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return True


def wait_any(boxes: Iterable[_Box], condition: threading.Condition, timeout: float | None = None) -> bool:
    """Wait until one of `boxes` (all sharing `condition`) holds an item or is closed.
    Returns False on timeout."""
    boxes = list(boxes)

    def ready() -> bool:
        return any(b._items or b._closed for b in boxes)

    with condition:
        return condition.wait_for(ready, timeout)
