"""What the gather phase reads of the backend host, as plain data that checks judge (filled by ``backend.reader``)."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from viworks_verify.backend.containers import ContainerFacts
from viworks_verify.backend.listeners import ListenerSnapshot, Process, TcpSocket
from viworks_verify.backend.nginx_config import Directive, NginxConfig
from viworks_verify.core.fact import Fact, facts_from_json, facts_to_json
from viworks_verify.core.file_facts import FileFacts, container_json, from_container_json

# The part of `docker inspect` the checks judge: never Config.Env (it carries the URLs' passwords).
INSPECT_KEEP = {
    "State": ("Status", "Running", "Restarting", "ExitCode", "StartedAt", "FinishedAt", "Health"),
    "Config": ("Image",),
}


def inspect_subset(attrs: dict[str, Any]) -> dict[str, Any]:
    state = {key: attrs.get("State", {}).get(key) for key in INSPECT_KEEP["State"]}
    if isinstance(state.get("Health"), dict):
        state["Health"] = {"Status": state["Health"].get("Status")}
    networks = attrs.get("NetworkSettings", {}).get("Networks") or {}
    return {
        "Name": str(attrs.get("Name", "")).lstrip("/"),
        "Image": attrs.get("Image"),
        "Config": {"Image": attrs.get("Config", {}).get("Image")},
        "State": state,
        "RestartCount": attrs.get("RestartCount", 0),
        "NetworkSettings": {
            "Networks": {
                name: {"IPAddress": info.get("IPAddress"), "Aliases": info.get("Aliases")}
                for name, info in networks.items()
            },
            "Ports": attrs.get("NetworkSettings", {}).get("Ports") or {},
        },
        "HostConfig": {"PortBindings": attrs.get("HostConfig", {}).get("PortBindings") or {}},
    }


@dataclasses.dataclass
class BackendSnapshot:
    """The backend host: its containers, inside the agent's container, nginx, the clock."""

    host: str  # local://backend-lab, ssh://backend-1
    name: str
    FACT_MAPS = ("containers",)
    kind: str = "backend"
    gathered_at: float = 0.0
    gather_ms: float = 0.0
    engine_offset_s: float = 0.0  # the engine's clock minus the runner's (container times are the engine's)
    connection: Fact = Fact()
    containers: dict = dataclasses.field(
        default_factory=dict
    )  # name -> Fact(inspect subset); problem: no such container
    clock_skew: Fact = Fact()
    agent_listeners: Fact = Fact()  # {"sockets": [...], "processes": [...]} from /proc in the agent container
    agent_files: Fact = Fact()  # {path: FileFacts fields} for the binary (with sha256) and the config (no content)
    agent_config: Fact = Fact()  # the configuration as the checks need it: ports, URLs masked, secrets hashed
    nginx: Fact = Fact()  # nginx -T, parsed: {"main_file", "files", "tree", "errors"}
    nginx_tls_files: Fact = Fact()  # {path: FileFacts fields}; certificates with content, keys stat only

    def to_json(self) -> dict[str, Any]:
        return facts_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackendSnapshot:
        return facts_from_json(cls, data)

    def container(self, name: str) -> ContainerFacts | None:
        fact = self.containers.get(name)
        return ContainerFacts(name, fact.value) if fact is not None and fact.ok else None

    def listener_snapshot(self) -> ListenerSnapshot:
        data = self.agent_listeners.value or {}
        sockets = tuple(
            TcpSocket(s["family"], ipaddress.ip_address(s["address"]), s["port"], s["state"], s["inode"])
            for s in data.get("sockets", [])
        )
        processes = tuple(
            Process(p["pid"], tuple(p["argv"]), frozenset(p["socket_inodes"]), p["fds_listed"])
            for p in data.get("processes", [])
        )
        return ListenerSnapshot(sockets, processes)

    def nginx_config(self) -> NginxConfig:
        data = self.nginx.value or {}
        tree = [directive_from_json(d) for d in data.get("tree", [])]
        return NginxConfig(
            files=dict.fromkeys(data.get("files", []), ""),
            main_file=data.get("main_file", ""),
            tree=tree,
            errors=list(data.get("errors", [])),
        )

    def tls_files(self) -> dict[str, FileFacts]:
        return file_facts_from_json(self.nginx_tls_files.value or {})


def file_facts_to_json(facts: dict[str, FileFacts]) -> dict[str, Any]:
    return {path: container_json(f) for path, f in facts.items()}


def file_facts_from_json(data: dict[str, Any]) -> dict[str, FileFacts]:
    return {path: from_container_json(item) for path, item in data.items()}


def directive_to_json(d: Directive) -> dict[str, Any]:
    item: dict[str, Any] = {"name": d.name, "args": list(d.args), "file": d.file, "line": d.line}
    if d.block is not None:
        item["block"] = [directive_to_json(child) for child in d.block]
    return item


def directive_from_json(data: dict[str, Any]) -> Directive:
    block = data.get("block")
    return Directive(
        name=data["name"],
        args=tuple(data["args"]),
        file=data["file"],
        line=data["line"],
        block=[directive_from_json(child) for child in block] if block is not None else None,
    )
