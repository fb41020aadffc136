"""Release builds of the reference agents: single-file zipapps, like the production binaries.

Reproducible (fixed timestamps and order), so a build's sha256 and size identify its sources,
which is what the suite's "deployed binary matches the expected release" check relies on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

from viworks_lab.layout import FIXTURES, GATEWAY_UNIT, REPO_ROOT
from viworks_lab.source_imports import imports_of

SHEBANG = b"#!/usr/bin/python3\n"
OWN_PACKAGES = ("viworks_verify", "viworks_lab")


def agent_sources(agent: str) -> tuple[str, ...]:
    """The repository files the ``agent`` zipapp needs: its package and, transitively, every module of
    ours it imports (with their packages' ``__init__``), found from the import statements, so moving
    a helper cannot leave the binary without it."""
    wanted = [
        f"viworks_lab.agents.{agent}." + path.stem
        for path in sorted((REPO_ROOT / "viworks_lab/agents" / agent).glob("*.py"))
    ]
    found: set[str] = set()
    while wanted:
        module = wanted.pop().removesuffix(".__init__")
        path = _module_file(module)
        if path is None or path in found:
            continue
        found.add(path)
        parts = module.split(".")
        wanted += [".".join(parts[:depth]) for depth in range(1, len(parts))]  # the packages around it
        wanted += sorted(imports_of(REPO_ROOT / path, module))
    return tuple(sorted(found))


def _module_file(module: str) -> str | None:
    if module.split(".")[0] not in OWN_PACKAGES:
        return None
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (REPO_ROOT / candidate).is_file():
            return candidate
    return None


AGENT_SOURCES = {agent: agent_sources(agent) for agent in ("backend", "gateway")}


@dataclasses.dataclass(frozen=True)
class Build:
    agent: str
    data: bytes
    version: str | None = None  # what the binary says it is (``--version``), when known

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


def build_agent(agent: str, build_note: str | None = None) -> Build:
    """The zipapp for ``agent``; a ``build_note`` makes a different build of the same code (drift)."""
    members = {path: (REPO_ROOT / path).read_bytes() for path in AGENT_SOURCES[agent]}
    members["__main__.py"] = f"from viworks_lab.agents.{agent} import main\n\nmain()\n".encode()
    if build_note:
        members["BUILD_NOTE"] = build_note.encode()
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, members[name])
    return Build(agent, buffer.getvalue())


def gateway_artifacts() -> dict[str, object]:
    """The gateway's other release artifacts, by sha256: the scripts and the unit file the lab deploys."""
    scripts = {
        script.name: hashlib.sha256(script.read_bytes()).hexdigest()
        for script in sorted((FIXTURES / "gateway" / "scripts").glob("*.sh"))
    }
    unit = hashlib.sha256((FIXTURES / "gateway" / GATEWAY_UNIT).read_bytes()).hexdigest()
    return {"scripts": scripts, "unit_sha256": unit}


def write_manifest(path: Path, version: str | None, builds: list[Build]) -> None:
    """The release manifest a deploy pipeline would publish: what it built, by sha256 and size (and the
    version each build says it is, else ``version``), and the gateway's scripts and unit file by sha256."""
    manifest = {
        build.agent: {"version": build.version or version, "sha256": build.sha256, "size": build.size}
        for build in builds
    }
    if "gateway" in manifest:
        manifest["gateway"].update(gateway_artifacts())
    path.write_text(json.dumps(manifest, indent=2) + "\n")
