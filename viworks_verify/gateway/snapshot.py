"""What the gather phase reads of a gateway host, as plain data that checks judge (filled by ``gateway.reader``).

Each field is a ``Fact``; the comment beside it gives its value's shape, and the typed views that checks use
(``UnitProperties``, ``FileTable``, ...) are rebuilt from the plain data by the accessors here.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from cryptography import x509

from viworks_verify.core.fact import Fact, facts_from_json, facts_to_json
from viworks_verify.core.file_facts import FileTable, from_stat_json
from viworks_verify.gateway.config import EffectiveConfig, effective
from viworks_verify.gateway.processes import ProcessFacts
from viworks_verify.gateway.scripts_root import Entry as ScriptsRootEntry
from viworks_verify.gateway.ss_listeners import Listener as HostListener
from viworks_verify.gateway.systemd_unit import UnitProperties
from viworks_verify.pki import certs


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
        return facts_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GatewaySnapshot:
        return facts_from_json(cls, data)

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
