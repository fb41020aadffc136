"""Where the lab keeps things, and the names it gives the replica (the contract's defaults)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "fixtures" / "lab"

AGENT_DOMAIN = "agent.lab.test"
GATEWAY_ID = "gw-lab-01"
SUITE_AGENT_ID = "suite-probe-01"
SITE = "lab"
BACKEND_VERSION = "1.4.2-lab"
NETWORKS = ("viworks-internal", "viworks-public")
LOOPBACK = "127.0.0.1"
# Published ports on the loopback interface: the contract's, plus sshd of the gateway host.
PORTS = {"http": 80, "https": 443, "api": 8080, "ws": 8081, "backend_ssh": 2221, "gateway_ssh": 2222}
# The containers, named as the contract names them.
BACKEND = "viworks-backend-agent-new"
NGINX = "viworks-nginx"
POSTGRES = "viworks-postgres"
REDIS = "viworks-redis"
BACKEND_HOST = "viworks-backend-host"  # the backend-over-ssh variant's backend host: sshd, and the lab's Docker engine
BACKEND_BINARY = "/app/viworks-backend-agent"  # where the image puts it
GATEWAY_BINARY = "/opt/viworks/viworks-gateway-agent"
GATEWAY_UNIT = "viworks-gateway-agent.service"
MAX_GATEWAYS = 16  # a fleet of gateway hosts: gw-lab-01..NN, ssh on 2222..2222+N-1


@dataclasses.dataclass(frozen=True)
class GatewayHost:
    """One gateway host of the lab's fleet: its agent id, container, ssh port and site."""

    index: int  # 1-based

    @property
    def agent_id(self) -> str:
        return f"gw-lab-{self.index:02d}"

    @property
    def container(self) -> str:
        return f"viworks-{self.agent_id}"

    @property
    def ssh_port(self) -> int:
        return PORTS["gateway_ssh"] + self.index - 1

    @property
    def site(self) -> str:
        return SITE if self.index == 1 else f"{SITE}-{self.index:02d}"


def fleet(count: int) -> list[GatewayHost]:
    return [GatewayHost(index) for index in range(1, count + 1)]


def gateway_by_id(agent_id: str, count: int) -> GatewayHost | None:
    return next((gateway for gateway in fleet(count) if gateway.agent_id == agent_id), None)


@dataclasses.dataclass(frozen=True)
class StateDir:
    """The lab's generated state (keys, rendered configs, the suite's lab target files); not in git."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def secrets_env(self) -> Path:
        return self.root / "secrets.env"

    @property
    def lab_secrets(self) -> Path:
        return self.root / "lab-secrets.json"

    @property
    def release(self) -> Path:
        return self.root / "release.json"

    @property
    def fault(self) -> Path:
        return self.root / "fault.json"

    @property
    def fleet(self) -> Path:
        """How many gateway hosts the lab runs (``up --gateways N``)."""
        return self.root / "fleet.json"

    @property
    def variant(self) -> Path:
        """Which variant the lab is (``up --variant NAME``)."""
        return self.root / "variant.json"

    @property
    def fleet_inventory(self) -> Path:
        return self.root / "hosts.ini"

    @property
    def rendered(self) -> Path:
        return self.root / "rendered"

    @property
    def build(self) -> Path:
        return self.root / "build"


def default_state() -> StateDir:
    return StateDir(REPO_ROOT / ".lab")


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``@NAME@`` tokens; a token without a value is an error, not a silent blank."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template token @{name}@ has no value")
        return values[name]

    return re.sub(r"@([A-Z][A-Z_]*)@", fill, template)
