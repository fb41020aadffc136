"""Facts of a backend snapshot as the checks read them: the agent's binary, nginx's agent server.

Pure derivations of what the gather phase recorded; each is a ``Fact`` whose problem names the host,
the container and the file.
"""

from __future__ import annotations

from viworks_verify.backend.container_files import AgentFiles
from viworks_verify.backend.nginx_config import NginxConfig, Server
from viworks_verify.core.fact import Fact
from viworks_verify.core.file_facts import FileFacts
from viworks_verify.target.settings import Backend, Settings


def backend_binary(host_id: str, files: AgentFiles, backend: Backend) -> Fact[FileFacts]:
    """The agent binary among the agent's files, when it is there as a regular file."""
    where = f"{host_id}: {backend.agent_container}: {backend.binary_path}"
    binary = files.get(backend.binary_path)
    if binary is None or not binary.exists:
        return Fact.failed(f"{where}: expected the backend agent binary; found no such file")
    if not binary.is_file:
        return Fact.failed(f"{where}: expected the backend agent binary, a regular file; found a {binary.kind}")
    return Fact(binary)


def agent_server(host_id: str, config: NginxConfig, settings: Settings) -> Fact[Server]:
    """The server block nginx uses for the agent domain on its HTTPS port."""
    domain, port = settings.edge.domain, settings.edge.https_port
    server = config.server_for(domain, port)
    if server is None:
        servers = ", ".join(
            f"{' '.join(s.server_names) or '_'} on {'/'.join(str(listen.port) for listen in s.listens)}"
            for s in config.servers
        )
        return Fact.failed(
            f"{host_id}: {settings.backend.nginx_container}: expected a server block for {domain} on port {port}; "
            f"found {servers or 'no server blocks'}"
        )
    return Fact(server)
