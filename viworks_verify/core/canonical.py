"""Canonical facts: a host's facts as a flat map of dotted paths to plain values, for comparing deployments.

A path is segments joined by dots; a key that is data (a file path, a container name, a location) is in
brackets: ``containers[viworks-backend-agent-new].networks``. Each value type of a host snapshot says what
it is as canonical facts (``canonical(path)``), with these helpers; ``report.drift`` compares them.
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
