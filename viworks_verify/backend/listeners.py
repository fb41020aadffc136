"""Which process listens on which TCP port inside a container, from /proc alone (sans I/O).

A production backend container is a bare Debian image: no ``ss``, ``netstat`` or ``ps``. What every
Linux has is ``/proc/net/tcp`` and ``/proc/net/tcp6`` (sockets of the container's network namespace,
each with its inode) and ``/proc/<pid>/fd/*`` symlinks (``socket:[<inode>]``) plus
``/proc/<pid>/cmdline``. ``SNAPSHOT_COMMAND`` reads all of it in one ``sh`` exec (sh, cat, tr and
readlink only); ``parse_snapshot`` turns its output into a ``ListenerSnapshot``. Nothing here runs
anything: the caller execs the command where it wants and hands over the text.

Addresses in /proc/net/tcp* are the kernel's 32-bit words printed in host byte order; this module
assumes a little-endian host (x86-64, arm64), which is what runs Docker in practice.

A ``ListenerSnapshot`` is also the value of a backend snapshot's fact: saved as its sockets and
processes, compared as the addresses listened on.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any

from viworks_verify.core.canonical import EPHEMERAL_PORTS, Canonical, Observed
from viworks_verify.gateway.processes import runs_program

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

TCP_LISTEN = "0A"
_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")
_ARG_SEPARATOR = "\x1f"  # the script turns cmdline's NULs into this, so a line is one process

# One exec: both socket tables, then per process its argv and the socket inodes among its fds.
# A process whose fd directory cannot be listed (another user's, without CAP_SYS_PTRACE) says so,
# so an unknown owner can be explained instead of guessed.
SNAPSHOT_SCRIPT = r"""
printf '@@ tcp\n'; cat /proc/net/tcp 2>/dev/null
printf '@@ tcp6\n'; cat /proc/net/tcp6 2>/dev/null
for d in /proc/[0-9]*; do
  [ -d "$d" ] || continue
  printf '@@ pid %s\n' "${d#/proc/}"
  printf 'cmdline '; { tr '\000\n' '\037 ' < "$d/cmdline"; } 2>/dev/null; printf '\n'
  listed=no
  for f in "$d"/fd/*; do
    [ -L "$f" ] || continue
    listed=yes
    l=$(readlink "$f" 2>/dev/null) || continue
    case "$l" in socket:*) printf 'fd %s\n' "$l";; esac
  done
  [ "$listed" = yes ] || printf 'fds unlisted\n'
done
"""

SNAPSHOT_COMMAND = ["sh", "-c", SNAPSHOT_SCRIPT]


class SnapshotError(ValueError):
    """Output that is not what SNAPSHOT_COMMAND prints (the exec failed, or no /proc)."""


@dataclasses.dataclass(frozen=True)
class TcpSocket:
    family: str  # "tcp" or "tcp6"
    address: IPAddress
    port: int
    state: str  # the kernel's hex state: "0A" is LISTEN
    inode: int

    @property
    def listening(self) -> bool:
        return self.state == TCP_LISTEN

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if self.family == "tcp6" else f"{self.address}:{self.port}"

    @property
    def reachable_from_outside(self) -> bool:
        """Bound to a wildcard or a non-loopback address: other containers (nginx) can connect."""
        address = self.address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return not address.is_loopback

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "address": str(self.address),
            "port": self.port,
            "state": self.state,
            "inode": self.inode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TcpSocket:
        return cls(data["family"], ipaddress.ip_address(data["address"]), data["port"], data["state"], data["inode"])


@dataclasses.dataclass(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    socket_inodes: frozenset[int]
    fds_listed: bool = True

    def describe(self, width: int = 100) -> str:
        command = " ".join(self.argv) or "?"
        if len(command) > width:
            command = command[: width - 1] + "…"
        return f"pid {self.pid} ({command})"

    def runs(self, binary_path: str) -> bool:
        """True when this process is ``binary_path`` (``processes.runs_program``: run directly or by an interpreter)."""
        return runs_program(self.argv, {binary_path})

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "argv": list(self.argv),
            "socket_inodes": sorted(self.socket_inodes),
            "fds_listed": self.fds_listed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Process:
        return cls(data["pid"], tuple(data["argv"]), frozenset(data["socket_inodes"]), data["fds_listed"])


@dataclasses.dataclass(frozen=True)
class Listener:
    socket: TcpSocket
    owners: tuple[Process, ...]  # every process holding the socket (usually one)


@dataclasses.dataclass(frozen=True)
class ListenerSnapshot:
    sockets: tuple[TcpSocket, ...]
    processes: tuple[Process, ...]

    def listening_on(self, port: int) -> list[Listener]:
        return [
            Listener(s, tuple(p for p in self.processes if s.inode in p.socket_inodes))
            for s in self.sockets
            if s.listening and s.port == port
        ]

    @property
    def listening_ports(self) -> list[int]:
        return sorted({s.port for s in self.sockets if s.listening})

    @property
    def unlisted_pids(self) -> list[int]:
        """Processes whose fds could not be listed: a socket they hold has no known owner."""
        return [p.pid for p in self.processes if not p.fds_listed]

    def to_json(self) -> dict[str, Any]:
        return {"sockets": [s.to_json() for s in self.sockets], "processes": [p.to_json() for p in self.processes]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListenerSnapshot:
        return cls(
            tuple(TcpSocket.from_json(s) for s in data.get("sockets", [])),
            tuple(Process.from_json(p) for p in data.get("processes", [])),
        )

    def canonical(self, path: str) -> Canonical:
        """The addresses listened on; those on ports the kernel hands out (a client's, a worker's) volatile."""
        listening = [s for s in self.sockets if s.listening]
        steady = {f"{s.family} {s.address}:{s.port}" for s in listening if s.port not in EPHEMERAL_PORTS}
        ephemeral = {f"{s.family} {s.address}:{s.port}" for s in listening if s.port in EPHEMERAL_PORTS}
        yield path, Observed(sorted(steady))
        yield f"{path}.ephemeral", Observed(sorted(ephemeral), volatile=True)


def parse_proc_net_tcp(text: str, family: str = "tcp") -> list[TcpSocket]:
    """Sockets of one /proc/net/tcp or /proc/net/tcp6 table (the header line is skipped)."""
    if family not in ("tcp", "tcp6"):
        raise ValueError(f"family must be tcp or tcp6, not {family!r}")
    sockets = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "sl":
            continue
        if len(fields) < 10 or not fields[0].endswith(":"):
            raise SnapshotError(f"/proc/net/{family} line {number}: unexpected format: {line.strip()[:80]!r}")
        host, _, port = fields[1].partition(":")
        try:
            sockets.append(TcpSocket(family, _decode_address(host), int(port, 16), fields[3].upper(), int(fields[9])))
        except ValueError as exc:
            raise SnapshotError(f"/proc/net/{family} line {number}: {exc}") from None
    return sockets


def _decode_address(hex_address: str) -> IPAddress:
    raw = bytes.fromhex(hex_address)
    if len(raw) not in (4, 16):
        raise ValueError(f"address {hex_address!r} is neither IPv4 nor IPv6")
    # Each 32-bit word is printed in host order (little-endian): reverse the bytes of each word.
    ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(ordered)


def parse_snapshot(text: str) -> ListenerSnapshot:
    """The output of SNAPSHOT_COMMAND as sockets and processes."""
    sections: dict[str, list[str]] = {"tcp": [], "tcp6": []}
    processes: list[Process] = []
    current: list[str] | None = None
    pid: int | None = None
    argv: tuple[str, ...] = ()
    inodes: set[int] = set()
    listed = True

    def close_process() -> None:
        if pid is not None:
            processes.append(Process(pid, argv, frozenset(inodes), listed))

    seen_tcp = False
    for line in text.splitlines():
        if line.startswith("@@ "):
            header = line[3:].strip()
            if header in sections:
                close_process()
                pid, current, seen_tcp = None, sections[header], seen_tcp or header == "tcp"
            elif header.startswith("pid "):
                close_process()
                current = None
                pid, argv, inodes, listed = int(header[4:]), (), set(), True
            continue
        if current is not None:
            current.append(line)
        elif pid is not None:
            key, _, value = line.partition(" ")
            if key == "cmdline":
                argv = tuple(arg for arg in value.split(_ARG_SEPARATOR) if arg)
            elif key == "fd" and (match := _SOCKET_LINK.match(value.strip())):
                inodes.add(int(match[1]))
            elif key == "fds":
                listed = False
    close_process()
    if not seen_tcp or not any(line.strip() for line in sections["tcp"]):
        raise SnapshotError("no /proc/net/tcp table in the output (is /proc mounted, did sh run?)")
    sockets = parse_proc_net_tcp("\n".join(sections["tcp"]), "tcp") + parse_proc_net_tcp(
        "\n".join(sections["tcp6"]), "tcp6"
    )
    return ListenerSnapshot(tuple(sockets), tuple(processes))
