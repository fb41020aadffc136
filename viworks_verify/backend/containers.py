"""Facts about a container, read from its ``docker inspect`` data (one inspect per container per run).

``ContainerFacts`` is also the value of a backend snapshot's container fact: what it keeps of the
inspect (``kept``), saved as that part of the inspect and compared as image, networks, ports, state.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Callable
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed, key
from viworks_verify.core.polling import NotReady, poll_until
from viworks_verify.target.settings import Backend

# What a snapshot keeps of an inspect's State (``ContainerFacts.kept``).
KEPT_STATE = ("Status", "Running", "Restarting", "ExitCode", "StartedAt", "FinishedAt", "Health")


@dataclasses.dataclass(frozen=True)
class ContainerFacts:
    """A container as ``docker inspect`` shows it."""

    name: str
    attrs: dict[str, Any]  # docker inspect's, or the part of it a snapshot keeps (``kept``)

    def kept(self) -> ContainerFacts:
        """The part of the inspect a snapshot keeps: what the checks judge, never Config.Env (it carries the
        URLs' passwords)."""
        attrs = self.attrs
        state = {name: attrs.get("State", {}).get(name) for name in KEPT_STATE}
        if isinstance(state.get("Health"), dict):
            state["Health"] = {"Status": state["Health"].get("Status")}
        networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
        return ContainerFacts(
            self.name,
            {
                "Name": str(attrs.get("Name", "")).lstrip("/"),
                "Image": attrs.get("Image"),
                "Config": {"Image": attrs.get("Config", {}).get("Image")},
                "State": state,
                "RestartCount": attrs.get("RestartCount", 0),
                "NetworkSettings": {
                    "Networks": {
                        name: {"IPAddress": info.get("IPAddress"), "Aliases": info.get("Aliases")}
                        for name, info in networks.items()
                    },
                    "Ports": attrs.get("NetworkSettings", {}).get("Ports") or {},
                },
                "HostConfig": {"PortBindings": attrs.get("HostConfig", {}).get("PortBindings") or {}},
            },
        )

    def to_json(self) -> dict[str, Any]:
        return self.attrs

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerFacts:
        return cls(str(data.get("Name", "")), data)  # the kept inspect names it

    def canonical(self, path: str) -> Canonical:
        """Image, networks, published ports and state; what changes with every start is volatile (its
        addresses, health, start time, and restarts below the default threshold)."""
        inspect = self.attrs
        state = inspect.get("State") or {}
        networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
        yield f"{path}.image", Observed((inspect.get("Config") or {}).get("Image"))
        yield f"{path}.image_id", Observed(inspect.get("Image"))
        yield f"{path}.networks", Observed(sorted(networks))
        for network, info in sorted(networks.items()):
            yield f"{path}.{key('address', network)}", Observed((info or {}).get("IPAddress"), volatile=True)
        yield (
            f"{path}.published",
            Observed(
                sorted(
                    f"{binding.get('HostIp') or '*'}:{binding.get('HostPort')}->{port}"
                    for port, bindings in ((inspect.get("HostConfig") or {}).get("PortBindings") or {}).items()
                    for binding in bindings or [{}]
                )
            ),
        )
        yield f"{path}.status", Observed(state.get("Status"))
        health = state.get("Health")
        yield f"{path}.health", Observed(health.get("Status") if isinstance(health, dict) else None, volatile=True)
        restarts = inspect.get("RestartCount", 0)
        yield f"{path}.restart_count", Observed(restarts, volatile=(restarts or 0) < Backend().max_restarts)
        yield f"{path}.started_at", Observed(state.get("StartedAt"), volatile=True)

    @property
    def state(self) -> dict[str, Any]:
        return self.attrs.get("State", {})

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running")) and not self.state.get("Restarting")

    @property
    def status(self) -> str:
        state = self.state
        return "restarting" if state.get("Restarting") else str(state.get("Status", "unknown"))

    @property
    def exit_code(self) -> int | None:
        """The last exit code of a container that is not running."""
        code = self.state.get("ExitCode")
        return int(code) if code is not None and not self.running else None

    @property
    def restart_count(self) -> int:
        return int(self.attrs.get("RestartCount", 0))

    @property
    def health(self) -> str | None:
        """The healthcheck's verdict (healthy, unhealthy, starting); None without a healthcheck."""
        health = self.state.get("Health")
        return str(health.get("Status")) if isinstance(health, dict) and health.get("Status") else None

    @property
    def started_at(self) -> _dt.datetime | None:
        return parse_docker_time(self.state.get("StartedAt"))

    def uptime_s(self, now: _dt.datetime) -> float | None:
        """Seconds since the container (last) started, by the engine's clock ``now``; None when not running."""
        started = self.started_at
        return (now - started).total_seconds() if started is not None and self.running else None

    @property
    def networks(self) -> list[str]:
        return sorted((self.attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())

    @property
    def image(self) -> str:
        return str(self.attrs.get("Config", {}).get("Image", ""))

    def host_bindings(self) -> list[tuple[str, str, str]]:
        """Every port published on the host: [(container port "8081/tcp", host ip, host port)].

        What the engine has bound (running) and what the container is configured to bind (so a
        stopped or restarting container's publishing is seen too).
        """
        found: set[tuple[str, str, str]] = set()
        for source in (
            self.attrs.get("NetworkSettings", {}).get("Ports"),
            self.attrs.get("HostConfig", {}).get("PortBindings"),
        ):
            for port, bindings in (source or {}).items():
                for binding in bindings or []:
                    found.add(
                        (port, str(binding.get("HostIp") or ""), str(binding.get("HostPort") or port.split("/")[0]))
                    )
        # The configured "" and the bound "0.0.0.0" are the same binding: keep the engine's.
        bound = {(port, host_port) for port, ip, host_port in found if ip}
        return sorted(binding for binding in found if binding[1] or (binding[0], binding[2]) not in bound)


@dataclasses.dataclass(frozen=True)
class NetworkSetProblem:
    """How a container's networks differ from what they should be, both ways."""

    missing: list[str]
    extra: list[str]

    @property
    def found(self) -> str:
        parts = [f"missing {', '.join(self.missing)}"] if self.missing else []
        parts += [f"also on {', '.join(self.extra)}"] if self.extra else []
        return "; ".join(parts)

    def fix(self, container: str) -> str:
        return "; ".join(
            [f"docker network connect {n} {container}" for n in self.missing]
            + [f"docker network disconnect {n} {container}" for n in self.extra]
        )


def network_set_problem(
    attached: list[str], expected: tuple[str, ...] | list[str], may_also: tuple[str, ...] | list[str] = ()
) -> NetworkSetProblem | None:
    """``attached`` against the networks a container must be on (``expected``) and may be on
    (``may_also``); None when it is on all of the first and none beyond both."""
    missing = [network for network in expected if network not in attached]
    extra = [network for network in attached if network not in expected and network not in may_also]
    return NetworkSetProblem(missing, extra) if missing or extra else None


LOOPBACK = ("127.0.0.1", "::1")


def host_address(ip: str) -> str:
    """A binding's host address as an operator reads it."""
    return "every address (0.0.0.0)" if ip in ("", "0.0.0.0") else "every address (::)" if ip == "::" else ip


def publishing_problems(facts: ContainerFacts, allow_loopback: bool) -> list[str]:
    """Each host address a container publishes a port on, where none should be (loopback, if allowed, aside)."""
    return [
        f"{facts.name} publishes {port} on {host_address(ip)}:{host_port}"
        for port, ip, host_port in facts.host_bindings()
        if not (allow_loopback and ip in LOOPBACK)
    ]


def parse_docker_time(value: str | None) -> _dt.datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds, ``Z``); None for empty or the zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.strip().replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:  # Python takes at most microseconds: cut the fraction to 6 digits, keep the offset
        digits = "".join(ch for ch in rest if ch.isdigit())
        offset = rest[len(digits) :]
        text = f"{main}.{digits[:6]}{offset}"
    parsed = _dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)


