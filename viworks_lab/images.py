"""Lab images, built from Debian packages and cached by a hash of their inputs.

Two layers: a *base* per flavour (``mmdebstrap`` writes a root filesystem from this machine's apt
sources, ``docker import`` makes it an image) and a *role* image (a small Dockerfile adding the
lab's own files). Both are tagged with the hash of what went into them, so a warm ``up`` finds
them and builds nothing; changing a package list or a file builds just what it affects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from viworks_lab.apt_sources import debian_source_lines
from viworks_lab.engine import LabError

SUITE = "bookworm"
LABEL = "viworks.lab"


@dataclasses.dataclass(frozen=True)
class BaseFlavour:
    name: str
    packages: tuple[str, ...]
    command: str


# The backend container is bare like production's: no ps, ss, netstat or curl in it.
APP = BaseFlavour(
    "app",
    ("python3", "python3-aiohttp", "python3-asyncpg", "python3-redis", "python3-jwt", "python3-cryptography", "ca-certificates"),
    "/bin/sh",
)
SERVICES = BaseFlavour(
    "services",
    ("nginx-light", "postgresql", "redis-server", "ca-certificates", "openssl", "procps", "iproute2"),
    "/bin/sh",
)
GATEWAY_HOST = BaseFlavour(
    "gateway-host",
    (
        "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "procps", "iproute2", "openssl",
        "ca-certificates", "python3", "python3-websockets", "python3-jwt", "python3-cryptography",
        # A stock gateway host's other services (the stock-gateway-host variant starts them; off otherwise).
        "systemd-resolved", "chrony", "fwknop-server",
    ),
    "/sbin/init",
)
FLAVOURS = (APP, SERVICES, GATEWAY_HOST)


@dataclasses.dataclass(frozen=True)
class RoleImage:
    """A Dockerfile over a base flavour plus the files it copies (name in the context -> bytes)."""

    name: str
    base: BaseFlavour
    dockerfile: str
    files: dict[str, bytes]


def _digest(*parts: bytes | str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def _mmdebstrap_version() -> str:
    done = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True)
    return done.stdout.strip()


def base_tag(flavour: BaseFlavour, sources: list[str], mmdebstrap_version: str) -> str:
    key = _digest(SUITE, mmdebstrap_version, *sources, *sorted(flavour.packages), flavour.command)
    return f"viworks-lab/base-{flavour.name}:{key}"


def role_tag(role: RoleImage, base: str) -> str:
    files = [part for name in sorted(role.files) for part in (name, role.files[name])]
    return f"viworks-lab/{role.name}:{_digest(base, role.dockerfile, *files)}"


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _ensure_mmdebstrap() -> str:
    version = _mmdebstrap_version() if shutil.which("mmdebstrap") else ""
    if version:
        return version
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"mmdebstrap is needed to build the lab images and could not be installed: {done.stderr.strip()[-300:]}")
    return _mmdebstrap_version()


def _build_base(client: docker.DockerClient, flavour: BaseFlavour, tag: str, sources: list[str], log) -> None:
    with tempfile.TemporaryDirectory(prefix=f"viworks-lab-{flavour.name}-") as workdir:
        rootfs = Path(workdir) / "rootfs.tar"
        command = [
            "mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar", "--quiet",
            "--include=" + ",".join(flavour.packages), SUITE, str(rootfs), "-",
        ]
        done = subprocess.run(command, input="\n".join(sources) + "\n", capture_output=True, text=True)
        if done.returncode != 0:
            raise LabError(f"mmdebstrap failed for the {flavour.name} image: {done.stderr.strip()[-500:]}")
        # The docker CLI streams a large tarball to the engine reliably; the SDK's import does not.
        imported = subprocess.run(
            ["docker", "import", "--change", f'CMD ["{flavour.command}"]', "--change", f"LABEL {LABEL}=1", str(rootfs), tag],
            capture_output=True, text=True,
        )
        if imported.returncode != 0:
            raise LabError(f"docker import failed for the {flavour.name} image: {imported.stderr.strip()[-300:]}")
    log(f"built {tag}")


def ensure_bases(client: docker.DockerClient, log=print) -> dict[str, str]:
    """Tag of each base flavour's image, building (in parallel) the ones not cached yet."""
    version = _ensure_mmdebstrap()
    sources = debian_source_lines(SUITE)
    if not sources:
        raise LabError(f"no Debian {SUITE} source in this machine's apt configuration (/etc/apt): the lab builds from it")
    tags = {flavour.name: base_tag(flavour, sources, version) for flavour in FLAVOURS}
    missing = [flavour for flavour in FLAVOURS if not _has_image(client, tags[flavour.name])]
    if missing:
        log(f"building base images from Debian packages: {', '.join(f.name for f in missing)}")
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            for future in [pool.submit(_build_base, client, f, tags[f.name], sources, log) for f in missing]:
                future.result()
    return tags


def ensure_role(client: docker.DockerClient, role: RoleImage, bases: dict[str, str], log=print) -> str:
    """Tag of the role image, built from its Dockerfile when not cached."""
    base = bases[role.base.name]
    tag = role_tag(role, base)
    if _has_image(client, tag):
        return tag
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data in {"Dockerfile": f"FROM {base}\n{role.dockerfile}".encode(), **role.files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, pull=False, labels={LABEL: "1"})
    except docker.errors.BuildError as exc:
        lines = "".join(str(item.get("stream", item.get("error", ""))) for item in exc.build_log)
        raise LabError(f"building the {role.name} image failed: {lines.strip()[-500:]}") from exc
    log(f"built {tag}")
    return tag
