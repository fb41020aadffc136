"""Facts about a container, read from its ``docker inspect`` data (one inspect per container per run)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ContainerFacts:
    name: str
    attrs: dict[str, Any]

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
    def restart_count(self) -> int:
        return int(self.attrs.get("RestartCount", 0))

    @property
    def networks(self) -> list[str]:
        return sorted((self.attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())

    @property
    def image(self) -> str:
        return str(self.attrs.get("Config", {}).get("Image", ""))

    def published(self, container_port: int, protocol: str = "tcp") -> list[tuple[str, int]]:
        """Host bindings of a container port: [(host_ip, host_port)]."""
        bindings = (self.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{container_port}/{protocol}") or []
        return [(b.get("HostIp", ""), int(b["HostPort"])) for b in bindings if b.get("HostPort")]


def binding_problem(facts: ContainerFacts, container_port: int, host_ip: str | None) -> str | None:
    """Why a container port is not published as expected (same host port; on ``host_ip`` when given)."""
    bindings = facts.published(container_port)
    if not bindings:
        return f"{container_port}/tcp is not published"
    wanted = [(ip, port) for ip, port in bindings if port == container_port and (host_ip is None or ip == host_ip)]
    if not wanted:
        shown = ", ".join(f"{ip or '*'}:{port}" for ip, port in bindings)
        return f"{container_port}/tcp published on {shown}; expected {(host_ip or '*')}:{container_port}"
    return None
