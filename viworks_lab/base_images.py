"""The lab's base images: one root filesystem per flavour from Debian packages, cached by a hash of its inputs.

``mmdebstrap`` writes the root filesystem from this machine's apt sources and ``docker import``
makes it an image, tagged with a hash of the suite, mmdebstrap's version, the sources and the
package list: a warm machine finds the tags and builds nothing. Standard library and the docker
CLI only, so that ``python3 -m viworks_lab.base_images`` can build them on a fresh machine while
the virtualenv is still being installed (``make smoke`` and ``make test`` do: the two are the cold
start's long poles, and they use different resources).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from viworks_lab.apt_sources import debian_source_lines
from viworks_lab.errors import LabError

SUITE = "bookworm"
LABEL = "viworks.lab"
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class BaseFlavour:
    name: str
    packages: tuple[str, ...]
    command: str


# The backend container is bare like production's: no ps, ss, netstat or curl in it.
APP = BaseFlavour(
    "app",
    (
        "python3",
        "python3-aiohttp",
        "python3-asyncpg",
        "python3-redis",
        "python3-jwt",
        "python3-cryptography",
        "ca-certificates",
    ),
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
        "systemd",
        "systemd-sysv",
        "dbus",
        "openssh-server",
        "sudo",
        "procps",
        "iproute2",
        "openssl",
        "ca-certificates",
        "python3",
        "python3-websockets",
        "python3-jwt",
        "python3-cryptography",
        # A stock gateway host's other services (the stock-gateway-host variant starts them; off otherwise).
        "systemd-resolved",
        "chrony",
        "fwknop-server",
    ),
    "/sbin/init",
)
FLAVOURS = (APP, SERVICES, GATEWAY_HOST)


def digest(*parts: bytes | str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def base_tag(flavour: BaseFlavour, sources: list[str], mmdebstrap_version: str) -> str:
    key = digest(SUITE, mmdebstrap_version, *sources, *sorted(flavour.packages), flavour.command)
    return f"viworks-lab/base-{flavour.name}:{key}"


def has_image(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _mmdebstrap_version() -> str:
    done = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True)
    return done.stdout.strip()


def ensure_mmdebstrap() -> str:
    version = _mmdebstrap_version() if shutil.which("mmdebstrap") else ""
    if version:
        return version
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(
            f"mmdebstrap is needed to build the lab images and could not be installed: {done.stderr.strip()[-300:]}"
        )
    return _mmdebstrap_version()


def build_base(flavour: BaseFlavour, tag: str, sources: list[str], log: Log) -> None:
    with tempfile.TemporaryDirectory(prefix=f"viworks-lab-{flavour.name}-") as workdir:
        rootfs = Path(workdir) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--format=tar",
            "--quiet",
            "--include=" + ",".join(flavour.packages),
            SUITE,
            str(rootfs),
            "-",
        ]
        done = subprocess.run(command, input="\n".join(sources) + "\n", capture_output=True, text=True)
        if done.returncode != 0:
            raise LabError(f"mmdebstrap failed for the {flavour.name} image: {done.stderr.strip()[-500:]}")
        # The docker CLI streams a large tarball to the engine reliably; the SDK's import does not.
        imported = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                f'CMD ["{flavour.command}"]',
                "--change",
                f"LABEL {LABEL}=1",
                str(rootfs),
                tag,
            ],
            capture_output=True,
            text=True,
        )
        if imported.returncode != 0:
            raise LabError(f"docker import failed for the {flavour.name} image: {imported.stderr.strip()[-300:]}")
    log(f"built {tag}")


def ensure_bases(log: Log = print) -> dict[str, str]:
    """Tag of each base flavour's image, building (in parallel) the ones not cached yet."""
    version = ensure_mmdebstrap()
    sources = debian_source_lines(SUITE)
    if not sources:
        raise LabError(
            f"no Debian {SUITE} source in this machine's apt configuration (/etc/apt): the lab builds from it"
        )
    tags = {flavour.name: base_tag(flavour, sources, version) for flavour in FLAVOURS}
    missing = [flavour for flavour in FLAVOURS if not has_image(tags[flavour.name])]
    if missing:
        log(f"building base images from Debian packages: {', '.join(f.name for f in missing)}")
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            for future in [pool.submit(build_base, f, tags[f.name], sources, log) for f in missing]:
                future.result()
    return tags


def prebuild() -> int:
    """Build the missing base images now if an engine answers; otherwise leave it to ``viworks-lab up``
    (which starts one). Never fails the caller: ``up`` builds again and reports any error itself."""

    def log(message: str) -> None:
        print(f"viworks-lab (prebuild): {message}", file=sys.stderr, flush=True)

    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        log("no Docker engine answers yet: viworks-lab up builds the base images")
        return 0
    try:
        ensure_bases(log)
    except LabError as exc:
        log(f"left to viworks-lab up: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(prebuild())
