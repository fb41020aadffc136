"""Facts of a backend snapshot as the checks read them: the binary, the configuration, nginx's agent server.

Pure derivations of what the gather phase recorded; each returns ``(value, problem)`` so a caller
can turn it into a ``Reading`` (the problem names the host, the container and the file).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from viworks_verify.backend.nginx_config import NginxConfig, Server
from viworks_verify.backend.snapshot import BackendSnapshot, file_facts_from_json
from viworks_verify.core.file_facts import FileFacts
from viworks_verify.target.settings import Backend, Settings


@dataclasses.dataclass(frozen=True)
class RecordedUrl:
    """A service URL as a snapshot keeps it: masked, with its host."""

    redacted: str
    host: str | None

    def __str__(self) -> str:
        return self.redacted


@dataclasses.dataclass(frozen=True)
class RecordedConfig:
    """What the checks need of ``backend-agent.toml``."""

    server_port: Any
    ws_port: Any
    database: RecordedUrl | None
    redis: RecordedUrl | None
    sections: tuple[str, ...]


def backend_binary(snapshot: BackendSnapshot, backend: Backend) -> tuple[FileFacts | None, str | None]:
    files = file_facts_from_json(snapshot.agent_files.value or {})
    where = f"{snapshot.host}: {backend.agent_container}: {backend.binary_path}"
    binary = files.get(backend.binary_path)
    if binary is None or not binary.exists:
        return None, f"{where}: expected the backend agent binary; found no such file"
    if not binary.is_file:
        return None, f"{where}: expected the backend agent binary, a regular file; found a {binary.kind}"
    return binary, None


def backend_config(snapshot: BackendSnapshot) -> RecordedConfig:
    data = snapshot.agent_config.value or {}

    def url(item: dict[str, Any] | None) -> RecordedUrl | None:
        return RecordedUrl(item["redacted"], item.get("host")) if item else None

    return RecordedConfig(
        data.get("server_port"),
        data.get("ws_port"),
        url(data.get("database")),
        url(data.get("redis")),
        tuple(data.get("sections", ())),
    )


def agent_server(host_id: str, config: NginxConfig, settings: Settings) -> tuple[Server | None, str | None]:
    """The server block nginx uses for the agent domain on its HTTPS port."""
    domain, port = settings.edge.domain, settings.edge.https_port
    server = config.server_for(domain, port)
    if server is None:
        servers = ", ".join(
            f"{' '.join(s.server_names) or '_'} on {'/'.join(str(listen.port) for listen in s.listens)}"
            for s in config.servers
        )
        return (
            None,
            f"{host_id}: {settings.backend.nginx_container}: expected a server block for {domain} on port {port}; found {servers or 'no server blocks'}",
        )
    return server, None
