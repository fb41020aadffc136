"""A host's listening TCP and bound UDP sockets, as ``ss -H -tulpn`` prints them, and which are expected.

Sans-I/O: ``COMMAND`` is what to run (as root, or processes of other users are not shown),
``parse`` reads its output. A socket that no process on the host owns (Docker's embedded DNS in
a host that is a container, a kernel socket) is listed with no process.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from viworks_verify.core.canonical import EPHEMERAL_PORTS, Canonical, Observed
from viworks_verify.target.declared_listeners import Declared

COMMAND = "ss -H -tulpn"
_PROCESS = re.compile(r'\("(?P<name>(?:[^"\\]|\\.)*)",pid=(?P<pid>\d+)')


@dataclasses.dataclass(frozen=True)
class Listener:
    proto: str  # "tcp" or "udp"
    address: str  # as bound: 0.0.0.0, ::, 127.0.0.1, * (any)
    port: int
    processes: tuple[tuple[str, int], ...]  # (name, pid)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _ in self.processes))

    def describe(self, labels: dict[int, str] | None = None) -> str:
        """``8080/tcp on 0.0.0.0 by python3 (pid 117, the agent)``."""
        owners = ", ".join(
            f"{name} (pid {pid}{', ' + labels[pid] if labels and pid in labels else ''})"
            for name, pid in self.processes
        )
        return f"{self.port}/{self.proto} on {self.address} by {owners or 'no process visible on the host'}"


@dataclasses.dataclass(frozen=True)
class HostListeners:
    """Every listening TCP and bound UDP socket of a host (``ss -tulpn``), as a snapshot's fact."""

    listeners: tuple[Listener, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"proto": x.proto, "address": x.address, "port": x.port, "processes": [list(p) for p in x.processes]}
            for x in self.listeners
        ]

    @classmethod
    def from_json(cls, data: Any) -> HostListeners:
        return cls(
            tuple(
                Listener(x["proto"], x["address"], int(x["port"]), tuple((n, int(p)) for n, p in x["processes"]))
                for x in data or ()
            )
        )

    def canonical(self, path: str) -> Canonical:
        """``proto address:port owners``; those on a port the kernel hands out are volatile."""
        steady, ephemeral = set(), set()
        for listener in self.listeners:
            owners = sorted({name for name, _ in listener.processes})
            text = f"{listener.proto} {listener.address}:{listener.port} {','.join(owners) or '-'}"
            (ephemeral if listener.port in EPHEMERAL_PORTS else steady).add(text)
        yield path, Observed(sorted(steady))
        yield f"{path}.ephemeral", Observed(sorted(ephemeral), volatile=True)


def parse(text: str) -> list[Listener]:
    listeners = []
    for line in text.splitlines():
        fields = line.split(None, 6)
        if len(fields) < 5 or fields[0] not in ("tcp", "udp"):
            continue
        address, port = _split_address(fields[4])
        if port is None:
            continue
        process_field = fields[6] if len(fields) > 6 else ""
        processes = tuple(dict.fromkeys((m["name"], int(m["pid"])) for m in _PROCESS.finditer(process_field)))
        listeners.append(Listener(fields[0], address, port, processes))
    return listeners


def _split_address(text: str) -> tuple[str, int | None]:
    """``[::]:22`` -> (``::``, 22); ``127.0.0.53%lo:53`` -> (``127.0.0.53``, 53); ``*:68`` -> (``*``, 68)."""
    address, _, port = text.rpartition(":")
    if not port.isdigit():
        return text, None
    address = address.strip("[]")
    address = address.split("%", 1)[0].strip("[]")  # the interface a socket is bound to is not part of the address
    return address, int(port)


def owned_by(listeners: list[Listener], pids: set[int]) -> list[Listener]:
    """The listeners any of ``pids`` holds."""
    return [listener for listener in listeners if any(pid in pids for _, pid in listener.processes)]


def undeclared(
    listeners: list[Listener], declared: tuple[str, ...], engine_addresses: tuple[str, ...] = ()
) -> list[Listener]:
    """Listeners some process holds that no declaration admits; and sockets no host process holds,
    unless at an address of the container engine's own (Docker's DNS in a host that is a container)."""
    rules = [Declared.parse(text) for text in declared]
    found = []
    for listener in listeners:
        if listener.processes:
            if all(any(rule.admits(listener, name) for rule in rules) for name in listener.names):
                continue
        elif listener.address in engine_addresses:
            continue
        found.append(listener)
    return found
