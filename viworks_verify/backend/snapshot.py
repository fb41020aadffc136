"""The backend host as the gather phase read it, declared once (filled by ``backend.reader``, judged by
``tests_infra/backend/``): its containers, inside the agent's container, nginx, the clock."""

from __future__ import annotations

import dataclasses

from viworks_verify.backend.config import RecordedConfig
from viworks_verify.backend.container_files import AgentFiles, TlsFiles
from viworks_verify.backend.containers import ContainerFacts
from viworks_verify.backend.listeners import ListenerSnapshot
from viworks_verify.backend.nginx_config import NginxConfig
from viworks_verify.core.clock import ClockSkew
from viworks_verify.core.fact import Fact
from viworks_verify.core.host_snapshot import HostSnapshot, fact, facts


@dataclasses.dataclass
class BackendSnapshot(HostSnapshot):
    """The backend host (``local://backend-lab``, ``ssh://backend-1``), read through its Docker engine."""

    KIND = "backend"
    engine_offset_s: float = 0.0  # the engine's clock minus the runner's (container times are the engine's)
    containers: dict[str, Fact[ContainerFacts]] = facts(
        "each expected container's inspect, the part the checks judge (problem: no such container)"
    )
    agent_files: Fact[AgentFiles] = fact(
        "the agent's binary (with its sha256) and configuration (no content) in its container", path="files"
    )
    agent_config: Fact[RecordedConfig] = fact(
        "the agent's configuration: ports, sections, URLs masked, secrets as keyed hashes", path="config"
    )
    agent_listeners: Fact[ListenerSnapshot] = fact(
        "the TCP sockets and the processes holding them, from /proc in the agent container", path="listeners"
    )
    nginx: Fact[NginxConfig] = fact("nginx's configuration as nginx -T dumped it, parsed (problem: nginx -t failed)")
    nginx_tls_files: Fact[TlsFiles] = fact(
        "the agent server's certificate, key and client CA files in the nginx container (keys: stat only)",
        path="tls_files",
    )
    clock_skew: Fact[ClockSkew] = fact("the Docker engine's clock against the runner's", path="clock_skew_s")
