"""The lab's containers and networks: what should exist, bringing it there, and taking it away.

Each container carries a fingerprint label (image, settings and the content of what it mounts);
``up`` leaves a running container whose fingerprint matches alone, so running it twice changes
nothing, and recreates only what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path

import docker
from docker.models.containers import Container

from viworks_lab.images import LABEL
from viworks_lab.layout import LOOPBACK, NETWORKS

FINGERPRINT = "viworks.lab.fingerprint"
SYSTEMD_OPTIONS = {
    # SYS_ADMIN: systemd as PID 1. SYS_PTRACE: root may read every process's sockets, as on a real
    # host (Docker withholds it; without it ss cannot name services that run as their own user).
    "cap_add": ["SYS_ADMIN", "SYS_PTRACE"],
    "tmpfs": {"/run": "", "/run/lock": ""},
    "stop_signal": "SIGRTMIN+3",
}


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    networks: dict[str, tuple[str, ...]]  # network -> aliases, attached in this order
    command: tuple[str, ...] | None = None
    ports: dict[str, int] = dataclasses.field(default_factory=dict)  # "8080/tcp" -> loopback port
    mounts: dict[str, str] = dataclasses.field(default_factory=dict)  # host path -> "container path:ro|rw"
    hostname: str | None = None
    systemd: bool = False

    def fingerprint(self) -> str:
        sha = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        if self.systemd:  # how a systemd host is run is part of what it is
            sha.update(json.dumps(SYSTEMD_OPTIONS, sort_keys=True).encode())
        for source in sorted(self.mounts):
            sha.update(_content_digest(Path(source)).encode())
        return sha.hexdigest()[:16]


def _content_digest(path: Path) -> str:
    """Digest of a mounted file or directory's content (so a changed config restarts its container)."""
    sha = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        sha.update(str(file.relative_to(path.parent)).encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()


def ensure_networks(client: docker.DockerClient) -> None:
    existing = {network.name for network in client.networks.list(names=list(NETWORKS))}
    for name in NETWORKS:
        if name not in existing:
            client.networks.create(name, driver="bridge", labels={LABEL: "1"})


def find(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def ensure_container(client: docker.DockerClient, spec: ContainerSpec) -> tuple[Container, bool]:
    """The running container for ``spec`` and whether it was (re)created or (re)started."""
    fingerprint = spec.fingerprint()
    container = find(client, spec.name)
    attached = set(container.attrs["NetworkSettings"]["Networks"]) if container is not None else set()
    if container is not None and container.labels.get(FINGERPRINT) == fingerprint and attached == set(spec.networks):
        if container.status == "running":
            return container, False
        container.start()
        container.reload()
        return container, True
    if container is not None:
        container.remove(force=True)
    (first, first_aliases), *others = spec.networks.items()
    options = dict(SYSTEMD_OPTIONS) if spec.systemd else {}
    volumes = {
        source: {"bind": target.rsplit(":", 1)[0], "mode": target.rsplit(":", 1)[1]}
        for source, target in spec.mounts.items()
    }
    if spec.systemd:
        volumes["/sys/fs/cgroup"] = {"bind": "/sys/fs/cgroup", "mode": "rw"}
    container = client.containers.create(
        spec.image,
        command=list(spec.command) if spec.command else None,
        name=spec.name,
        hostname=spec.hostname,
        labels={LABEL: "1", FINGERPRINT: fingerprint},
        ports={port: (LOOPBACK, host_port) for port, host_port in spec.ports.items()},
        volumes=volumes,
        network=first,
        restart_policy={"Name": "unless-stopped"},
        **options,
    )
    if first_aliases:
        # Aliases need an explicit connect; the create-time attachment has none.
        client.networks.get(first).disconnect(container)
        client.networks.get(first).connect(container, aliases=list(first_aliases))
    for network, aliases in others:
        client.networks.get(network).connect(container, aliases=list(aliases) or None)
    container.start()
    container.reload()
    return container, True


def put_files(container: Container, files: dict[str, tuple[bytes, int]]) -> None:
    """Copy files (absolute path -> (content, mode)) into a container, owned by root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories = sorted({str(Path(path).parent) for path in files})
        for directory in directories:
            parts = Path(directory).parts[1:]
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                if name not in archive.getnames():
                    info = tarfile.TarInfo(name)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    archive.addfile(info)
        for path, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            archive.addfile(info, io.BytesIO(data))
    container.put_archive("/", buffer.getvalue())


def exec_checked(container: Container, command: list[str], what: str) -> str:
    """Run a command in a container; raise with its output when it fails."""
    result = container.exec_run(command, demux=False)
    output = (result.output or b"").decode(errors="replace")
    if result.exit_code != 0:
        raise RuntimeError(f"{what} failed in {container.name} (exit {result.exit_code}): {output.strip()[-300:]}")
    return output


def lab_containers(client: docker.DockerClient) -> list[Container]:
    return client.containers.list(all=True, filters={"label": f"{LABEL}=1"})


def remove_all(client: docker.DockerClient) -> list[str]:
    """Remove every lab container and network; return what was removed."""
    removed = []
    for container in lab_containers(client):
        container.remove(force=True)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": f"{LABEL}=1"}):
        network.remove()
        removed.append(f"network {network.name}")
    return removed
