"""Lab images: the base flavours (``base_images``) and, over them, a *role* image per part of the lab.

A role image is a small Dockerfile adding the lab's own files to a base, tagged with the hash of
what went into it, so a warm ``up`` finds it and builds nothing; changing a file builds just what
it affects.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile

import docker

from viworks_lab.base_images import APP, FLAVOURS, GATEWAY_HOST, LABEL, SERVICES, BaseFlavour, digest
from viworks_lab.base_images import ensure_bases as _ensure_bases
from viworks_lab.engine import LabError

__all__ = ["APP", "FLAVOURS", "GATEWAY_HOST", "LABEL", "SERVICES", "RoleImage", "ensure_bases", "ensure_role"]


@dataclasses.dataclass(frozen=True)
class RoleImage:
    """A Dockerfile over a base flavour plus the files it copies (name in the context -> bytes)."""

    name: str
    base: BaseFlavour
    dockerfile: str
    files: dict[str, bytes]


def role_tag(role: RoleImage, base: str) -> str:
    files = [part for name in sorted(role.files) for part in (name, role.files[name])]
    return f"viworks-lab/{role.name}:{digest(base, role.dockerfile, *files)}"


def ensure_bases(client: docker.DockerClient, log=print) -> dict[str, str]:
    """Tag of each base flavour's image, building the missing ones (see ``base_images``)."""
    return _ensure_bases(log)


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


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
