"""Snapshots: what the gather phase read of each host, as plain data that checks judge.

A snapshot is JSON-serializable and holds no secret value: secrets appear as a keyed hash
(``secret_hash``), so two snapshots of one deployment compare equal without revealing anything.
Each fact is a ``Fact``: its value, or the one-line problem (host first) that kept it from being
read. The typed views that checks use (``UnitProperties``, ``FileTable``, ``NginxConfig``, ...)
are rebuilt from the plain data by the accessors here, never by reading a host again.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import secrets as _random
from pathlib import Path
from typing import Any, Generic, TypeVar

from cryptography import x509

from viworks_verify.backend.containers import ContainerFacts
from viworks_verify.backend.listeners import ListenerSnapshot, Process, TcpSocket
from viworks_verify.backend.nginx_config import Directive, NginxConfig
from viworks_verify.gateway.config import EffectiveConfig, effective
from viworks_verify.gateway.processes import ProcessFacts
from viworks_verify.gateway.scripts_root import Entry as ScriptsRootEntry
from viworks_verify.gateway.ss_listeners import Listener as HostListener
from viworks_verify.gateway.systemd_unit import UnitProperties
from viworks_verify.gather.file_facts import FileFacts, FileTable, container_json, from_container_json, from_stat_json
from viworks_verify.pki import certs

FORMAT = "viworks-snapshot/1"
T = TypeVar("T")


class SnapshotFormatError(ValueError):
    """A file that is not a snapshot this version reads; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Fact(Generic[T]):
    """A fact read from a host, or why it could not be read."""

    value: T | None = None
    problem: str | None = None

    @classmethod
    def failed(cls, problem: str) -> Fact[T]:
        return cls(None, problem)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem} if self.problem is not None else {"value": self.value}

    @classmethod
    def from_json(cls, data: Any) -> Fact[Any]:
        if not isinstance(data, dict) or not ({"value", "problem"} & data.keys()):
            return cls(None, "not recorded in this snapshot")
        return cls(data.get("value"), data.get("problem"))


class SecretHasher:
    """A keyed hash of secret values: equal secrets compare equal, the value cannot be recovered."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or _random.token_bytes(32)

    def __call__(self, value: str) -> str:
        return "hmac-sha256:" + hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]

    @property
    def key_id(self) -> str:
        """Names the key without revealing it: two snapshots' secret hashes compare only when their key ids match."""
        return hmac.new(self.key, b"viworks-snapshot-key-id", hashlib.sha256).hexdigest()[:16]


def _facts_to_json(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, Fact):
            out[field.name] = value.to_json()
        elif field.name in getattr(obj, "FACT_MAPS", ()):
            out[field.name] = {key: fact.to_json() for key, fact in value.items()}
        else:
            out[field.name] = value
    return out


def _facts_from_json(cls, data: dict[str, Any]):
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        raw = data.get(field.name)
        if field.type == "Fact":
            values[field.name] = Fact.from_json(raw)
        elif field.name in getattr(cls, "FACT_MAPS", ()):
            values[field.name] = {key: Fact.from_json(item) for key, item in (raw or {}).items()}
        elif raw is not None:
            values[field.name] = raw
    return cls(**values)


# ------------------------------------------------------------------------------------ gateway


@dataclasses.dataclass
class GatewaySnapshot:
    """A gateway host: its unit, the agent's .env, identity files, process, listeners, journal, clock."""

    host: str  # how checks name it: ssh://gw-lab-01
    name: str
    kind: str = "gateway"
    gathered_at: float = 0.0  # runner's epoch when the reads began
    gather_ms: float = 0.0
    connection: Fact = Fact()  # a problem: unreachable, nothing else could be read
    unit: Fact = Fact()  # systemctl show: {property: value}
    env: Fact = Fact()  # the .env: {key: value}, secret values as their keyed hash
    agent_toml: Fact = Fact()  # agent.toml in the WorkingDirectory: {"path", "present", "values"} (secrets hashed)
    clock_skew: Fact = Fact()  # {"seconds", "uncertainty"} against the runner
    listeners: Fact = Fact()  # ss -tulpn: [{"proto", "address", "port", "processes": [[name, pid]]}]
    journal: Fact = Fact()  # {"connected": line or None, "quote": line or None} since the unit's last start
    process: Fact = Fact()  # the unit's MainPID: ProcessFacts fields
    files: Fact = Fact()  # stat of every required file: {"stats": {path: {...}}, "errors": {path: reason}}
    client_certificate: Fact = Fact()  # PEM text
    trust_bundle: Fact = Fact()  # [PEM text]
    client_key_spki: Fact = Fact()  # base64 DER of the key's public half (the key never leaves the host)
    scripts_root: Fact = Fact()  # {"path", "state": directory|missing|unset, "entries": [Entry fields]}
    artifacts: Fact = Fact()  # sha256 of the release artifacts: {"sha256": {path: hex}, "errors": {path: reason}}

    def to_json(self) -> dict[str, Any]:
        return _facts_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GatewaySnapshot:
        return _facts_from_json(cls, data)

    def scripts_root_entries(self) -> list[ScriptsRootEntry]:
        return [ScriptsRootEntry.from_json(item) for item in (self.scripts_root.value or {}).get("entries", [])]

    def sha256_of(self, path: str) -> str | None:
        return ((self.artifacts.value or {}).get("sha256") or {}).get(path)

    # Typed views for the checks --------------------------------------------------------------

    def effective_config(self, env_file: str) -> EffectiveConfig:
        """The agent's settings as it reads them: the .env over agent.toml's [outbound], each with its file."""
        toml = self.agent_toml.value if self.agent_toml.ok and self.agent_toml.value else {}
        return effective(self.env.value or {}, env_file, toml.get("values"), toml.get("path"))

    def unit_properties(self, unit: str) -> UnitProperties:
        return UnitProperties(unit, dict(self.unit.value or {}))

    def file_table(self) -> FileTable:
        data = self.files.value or {}
        return FileTable(
            {path: from_stat_json(stat) for path, stat in data.get("stats", {}).items()}, dict(data.get("errors", {}))
        )

    def host_listeners(self) -> list[HostListener]:
        return [
            HostListener(x["proto"], x["address"], int(x["port"]), tuple((n, int(p)) for n, p in x["processes"]))
            for x in self.listeners.value or []
        ]

    def process_facts(self) -> ProcessFacts:
        data = dict(self.process.value or {})
        data["argv"] = tuple(data.get("argv", ()))
        return ProcessFacts(**data)

    def certificate(self) -> x509.Certificate:
        return certs.load_pem_certificates(self.client_certificate.value.encode())[0]

    def certificate_intermediates(self) -> list[x509.Certificate]:
        """The CA certificates the client certificate file carries after the leaf (sent with it in TLS)."""
        return certs.load_pem_certificates(self.client_certificate.value.encode())[1:]

    def trust_anchors(self) -> list[x509.Certificate]:
        return [c for pem in self.trust_bundle.value or [] for c in certs.load_pem_certificates(pem.encode())]

    def key_spki(self) -> bytes:
        return base64.b64decode(self.client_key_spki.value)