def restart_problem(facts: ContainerFacts, now: _dt.datetime, max_restarts: int, window_s: float) -> str | None:
    """Why a running container's restarts look like a crash loop; None when they do not.

    Too many restarts in its life, or a restart less than ``window_s`` ago (a restarted container
    must stay up a restart period before it counts as settled). A first start, however recent,
    is a deploy, not a restart.
    """
    if facts.restart_count > max_restarts:
        return f"{facts.name} restarted {facts.restart_count} times (max {max_restarts})"
    uptime = facts.uptime_s(now)
    if facts.restart_count and uptime is not None and uptime < window_s:
        return (
            f"{facts.name} restarted {facts.restart_count} times, last {uptime:.0f} s ago (less than {window_s:.0f} s)"
        )
    return None


def watch_settling(
    first: ContainerFacts,
    inspect: Callable[[], ContainerFacts | None],
    now: Callable[[], _dt.datetime],
    window_s: float,
    *,
    slack_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], None] = time.sleep,
) -> str | None:
    """Watch a recently restarted container until it has been up ``window_s``; None when it settles.

    Polls ``inspect`` (a fresh inspect each time) against a deadline: the rest of the window plus
    ``slack_s``. Otherwise says what was seen: it restarted again, stopped, vanished, or was still
    short of the window at the deadline.
    """
    start_count = first.restart_count
    remaining = max(window_s - (first.uptime_s(now()) or 0.0), 0.0)

    def settled_or_worse(facts: ContainerFacts | None) -> bool:
        return (
            facts is None
            or not facts.running
            or facts.restart_count != start_count
            or (facts.uptime_s(now()) or 0.0) >= window_s
        )

    try:
        facts = poll_until(
            inspect,
            settled_or_worse,
            what=f"{first.name} settling",
            timeout_s=remaining + slack_s,
            interval_s=1.0,
            max_interval_s=5.0,
            clock=clock,
            wait=wait,
        ).value
    except NotReady as exc:
        return f"{first.name} not settled after {exc.timeout_s:.0f} s; last seen: {exc.last}"
    if facts is None:
        return f"{first.name} disappeared while watched"
    if facts.restart_count != start_count:
        return f"{first.name} restarted again while watched ({start_count} -> {facts.restart_count} restarts)"
    if not facts.running:
        return f"{first.name} went {facts.status} while watched"
    return None
