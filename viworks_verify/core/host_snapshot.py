"""What the gather phase read of one host, declared once per host kind as a dataclass of ``Fact`` fields.

A host kind's snapshot (``gateway.snapshot.GatewaySnapshot``, ...) subclasses ``HostSnapshot`` and
declares each fact as ``name: Fact[ValueType] = fact("what it is")``: the field's type says the value's
shape. From that one declaration come

- ``to_json`` / ``from_json``: a typed value saves itself (``to_json``) and loads itself
  (``from_json``); a plain value (``str``, ``dict``, ``list``, ...) is saved as it is;
- ``canonical()``: the facts drift compares, each value's ``canonical(path)`` under the field's path
  (or its plain value flattened), an unreadable fact as one ``unreadable: ...`` fact;
- redaction: no field holds a secret value (readers keep a keyed hash, ``core.secret_hash``), and a
  snapshot's text is what a check may print.

A field that maps names to facts (the backend's containers) is ``dict[str, Fact[ValueType]]``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Iterator
from typing import Any, ClassVar

from viworks_verify.core.canonical import Observed, flatten
from viworks_verify.core.fact import Fact


def fact(about: str, *, path: str | None = None, volatile: bool = False, compared: bool = True) -> Any:
    """A snapshot field holding one fact. ``about``: what it is, for the reader of the code and of
    ``--help``-like listings; ``path``: its name in canonical facts (default the field's name);
    ``volatile``: changes with every run (clocks, journal lines), ignored by drift unless asked;
    ``compared``: False where another field's canonical form already covers it."""
    metadata = {"about": about, "path": path, "volatile": volatile, "compared": compared}
    return dataclasses.field(default_factory=Fact, metadata=metadata)


def facts(about: str, *, path: str | None = None) -> Any:
    """A snapshot field mapping names to facts (``dict[str, Fact[ValueType]]``)."""
    return dataclasses.field(default_factory=dict, metadata={"about": about, "path": path, "compared": True})


@dataclasses.dataclass
class HostSnapshot:
    """The fields every host kind has; subclasses add their facts."""

    KIND: ClassVar[str] = ""

    host: str  # how checks name it: ssh://gw-lab-01, local://backend-lab, https://agent.example.com
    name: str = ""  # the inventory's name for it (the edge has none: its domain)
    gathered_at: float = 0.0  # the runner's epoch when the reads began
    gather_ms: float = 0.0
    connection: Fact[str] = fact("a problem: unreachable, nothing else could be read", compared=False)

    @property
    def kind(self) -> str:
        return self.KIND

    # ------------------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.KIND}
        for field, shape in _fields(type(self)):
            value = getattr(self, field.name)
            if shape is None:
                out[field.name] = value
            elif shape.mapping:
                out[field.name] = {name: item.to_json(shape.encode) for name, item in value.items()}
            else:
                out[field.name] = value.to_json(shape.encode)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSnapshot:
        values: dict[str, Any] = {}
        for field, shape in _fields(cls):
            raw = data.get(field.name)
            if shape is None:
                if raw is not None:
                    values[field.name] = raw
            elif shape.mapping:
                values[field.name] = {name: Fact.from_json(item, shape.decode) for name, item in (raw or {}).items()}
            else:
                values[field.name] = Fact.from_json(raw, shape.decode)
        return cls(**values)

    # ------------------------------------------------------------------------- canonical

    def canonical(self) -> Iterator[tuple[str, Observed]]:
        """Every canonical fact of this host (paths without the host's name), in declaration order."""
        if not self.connection.ok:
            yield "connection", Observed(f"unreachable: {self.connection.problem}")
            return
        for field, shape in _fields(type(self)):
            if shape is None or not field.metadata.get("compared", True):
                continue
            path = field.metadata.get("path") or field.name
            if shape.mapping:
                for name, item in sorted(getattr(self, field.name).items()):
                    yield from _canonical_fact(f"{path}[{name}]", item, False)
            else:
                yield from _canonical_fact(path, getattr(self, field.name), field.metadata.get("volatile", False))
        yield from self.canonical_across_facts()

    def canonical_across_facts(self) -> Iterator[tuple[str, Observed]]:
        """Canonical facts that need more than one fact to say (a subclass's; none by default)."""
        return iter(())


def _canonical_fact(path: str, item: Fact, volatile: bool) -> Iterator[tuple[str, Observed]]:
    if not item.ok:
        yield path, Observed(f"unreadable: {item.problem}")
        return
    value = item.value
    if hasattr(value, "canonical"):
        yield from value.canonical(path)
    else:
        for name, observed in flatten(path, value):
            yield name, dataclasses.replace(observed, volatile=observed.volatile or volatile)


class Record:
    """A typed fact value that is a flat dataclass of plain fields: saved as its fields, loaded from them
    (a field missing from an older snapshot takes its default), compared as its fields flattened."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: Any):
        names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{name: value for name, value in (data or {}).items() if name in names})

    def canonical(self, path: str) -> Iterator[tuple[str, Observed]]:
        yield from flatten(path, self.to_json())


# ------------------------------------------------------------------- the declaration, read


@dataclasses.dataclass(frozen=True)
class _Shape:
    """How one Fact field's value is saved and loaded: by its type's own methods, or as it is."""

    value_type: Any
    mapping: bool

    def encode(self, value: Any) -> Any:
        return value.to_json() if hasattr(value, "to_json") else value

    def decode(self, data: Any) -> Any:
        loader = getattr(self.value_type, "from_json", None)
        return loader(data) if loader is not None else data


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, _Shape | None], ...]:
    """Each dataclass field of ``cls`` with its shape (None: not a fact, saved as it is)."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        shape = None
        if typing.get_origin(hint) is Fact:
            shape = _Shape(_value_type(hint), mapping=False)
        elif typing.get_origin(hint) is dict and typing.get_origin(typing.get_args(hint)[1]) is Fact:
            shape = _Shape(_value_type(typing.get_args(hint)[1]), mapping=True)
        found.append((field, shape))
    return tuple(found)


def _value_type(fact_hint: Any) -> Any:
    (value_type,) = typing.get_args(fact_hint)
    return typing.get_origin(value_type) or value_type  # list[str] -> list: a plain value
