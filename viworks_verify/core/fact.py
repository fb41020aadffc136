"""A fact read from a host: its value, or the one-line problem (host first) that kept it from being read.

``Fact[T]`` is the suite's one value-or-problem type: readers return it, snapshots hold it, checks
``require()`` it. ``T`` is a typed value (a dataclass of the host kind's package) or a plain JSON value;
a typed value says how it is saved (``to_json`` / ``from_json``) and, for drift, what it is as canonical
facts (``canonical(path)``), beside its fields: one declaration per fact (``core.host_snapshot``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class Unreadable(Exception):
    """A check needed a fact that could not be read; the plugin makes the first such check fail with
    ``problem`` and every later one skip with it (one root cause, one failure)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class Fact(Generic[T]):
    """A fact read from a host, or why it could not be read."""

    value: T | None = None
    problem: str | None = None

    @classmethod
    def failed(cls, problem: str) -> Fact[T]:
        return cls(None, problem)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def require(self) -> T:
        """The value; ``Unreadable`` with the problem when there is none."""
        if self.problem is not None:
            raise Unreadable(self.problem)
        return self.value  # type: ignore[return-value]

    def then(self, derive: Callable[[T], Fact[U]]) -> Fact[U]:
        """``derive(value)``, a fact in its turn; a problem passes on unchanged."""
        return self if self.problem is not None else derive(self.value)  # type: ignore[arg-type,return-value]

    def to_json(self, encode: Callable[[Any], Any] | None = None) -> dict[str, Any]:
        if self.problem is not None:
            return {"problem": self.problem}
        return {"value": encode(self.value) if encode and self.value is not None else self.value}

    @classmethod
    def from_json(cls, data: Any, decode: Callable[[Any], Any] | None = None) -> Fact[Any]:
        if not isinstance(data, dict) or not ({"value", "problem"} & data.keys()):
            return cls(None, "not recorded in this snapshot")
        if data.get("problem") is not None:
            return cls(None, data["problem"])
        value = data.get("value")
        return cls(decode(value) if decode and value is not None else value)
