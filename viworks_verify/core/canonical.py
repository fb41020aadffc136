"""Canonical facts: a host's facts as a flat map of dotted paths to plain values, for comparing deployments.

A path is segments joined by dots; a key that is data (a file path, a container name, a location) is in
brackets: ``containers[viworks-backend-agent-new].networks``. Each value type of a host snapshot says what
it is as canonical facts (``canonical(path)``), with these helpers; ``HostSnapshot.canonical`` gathers a
host's, and ``report.drift`` compares them. The rules every value type follows:

What a snapshot records the way a check needs it (nginx as a parsed tree, ``systemctl show``
text, ``docker inspect``), its value types turn into facts that compare equal whenever two
deployments are the same, however they were written or when they were read:

- nginx's configuration as structure: a directive's file and line, or the include it came
  through, are not part of it; a block is keyed by what it is (``server[agent.example.com:443]``,
  ``location[/ws/]``), not by where it is;
- certificates as who, by whom, until when and which key, not PEM text;
- the binaries (the backend's, the gateway's program at ExecStart) as size and sha256, and every
  other release artifact (the scripts, the unit file and its drop-ins) by sha256: an artifact is
  identified by its content, so another build at the same path with the same mode is drift;
- the gateway's scripts root as every entry in it (a stray file is drift), each by kind, mode,
  owner and content;
- containers as image, networks, published ports, state; the unit as its properties with
  ``ExecStart`` reduced to its program and arguments.

Volatile facts (PIDs, start times, addresses Docker assigns, clocks, journal lines, restart counts
below the target's threshold, ports the kernel picks) are marked volatile, so a
diff ignores them by default and ``--all`` lists them. Secret values are already keyed hashes in
the snapshot (``hmac-sha256:...``); they are compared as such and never shown.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

SECRET_PREFIX = "hmac-sha256:"
EPHEMERAL_PORTS = range(32768, 61000)  # Linux's default local port range: ports the kernel hands out


@dataclasses.dataclass(frozen=True)
class Observed:
    """One canonical fact of a host."""

    value: Any  # JSON-plain: str, int, float, bool, None, list, dict
    volatile: bool = False  # changes with every run or start, not with the deployment: drift ignores it by default

    @property
    def secret(self) -> bool:
        return isinstance(self.value, str) and self.value.startswith(SECRET_PREFIX)


Facts = dict[str, Observed]
Canonical = Iterator[tuple[str, Observed]]


def key(name: str, data: str) -> str:
    """A path segment for a keyed item: ``files[/opt/viworks/agent/.env]``."""
    return f"{name}[{data}]"


def split_path(path: str) -> list[str]:
    """The segments of a dotted path; dots inside brackets belong to the key."""
    return [part for part in re.findall(r"(?:[^.\[]|\[[^\]]*\])+", path) if part]


def flatten(prefix: str, value: Any) -> Canonical:
    """A plain value as canonical facts: a dict's items each under its name, anything else as one fact."""
    if isinstance(value, dict) and value:
        for name, item in sorted(value.items()):
            segment = name if re.fullmatch(r"[\w-]+", str(name)) else key("", str(name))
            yield from flatten(f"{prefix}.{segment}" if segment[0] != "[" else f"{prefix}{segment}", item)
    else:
        yield prefix, Observed(value)


def octal_mode(mode: Any) -> str | None:
    """``0o640`` -> ``0640``; a mode already text is kept."""
    return format(mode, "04o") if isinstance(mode, int) else mode