# ------------------------------------------------------------------------------------ backend

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
        return _facts_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackendSnapshot:
        return _facts_from_json(cls, data)

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


# --------------------------------------------------------------------------------------- edge


@dataclasses.dataclass
class EdgeSnapshot:
    """The TLS edge as a client sees it: the served certificate, whether it verifies, the protocol floor."""

    host: str  # https://agent.example.com
    domain: str
    kind: str = "edge"
    gathered_at: float = 0.0
    gather_ms: float = 0.0
    connection: Fact = Fact()
    served_leaf: Fact = Fact()  # PEM of the leaf certificate served for the domain
    served_chain: Fact = Fact()  # [PEM]: the certificates served after the leaf (intermediates), in the order sent
    verification: Fact = Fact()  # {"verified": bool, "trust": what it was checked against, "problem": str|None}
    tls_floor: Fact = Fact()  # {"TLSv1": "refused" | "negotiated TLSv1" ..., "TLSv1_1": ...}

    def to_json(self) -> dict[str, Any]:
        return _facts_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EdgeSnapshot:
        return _facts_from_json(cls, data)

    def leaf(self) -> x509.Certificate:
        return certs.load_pem_certificates(self.served_leaf.value.encode())[0]

    def intermediates(self) -> list[x509.Certificate]:
        return [c for pem in self.served_chain.value or [] for c in certs.load_pem_certificates(pem.encode())]


# ----------------------------------------------------------------------------------- the run

Snapshot = GatewaySnapshot | BackendSnapshot | EdgeSnapshot
_KINDS = {"gateway": GatewaySnapshot, "backend": BackendSnapshot, "edge": EdgeSnapshot}


def host_snapshot_from_json(data: Any, source: str = "snapshot") -> Snapshot:
    """One host's snapshot from its JSON, whatever its kind."""
    kind = _KINDS.get(data.get("kind")) if isinstance(data, dict) else None
    if kind is None:
        raise SnapshotFormatError(
            f"{source}: a host of unknown kind {data.get('kind') if isinstance(data, dict) else data!r}"
        )
    return kind.from_json(data)


@dataclasses.dataclass
class RunSnapshot:
    """Every host of a target as one run gathered them."""

    target: str
    taken_at: float
    hosts: list = dataclasses.field(default_factory=list)  # [Snapshot]
    secret_key_id: str = ""  # SecretHasher.key_id of the hashes in it ("": not recorded)

    def of_kind(self, kind: str) -> list[Snapshot]:
        return [h for h in self.hosts if h.kind == kind]

    def by_host(self, host_id: str) -> Snapshot | None:
        return next((h for h in self.hosts if h.host == host_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": self.target,
            "taken_at": self.taken_at,
            "secret_key_id": self.secret_key_id,
            "hosts": [h.to_json() for h in self.hosts],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, data: Any, source: str = "snapshot") -> RunSnapshot:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SnapshotFormatError(f"{source}: not a {FORMAT} snapshot (format: {found!r})")
        try:
            hosts = [host_snapshot_from_json(item, source) for item in data.get("hosts", [])]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SnapshotFormatError):
                raise
            raise SnapshotFormatError(
                f"{source}: a host entry is not a snapshot ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        return cls(
            str(data.get("target", "")), float(data.get("taken_at", 0.0)), hosts, str(data.get("secret_key_id") or "")
        )

    @classmethod
    def load(cls, path: Path) -> RunSnapshot:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SnapshotFormatError(f"{path}: no such snapshot file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SnapshotFormatError(f"{path}: not a JSON snapshot ({type(exc).__name__}: {str(exc)[:120]})") from None
        return cls.from_json(data, str(path))
