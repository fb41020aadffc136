"""The gateway's scripts root as a closed set: exactly the declared scripts, nothing else the agent could run.

The agent runs what lies in ``VIW_AGENT_SCRIPTS_ROOT`` as root, so any other file, link or directory
there is a finding, and so is a declared script that is missing. Sans-I/O: ``LISTING_FORMAT`` is what
the gateway reader's script asks ``find -printf`` for; ``parse_listing`` reads what it printed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

SEPARATOR = "|"
# type, mode, uid, user, size, then the name last (a name may hold the separator).
LISTING_FORMAT = SEPARATOR.join(("%y", "%m", "%U", "%u", "%s", "%P")) + r"\n"
KINDS = {
    "f": "regular file",
    "d": "directory",
    "l": "symbolic link",
    "p": "named pipe",
    "s": "socket",
    "b": "block device",
    "c": "character device",
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One entry of the scripts root, as ``find`` saw it (a link is not followed: it is what lies there)."""

    name: str
    kind: str  # "regular file", "directory", "symbolic link", ...
    mode: int
    uid: int
    user: str
    size: int

    @property
    def octal(self) -> str:
        return format(self.mode, "04o")

    def describe(self) -> str:
        writable = " world-writable" if self.mode & 0o002 else ""
        runnable = " executable" if self.kind == "regular file" and self.mode & 0o111 else ""
        return f"{self.name} ({self.kind}, mode {self.octal}{writable}{runnable}, owner {self.user})"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(data["name"], data["kind"], int(data["mode"]), int(data["uid"]), data["user"], int(data["size"]))


@dataclasses.dataclass(frozen=True)
class ScriptsRoot:
    """The scripts root as the reader found it, as a snapshot's fact."""

    path: str
    state: str  # "directory", "missing", "unset", or what else lies there
    entries: tuple[Entry, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "state": self.state, "entries": [entry.to_json() for entry in self.entries]}

    @classmethod
    def from_json(cls, data: Any) -> ScriptsRoot:
        entries = tuple(Entry.from_json(item) for item in data.get("entries", []))
        return cls(str(data.get("path") or ""), str(data.get("state") or ""), entries)


def parse_listing(text: str) -> list[Entry]:
    entries = []
    for line in text.splitlines():
        fields = line.split(SEPARATOR, 5)
        if len(fields) != 6 or not fields[2].isdigit() or not fields[4].isdigit():
            continue
        kind, mode, uid, user, size, name = fields
        try:
            entries.append(Entry(name, KINDS.get(kind, kind), int(mode, 8), int(uid), user, int(size)))
        except ValueError:
            continue
    return sorted(entries, key=lambda entry: entry.name)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The scripts root compared both ways with what the target declares."""

    extra: list[Entry]
    missing: list[str]


def compare(entries: Iterable[Entry], scripts: Iterable[str], may_hold: Iterable[str] = ()) -> Comparison:
    """What lies there beyond ``scripts`` and ``may_hold``, and which ``scripts`` are not there (any kind)."""
    entries = list(entries)
    allowed = set(scripts) | set(may_hold)
    names = {entry.name for entry in entries}
    return Comparison(
        [entry for entry in entries if entry.name not in allowed], [name for name in scripts if name not in names]
    )
