"""A target's settings: one TOML file per environment, validated once into a typed model.

Every default is the contract's, so a production file holds only what differs. Relative paths
are resolved against the file that names them. ``include`` merges other files first (the lab's
committed target includes the values its ``up`` generates: the pin and the release manifest).
Unknown or mistyped keys are errors that name the key: a typo must not silently fall back to a
default.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from viworks_verify.pki.pins import PinFormatError, parse_pins
from viworks_verify.target.declared_listeners import Declared

REQUIRED_ENV_KEYS = (
    "VIW_AGENT_BACKEND_URL",
    "VIW_AGENT_ID",
    "VIW_AGENT_CERT_PATH",
    "VIW_AGENT_KEY_PATH",
    "VIW_AGENT_TRUST_BUNDLE",
    "VIW_AGENT_BACKEND_SPKI_PIN",
    "VIW_AGENT_SITE",
    "VIW_AGENT_CONTAINER_ENGINE",
    "VIW_AGENT_SCRIPTS_ROOT",
    "VIW_AGENT_MAX_CONCURRENCY",
    "VIW_AGENT_CMD_TIMEOUT_SECS",
    "VIW_AGENT_FEATURE_EXEC_ENABLE",
    "VIW_AGENT_FEATURE_INBOUND_HTTP",
    "RUST_LOG",
)


class SettingsError(Exception):
    """A target that cannot be used as given; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Edge(_Section):
    """The TLS edge (nginx) on the agent domain, as agents and API clients reach it."""

    domain: str  # the agent domain (agent.example.com): no default, a target must name its own
    connect_address: str | None = None  # like curl --resolve: reach this address, speak as `domain`
    https_port: int = 443
    http_port: int = 80
    ws_path: str = "/ws/agent"
    ca_bundle: Path | None = None  # None: the system trust store
    spki_pins: str | None = None  # primary[,backup], bare or sha256/
    cert_warn_days: int = 30
    cert_fail_days: int = 7
    health_slo_ms: float = 100.0

    @field_validator("spki_pins")
    @classmethod
    def _pins_well_formed(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_pins(value)
            except PinFormatError as exc:
                raise ValueError(str(exc)) from None
        return value


class Backend(_Section):
    """The backend host's containers and what is inside the backend agent's."""

    agent_container: str = "viworks-backend-agent-new"
    nginx_container: str = "viworks-nginx"
    postgres_container: str = "viworks-postgres"
    redis_container: str = "viworks-redis"
    networks: tuple[str, ...] = ("viworks-internal", "viworks-public")  # the agent's: exactly these
    internal_networks: tuple[str, ...] = ("viworks-internal",)  # Postgres' and Redis': exactly these
    edge_networks: tuple[str, ...] = ("viworks-public",)  # nginx's, besides those it shares with the agent
    api_port: int = 8080
    ws_port: int = 8081
    # Exposure: the agent's ports, Postgres' and Redis' are published on no host address; a target may
    # allow loopback-only publishing (host-local tooling), explicitly.
    allow_loopback_publishing: bool = False
    # Addresses of the backend host the outside can reach, probed for the agent's ports; empty: the edge's.
    public_addresses: tuple[str, ...] = ()
    # The request headers in which nginx passes the verified client identity to the agent.
    identity_headers: tuple[str, ...] = ("X-Client-CN", "X-Client-Verify")
    binary_path: str = "/app/viworks-backend-agent"
    config_path: str = "/app/config/backend-agent.toml"
    database_host: str = "viworks-postgres"
    redis_host: str = "viworks-redis"
    # None: the local engine for a local host; for an SSH host, its engine's socket forwarded over the
    # host's own SSH connection (the inventory's user, port, key and ssh config). Or any Docker URL.
    docker_url: str | None = None
    docker_socket: str = "/var/run/docker.sock"  # the engine's socket on an SSH backend host
    max_restarts: int = 3
    restart_window_s: float = 30.0  # a container restarted less than this ago must stay up this long
    ws_min_read_timeout_s: float = 300.0  # nginx proxy_read_timeout on the agent WebSocket path, at least


class Gateway(_Section):
    """Gateway hosts (systemd, reached over SSH) and the agent deployed on each."""

    agent_ids: tuple[str, ...] = ()  # empty: the inventory names of the gateway group
    unit: str = "viworks-gateway-agent.service"
    working_directory: str = "/opt/viworks/agent"
    env_file: str = "/opt/viworks/agent/.env"
    binary_path: str = "/opt/viworks/viworks-gateway-agent"
    required_env_keys: tuple[str, ...] = REQUIRED_ENV_KEYS
    # Keys the agent reads besides the required ones (a key it does not know is ignored silently: a
    # typo like VIW_AGENT_BACKEND_ULR is a finding). The contract's keys are known; declare your agent's others.
    extra_env_keys: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ("add_user.sh", "delete_user.sh", "add_vpn_user.sh", "delete_vpn_user.sh")
    # Entries the scripts root may hold besides `scripts` (the agent runs what lies there as root).
    scripts_root_may_hold: tuple[str, ...] = ()
    # Drop-ins that may change the unit (`systemctl show -p DropInPaths`); any other is a finding.
    allowed_unit_drop_ins: tuple[str, ...] = ()
    expect_inbound_http: bool = False
    expect_exec_enabled: bool = True
    # The line the agent logs once the backend welcomed it (a regex; the agent's own words, which the
    # contract does not fix). Unset: the connected-session check fails asking for it.
    connected_log_pattern: str | None = None
    max_restarts: int = 3
    telemetry_max_age_s: float = 90.0
    # The listeners a gateway host may have, PROCESS[:PORT[/tcp|udp]] ("sshd:22/tcp", "systemd-resolve:53",
    # "vpnserver:1194/udp"); any other is a finding. The agent itself listens on nothing (outbound only).
    allowed_listeners: tuple[str, ...] = ("sshd:22/tcp",)
    # Sockets a container engine, not the host, holds in the host's network namespace: ignored when no
    # host process owns them (the lab's gateway host is a container: Docker's DNS on 127.0.0.11).
    engine_listen_addresses: tuple[str, ...] = ()

    @field_validator("allowed_listeners")
    @classmethod
    def _listeners_well_formed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            Declared.parse(text)  # a ValueError names the entry
        return value


class GatewayRelease(_Section):
    """The gateway agent's release artifacts: the program at ExecStart, the scripts, the unit file."""

    version: str | None = None
    sha256: str | None = None
    size: int | None = None
    size_min: int | None = None
    size_max: int | None = None
    scripts: dict[str, str] = Field(default_factory=dict)  # script name -> sha256
    unit_sha256: str | None = None


class Release(_Section):
    """The build that should be deployed: from the deploy pipeline's manifest or given here. The
    top-level keys are the backend agent's binary (as before); ``[release.gateway]`` the gateway's."""

    version: str | None = None
    sha256: str | None = None
    size: int | None = None  # exact size in bytes, when the manifest or the target gives it
    size_min: int | None = None
    size_max: int | None = None
    gateway: GatewayRelease = Field(default_factory=GatewayRelease)


class Probe(_Section):
    """The suite's own synthetic agent (a dedicated identity, never a real gateway's)."""

    agent_id: str = "suite-probe-01"
    client_cert: Path | None = None
    command_signing_key: Path | None = None  # the backend's Ed25519 public key (PEM): COMMAND signatures


class Timing(_Section):
    ready_timeout_s: float = 60.0
    clock_skew_max_s: float = 30.0
    command_roundtrip_goal_s: float = 2.0
    connect_timeout_s: float = 5.0
    # At most this many hosts are read at once (``--max-connections``); the rest queue. 10 is where sshd's
    # default MaxStartups (10:30:100) starts dropping unauthenticated connections: a bastion in front of
    # every gateway refuses none of the gate's.
    max_connections: int = Field(10, ge=1)


class Drift(_Section):
    """Gating on drift since a baseline snapshot (``--baseline``): which drifted facts fail the gate."""

    # Drift paths (or parts of them) that fail the gate: "binary", "networks", "unit.Restart", "gw-*.config".
    fail_on: tuple[str, ...] = ()
    # Drift paths left out of the report and the gate (known, accepted differences).
    ignore: tuple[str, ...] = ()


class Settings(_Section):
    name: str
    source: Path
    inventory: Path = Path("hosts.ini")
    ssh_config: Path | None = None
    # The jump host every ssh host is reached through (``ssh -J``: [user@]host[:port]), as operators reach
    # production's gateways through a bastion; an inventory host's own ProxyJump (ansible_ssh_common_args) wins.
    ssh_proxy_jump: str | None = None
    secrets_file: Path | None = None
    release_manifest: Path | None = None
    # Added to the error when an included file or the manifest is missing (the lab: "run viworks-lab up").
    missing_file_hint: str | None = None
    edge: Edge  # required: at least the agent domain
    backend: Backend = Field(default_factory=Backend)
    gateway: Gateway = Field(default_factory=Gateway)
    release: Release = Field(default_factory=Release)
    probe: Probe = Field(default_factory=Probe)
    timing: Timing = Field(default_factory=Timing)
    drift: Drift = Field(default_factory=Drift)
    # Known failures accepted until a date (see viworks_verify.report.waivers);
    # None: waivers.toml beside this file, if any.
    waivers: Path | None = None


_PATH_KEYS = {
    (): ("inventory", "ssh_config", "secrets_file", "release_manifest", "waivers"),
    ("edge",): ("ca_bundle",),
    ("probe",): ("client_cert", "command_signing_key"),
}


def load_settings(
    target: str, targets_dir: Path, ready_timeout_s: float | None = None, max_connections: int | None = None
) -> Settings:
    """Settings for ``target``: a name (``targets/<name>.toml``) or a path to a TOML file.

    ``ready_timeout_s`` (``--ready-timeout``) and ``max_connections`` (``--max-connections``) override the
    target's own.
    """
    path = Path(target)
    if path.suffix != ".toml":
        path = targets_dir / f"{target}.toml"
        if not path.exists():
            known = sorted(p.stem for p in targets_dir.glob("*.toml"))
            raise SettingsError(f"unknown target {target!r}: no {path} (known: {', '.join(known) or 'none'})")
    data = _read_with_includes(path.resolve(), seen=())
    data.setdefault("name", path.stem)
    data["source"] = path.resolve()
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise SettingsError(f"{path}: {key}: {first['msg']}") from None
    if settings.edge.ca_bundle is not None and not settings.edge.ca_bundle.is_file():
        # The chain is judged against it: a missing bundle must not turn into "judged against nothing".
        raise SettingsError(
            f"{path}: edge.ca_bundle {settings.edge.ca_bundle} does not exist{_hinted(settings.missing_file_hint)}"
        )
    overrides = {
        key: value
        for key, value in (("ready_timeout_s", ready_timeout_s), ("max_connections", max_connections))
        if value is not None
    }
    if overrides:
        try:
            timing = Timing.model_validate({**settings.timing.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SettingsError(
                f"--{str(first['loc'][0]).removesuffix('_s').replace('_', '-')}: {first['msg']}"
            ) from None
        settings = settings.model_copy(update={"timing": timing})
    return _with_manifest(settings)


def read_toml(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A TOML file's tables; ``error`` with one line naming the file when it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def _read_with_includes(path: Path, seen: tuple[Path, ...], hint: str = "") -> dict[str, Any]:
    """The file's settings over those of the files it includes; a missing include is an error, never
    an empty file (a target that silently lost its pins or inventory would pass by omission)."""
    if path in seen:
        raise SettingsError(f"{path}: include loop")
    data = read_toml(path, "settings file", SettingsError)
    _resolve_paths(data, path.parent)
    hint = data.get("missing_file_hint", hint)
    merged: dict[str, Any] = {}
    for include in data.pop("include", []):
        included = (path.parent / include).resolve()
        if not included.exists():
            raise SettingsError(f"{path}: include {include} ({included}) does not exist{_hinted(hint)}")
        _merge(merged, _read_with_includes(included, (*seen, path), hint))
    _merge(merged, data)
    return merged


def _hinted(hint: str | None) -> str:
    return f"; {hint}" if hint else ""


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for section, keys in _PATH_KEYS.items():
        table = data
        for part in section:
            table = table.get(part, {}) if isinstance(table, dict) else {}
        for key in keys:
            if isinstance(table, dict) and isinstance(table.get(key), str):
                table[key] = str((base / table[key]).resolve())


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _with_manifest(settings: Settings) -> Settings:
    """Fill the expected release from the deploy pipeline's manifest where the file does not say."""
    if settings.release_manifest is None:
        return settings
    if not settings.release_manifest.exists():
        raise SettingsError(
            f"{settings.source}: release_manifest {settings.release_manifest} does not exist"
            f"{_hinted(settings.missing_file_hint)}"
        )
    try:
        manifest = json.loads(settings.release_manifest.read_text())
        backend, gateway = manifest["backend"], manifest.get("gateway") or {}
        if not isinstance(backend, dict) or not isinstance(gateway, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise SettingsError(f"{settings.release_manifest}: not a release manifest with a 'backend' entry") from None
    given = settings.release.model_dump(exclude_none=True, exclude={"gateway"})
    given_gateway = settings.release.gateway.model_dump(exclude_none=True, exclude_defaults=True)
    from_manifest = {
        key: gateway[key]
        for key in ("version", "sha256", "size", "scripts", "unit_sha256")
        if gateway.get(key) is not None
    }
    try:
        release = Release.model_validate(
            {
                "version": backend.get("version"),
                "sha256": backend.get("sha256"),
                "size": backend.get("size"),
                **given,
                "gateway": {**from_manifest, **given_gateway},
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SettingsError(
            f"{settings.release_manifest}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        ) from None
    return settings.model_copy(update={"release": release})
