"""A fact read from a host: its value, or the one-line problem (host first) that kept it from being read.

A host snapshot is a dataclass of ``Fact`` fields (and ``FACT_MAPS``: fields that map a name to a Fact);
``facts_to_json`` and ``facts_from_json`` derive its JSON from that declaration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem} if self.problem is not None else {"value": self.value}

    @classmethod
    def from_json(cls, data: Any) -> Fact[Any]:
        if not isinstance(data, dict) or not ({"value", "problem"} & data.keys()):
            return cls(None, "not recorded in this snapshot")
        return cls(data.get("value"), data.get("problem"))


def facts_to_json(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, Fact):
            out[field.name] = value.to_json()
        elif field.name in getattr(obj, "FACT_MAPS", ()):
            out[field.name] = {key: fact.to_json() for key, fact in value.items()}
        else:
            out[field.name] = value
    return out


def facts_from_json(cls, data: dict[str, Any]):
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        raw = data.get(field.name)
        if field.type == "Fact":
            values[field.name] = Fact.from_json(raw)
        elif field.name in getattr(cls, "FACT_MAPS", ()):
            values[field.name] = {key: Fact.from_json(item) for key, item in (raw or {}).items()}
        elif raw is not None:
            values[field.name] = raw
    return cls(**values)
