"""A fact as checks use it: its value, or the one-line problem that kept it from being read, reported once.

Facts are read once per run by session fixtures that never fail themselves: the first check that
``require()``s a missing fact fails with the problem and later ones skip with it, so one root cause
is one failure whichever subset of checks runs. No pytest here: ``require()`` raises ``Unreadable``,
and the plugin turns it into the failure (the first time) or the skip (every later time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Unreadable(Exception):
    """A check needed a fact that could not be read; ``first``: no check has reported it yet."""

    def __init__(self, problem: str, first: bool) -> None:
        super().__init__(problem)
        self.problem = problem
        self.first = first


@dataclasses.dataclass
class Reading(Generic[T]):
    """A fact read from a target, or the one-line problem (host id first) that kept it from being read."""

    value: T | None = None
    problem: str | None = None
    _reported: bool = dataclasses.field(default=False, repr=False)

    def require(self) -> T:
        """The value; ``Unreadable`` when there is none (``first`` only for the first check that asks)."""
        if self.problem is not None:
            first = not self._reported
            self._reported = True
            raise Unreadable(self.problem, first)
        return self.value  # type: ignore[return-value]

    def mark_reported(self) -> None:
        """A check has already reported this problem in its own words: the ones that need the fact skip."""
        self._reported = True

    def then(self, derive: Callable[[T], Reading]) -> Reading:
        """``derive(value)`` as a new Reading; a problem passes on as the same object (reported once)."""
        return self if self.problem is not None else derive(self.value)  # type: ignore[arg-type]
