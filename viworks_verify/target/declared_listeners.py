"""The listeners a target declares its gateway hosts may have: ``PROCESS[:PORT[/tcp|udp]]``, as settings spell them."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Declared:
    """A listener a target declares for its hosts: ``sshd`` (any port), ``sshd:22`` (TCP or UDP),
    ``vpnserver:1194/udp``."""

    process: str
    port: int | None = None
    proto: str | None = None

    @classmethod
    def parse(cls, text: str) -> Declared:
        process, _, where = text.strip().partition(":")
        port, _, proto = where.partition("/")
        if not process or (port and not port.isdigit()) or proto not in ("", "tcp", "udp"):
            raise ValueError(f"{text!r} is not PROCESS[:PORT[/tcp|udp]]")
        return cls(process, int(port) if port else None, proto or None)

    def admits(self, listener: Any, name: str) -> bool:
        """Whether a listener (anything with ``port`` and ``proto``) held by process ``name`` is this one."""
        return name == self.process and self.port in (None, listener.port) and self.proto in (None, listener.proto)

    def __str__(self) -> str:
        return (
            self.process + (f":{self.port}" if self.port is not None else "") + (f"/{self.proto}" if self.proto else "")
        )
