"""Readiness as a condition polled against a deadline, never a fixed sleep.

``poll_until`` calls ``probe`` until ``ready(value)`` holds or the deadline passes; on timeout
the exception carries the last observed state so a failure message can say what was seen.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_PROGRAMMING_ERRORS = (TypeError, NameError, AttributeError, ImportError)


class NotReady(Exception):
    """The condition did not hold before the deadline; ``last`` is the last observation."""

    def __init__(self, what: str, timeout_s: float, last: object, proof: str | None = None) -> None:
        super().__init__(
            f"{what} not ready after {timeout_s:.0f} s; last seen: {last}"
            + (f"; not waited for: {proof}" if proof else "")
        )
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        self.proof = proof  # a fact that proved waiting useless (the wait ended early), when there was one


@dataclasses.dataclass(frozen=True)
class Ready(Generic[T]):
    value: T
    elapsed_s: float  # how long it took to become ready: a figure worth recording
    attempts: int


def poll_until(
    probe: Callable[[], T],
    ready: Callable[[T], bool],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.25,
    max_interval_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], None] = time.sleep,
) -> Ready[T]:
    """Poll ``probe`` with a growing interval until ``ready`` holds; raise NotReady at the deadline.

    An exception from ``probe`` (a refused connection, a timeout) counts as "not yet" and becomes
    the last observation; programming errors propagate at once.
    """
    start = clock()
    deadline = start + timeout_s
    attempts = 0
    last: object = "no observation"
    while True:
        attempts += 1
        try:
            value = probe()
        except _PROGRAMMING_ERRORS:
            raise  # a bug in the probe is not "not ready yet": waiting would only hide it
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if ready(value):
                return Ready(value, clock() - start, attempts)
            last = value
        remaining = deadline - clock()
        if remaining <= 0:
            raise NotReady(what, timeout_s, last)
        wait(min(interval_s, remaining))
        interval_s = min(interval_s * 1.5, max_interval_s)
