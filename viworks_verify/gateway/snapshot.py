"""A gateway host's facts, declared once (filled by ``gateway.reader``, judged by ``tests_infra/gateway/``).

Each field is one fact with its value's type; the value types live beside the knowledge of them
(``systemd_unit``, ``config``, ``ss_listeners``, ``journal``, ``processes``, ``scripts_root``, ``artifacts``,
``core.file_facts``, ``pki.pem``) and say how they are saved and compared. A check reads a field:
``gateway_snapshot.process.require().exe``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed, key
from viworks_verify.core.clock import ClockSkew
from viworks_verify.core.fact import Fact
from viworks_verify.core.file_facts import FileTable
from viworks_verify.core.host_snapshot import HostSnapshot, fact
from viworks_verify.gateway.artifacts import Artifacts
from viworks_verify.gateway.config import AgentToml, EffectiveConfig, effective
from viworks_verify.gateway.journal import UnitJournal
from viworks_verify.gateway.processes import ProcessFacts
from viworks_verify.gateway.scripts_root import ScriptsRoot
from viworks_verify.gateway.ss_listeners import HostListeners
from viworks_verify.gateway.systemd_unit import UnitProperties
from viworks_verify.pki.pem import PemCertificates, TrustAnchors
from viworks_verify.target.settings import Gateway


@dataclasses.dataclass
class GatewaySnapshot(HostSnapshot):
    """A gateway host: its unit, the agent's configuration and identity files, process, listeners, journal."""

    KIND = "gateway"
    unit: Fact[UnitProperties] = fact("systemctl show of the agent's unit")
    env: Fact[dict[str, str]] = fact(
        "the agent's .env by key, secret values as their keyed hash", compared=False
    )  # compared as the effective config
    agent_toml: Fact[AgentToml] = fact("agent.toml in the unit's WorkingDirectory")
    clock_skew: Fact[ClockSkew] = fact("the host's clock against the runner's", path="clock_skew_s")
    listeners: Fact[HostListeners] = fact("ss -tulpn: every listening or bound socket and its processes")
    journal: Fact[UnitJournal] = fact("what the unit logged since its last start")
    process: Fact[ProcessFacts] = fact("the unit's main process")
    files: Fact[FileTable] = fact("stat of every file the agent needs")
    client_certificate: Fact[PemCertificates] = fact(
        "the client certificate file: the leaf, then any chain", path="certificate"
    )
    trust_bundle: Fact[TrustAnchors] = fact("the CA bundle the agent trusts the backend by", path="trust")
    client_key_spki: Fact[str] = fact(
        "base64 DER of the client key's public half (the key never leaves the host)", compared=False
    )
    scripts_root: Fact[ScriptsRoot] = fact("every entry of VIW_AGENT_SCRIPTS_ROOT", compared=False)
    artifacts: Fact[Artifacts] = fact(
        "sha256 of the program at ExecStart, the unit file and drop-ins, the scripts", compared=False
    )

    def effective_config(self, env_file: str) -> EffectiveConfig:
        """The agent's settings as it reads them: the .env over agent.toml's [outbound], each with its file."""
        toml = self.agent_toml.value if self.agent_toml.ok and self.agent_toml.value else None
        return effective(self.env.value or {}, env_file, toml.values if toml else None, toml.path if toml else None)

    def sha256_of(self, path: str) -> str | None:
        return self.artifacts.value.of(path) if self.artifacts.ok and self.artifacts.value else None

    # ------------------------------------------------------------------- canonical, across facts

    def canonical_across_facts(self) -> Canonical:
        yield from self._canonical_config()
        if self.artifacts.ok:
            yield from self._canonical_artifacts()
        else:
            yield "artifacts", Observed(f"unreadable: {self.artifacts.problem}")
        if self.scripts_root.ok:
            yield from self._canonical_scripts_root()
        else:
            yield "scripts_root", Observed(f"unreadable: {self.scripts_root.problem}")

    def _canonical_config(self) -> Canonical:
        """The effective configuration, each value and the file each comes from (.env, or agent.toml)."""
        if not (self.env.ok and self.agent_toml.ok):
            yield "config", Observed(f"unreadable: {self.env.problem or self.agent_toml.problem}")
            return
        config = self.effective_config(self._env_file())
        by_file: dict[str, list[str]] = {}
        for name, value in sorted(config.values.items()):
            yield f"config.{name}", Observed(value)
            by_file.setdefault(config.sources.get(name) or "?", []).append(name)
        for file, names in sorted(by_file.items()):
            yield f"config.{key('from', file)}", Observed(names)

    def _env_file(self) -> str:
        properties = self.unit.value.values if self.unit.ok and self.unit.value else {}
        first = (properties.get("EnvironmentFiles") or "").split(" (")[0].strip()
        return first or Gateway().env_file

    def _canonical_artifacts(self) -> Canonical:
        """The program at ExecStart as one fact (size and sha256, as the backend's binary), the unit file and
        its drop-ins by sha256. The scripts are the scripts root's."""
        artifacts: Artifacts = self.artifacts.value  # type: ignore[assignment]
        root = self.scripts_root.value.path if self.scripts_root.ok and self.scripts_root.value else None
        program = self.unit.value.exec_start_path if self.unit.ok and self.unit.value else None
        stats = self.files.value.stats if self.files.ok and self.files.value else {}
        for path in sorted(artifacts.sha256.keys() | artifacts.errors.keys()):
            if root and path.startswith(root.rstrip("/") + "/"):
                continue
            if path == program:
                size = stats[path].size if path in stats else None
                yield "binary", Observed({"path": path, "size": size, "sha256": artifacts.sha256.get(path)})
            elif path in artifacts.sha256:
                yield f"{key('files', path)}.sha256", Observed(artifacts.sha256[path])
            else:
                yield f"{key('files', path)}.sha256", Observed(f"unreadable: {artifacts.errors[path]}")

    def _canonical_scripts_root(self) -> Canonical:
        """Every entry of the scripts root (a stray file shows as added), each by kind, mode, owner and content."""
        root: ScriptsRoot = self.scripts_root.value  # type: ignore[assignment]
        yield "scripts_root.path", Observed(f"{root.path} ({root.state})" if root.path else root.state)
        yield "scripts_root.entries", Observed([entry.name for entry in root.entries])
        for entry in root.entries:
            prefix = key("scripts_root", entry.name)
            yield f"{prefix}.kind", Observed(entry.kind)
            yield f"{prefix}.mode", Observed(entry.octal)
            yield f"{prefix}.owner", Observed(entry.user)
            if entry.kind == "regular file":
                content: dict[str, Any] = {
                    "size": entry.size,
                    "sha256": self.sha256_of(f"{root.path.rstrip('/')}/{entry.name}"),
                }
                yield f"{prefix}.content", Observed(content)
