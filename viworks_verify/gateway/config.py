"""The gateway agent's effective configuration: its ``agent.toml`` with the ``.env`` over ``[outbound]``.

The production agent reads ``agent.toml`` in the unit's WorkingDirectory (every section required)
and the ``VIW_AGENT_*`` variables of the unit's EnvironmentFile override its ``[outbound]`` keys one
by one. A deployment with only the ``.env`` is the contract's reference form. Checks judge the
effective value and name the file it came from. Sans-I/O: parsed files in, values and sources out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed
from viworks_verify.core.host_snapshot import Record

SECTIONS = ("agent", "security", "scripts", "monitoring", "containers", "outbound")
# VIW_AGENT_* variable -> the [outbound] key it overrides.
OUTBOUND_KEYS = {
    "VIW_AGENT_BACKEND_URL": "backend_url",
    "VIW_AGENT_ID": "agent_id",
    "VIW_AGENT_CERT_PATH": "cert_path",
    "VIW_AGENT_KEY_PATH": "key_path",
    "VIW_AGENT_TRUST_BUNDLE": "trust_bundle",
    "VIW_AGENT_BACKEND_SPKI_PIN": "backend_spki_pin",
    "VIW_AGENT_FEATURE_INBOUND_HTTP": "feature_inbound_http",
    "VIW_AGENT_FEATURE_EXEC_ENABLE": "feature_exec_enable",
    "VIW_AGENT_SCRIPTS_ROOT": "scripts_root",
    "VIW_AGENT_MAX_CONCURRENCY": "max_concurrency",
    "VIW_AGENT_CMD_TIMEOUT_SECS": "cmd_timeout_secs",
    "VIW_AGENT_SITE": "site",
    "VIW_AGENT_CONTAINER_ENGINE": "container_engine",
}


@dataclasses.dataclass(frozen=True)
class AgentToml(Record):
    """``agent.toml`` in the unit's WorkingDirectory as a snapshot's fact: absent is a fact, not a problem."""

    path: str
    present: bool
    values: dict[str, Any] | None = None  # as parsed, secret-named values as their keyed hash

    def canonical(self, path: str) -> Canonical:
        yield f"{path}.present", Observed(self.present)  # its values are compared as the effective config


@dataclasses.dataclass(frozen=True)
class EffectiveConfig:
    """Values by their ``VIW_AGENT_*`` name, each with the file it came from."""

    values: dict[str, str]
    sources: dict[str, str]

    def source(self, key: str, default: str) -> str:
        return self.sources.get(key, default)


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def effective(
    env: Mapping[str, str], env_file: str, toml: Mapping[str, Any] | None, toml_file: str | None
) -> EffectiveConfig:
    """The ``.env``'s values over ``agent.toml``'s ``[outbound]`` (absent file: the ``.env`` alone)."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    outbound = (toml or {}).get("outbound") or {}
    for variable, key in OUTBOUND_KEYS.items():
        if key in outbound and toml_file:
            values[variable], sources[variable] = _as_text(outbound[key]), f"{toml_file} [outbound] {key}"
    for variable, value in env.items():
        values[variable], sources[variable] = value, env_file
    return EffectiveConfig(values, sources)


def missing_sections(toml: Mapping[str, Any]) -> list[str]:
    return [section for section in SECTIONS if not isinstance(toml.get(section), Mapping)]
