"""The agent's configuration: the .env (and agent.toml) read into a validated ``Config``; the constants."""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from viworks_lab.agents.log_levels import LOG_LEVELS
from viworks_verify.pki import pins

log = logging.getLogger("viworks-gateway-agent")

DEFAULT_VERSION = "1.4.2-lab"
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SECRET_ARG_NAMES = frozenset({"password", "userpass", "key", "hmac_key", "bootstrap_token"})
REDACTED = "[REDACTED]"
SCRIPT_VERBS: dict[str, str] = {
    "create_panel_user": "add_user.sh",
    "delete_user": "delete_user.sh",
    "create_openvpn_user": "add_vpn_user.sh",
}
WATCHED_SERVICES = ("sshd", "viworks-gateway-agent")
RESULT_CACHE_TTL_S = 600.0
RESULT_CACHE_MAX = 1024
WELCOME_TIMEOUT_S = 15.0
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 3.0
DEAD_LINK_S = 45.0
STDOUT_LIMIT = 256 * 1024
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A missing or malformed variable: exit code 2."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"configuration error: {name}: {problem}")
        self.name = name


@dataclasses.dataclass(frozen=True)
class Config:
    backend_url: str
    agent_id: str
    cert_path: Path
    key_path: Path
    trust_bundle: Path
    pin_text: str
    pins: tuple[pins.Pin, ...]
    site: str
    container_engine: str
    scripts_root: Path
    max_concurrency: int
    cmd_timeout_s: float
    exec_enabled: bool
    inbound_http: bool
    log_level: int
    signing_pubkey_path: Path | None
    ping_interval_s: float
    telemetry_interval_s: float
    agent_version: str
    inbound_http_bind: str
    inbound_http_port: int
    # The lab's telemetry-placeholder fault: zeros instead of readings (what a half-finished agent sends).
    placeholder_telemetry: bool = False

    @property
    def ping_timeout_s(self) -> float:
        """A ping goes out every ping_interval; no pong within this -> the ~45 s silent link is dead."""
        return max(DEAD_LINK_S - self.ping_interval_s, 1.0)


def parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"not a boolean ({value!r}; use true or false)")


def parse_number(name: str, text: str, *, integer: bool, minimum: float) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(name, f"not {kind} ({text.strip()!r})") from None
    if value < minimum or value != value:
        raise ConfigError(name, f"must be at least {minimum:g} (got {text.strip()!r})")
    return value


def parse_log_level(text: str) -> int:
    """RUST_LOG as env_logger writes it (``info``, ``warn,viworks=debug``): the bare level wins,
    else the first target's level; an unknown level is a ConfigError."""
    default: int | None = None
    first_targeted: int | None = None
    for directive in text.split("/")[0].split(","):
        directive = directive.strip()
        if not directive:
            continue
        _, sep, level = directive.rpartition("=")
        value = LOG_LEVELS.get(level.strip().lower())
        if value is None:
            raise ConfigError(
                "RUST_LOG", f"unknown log level in directive {directive!r} (use trace, debug, info, warn, error or off)"
            )
        if sep:
            first_targeted = value if first_targeted is None else first_targeted
        else:
            default = value
    if default is not None:
        return default
    return first_targeted if first_targeted is not None else logging.INFO


def load_config(environ: Mapping[str, str]) -> Config:
    """The agent's settings from its environment; ConfigError names the first bad variable."""

    def required(name: str) -> str:
        value = environ.get(name, "").strip()
        if not value:
            raise ConfigError(name, "missing (required)")
        return value

    def optional(name: str, default: str) -> str:
        value = environ.get(name, "").strip()
        return value or default

    url = required("VIW_AGENT_BACKEND_URL")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() != "wss":
        raise ConfigError(
            "VIW_AGENT_BACKEND_URL",
            f"must be a wss:// URL (scheme is {parsed.scheme or 'none'!r}); plain ws:// bypasses TLS",
        )
    if not parsed.hostname:
        raise ConfigError("VIW_AGENT_BACKEND_URL", "has no host name")
    try:
        _ = parsed.port
    except ValueError:
        raise ConfigError("VIW_AGENT_BACKEND_URL", "has a malformed port") from None

    agent_id = required("VIW_AGENT_ID")
    if any(c.isspace() for c in agent_id):
        raise ConfigError("VIW_AGENT_ID", f"contains white space ({agent_id!r})")
    cert_path = Path(required("VIW_AGENT_CERT_PATH"))
    key_path = Path(required("VIW_AGENT_KEY_PATH"))
    trust_bundle = Path(required("VIW_AGENT_TRUST_BUNDLE"))
    pin_text = required("VIW_AGENT_BACKEND_SPKI_PIN")
    try:
        pin_list = tuple(pins.parse_pins(pin_text))
    except pins.PinFormatError as exc:
        raise ConfigError("VIW_AGENT_BACKEND_SPKI_PIN", str(exc)) from None
    site = required("VIW_AGENT_SITE")
    scripts_root = Path(required("VIW_AGENT_SCRIPTS_ROOT"))
    engine = optional("VIW_AGENT_CONTAINER_ENGINE", "docker")

    max_concurrency = int(
        parse_number("VIW_AGENT_MAX_CONCURRENCY", optional("VIW_AGENT_MAX_CONCURRENCY", "4"), integer=True, minimum=1)
    )
    cmd_timeout = parse_number(
        "VIW_AGENT_CMD_TIMEOUT_SECS", optional("VIW_AGENT_CMD_TIMEOUT_SECS", "45"), integer=False, minimum=0.1
    )
    exec_enabled = parse_bool("VIW_AGENT_FEATURE_EXEC_ENABLE", optional("VIW_AGENT_FEATURE_EXEC_ENABLE", "true"))
    inbound_http = parse_bool("VIW_AGENT_FEATURE_INBOUND_HTTP", optional("VIW_AGENT_FEATURE_INBOUND_HTTP", "false"))
    log_level = parse_log_level(optional("RUST_LOG", "info"))
    signing = environ.get("VIW_AGENT_SIGNING_PUBKEY", "").strip()
    ping_interval = parse_number(
        "VIW_AGENT_PING_INTERVAL_SECS", optional("VIW_AGENT_PING_INTERVAL_SECS", "15"), integer=False, minimum=1
    )
    if ping_interval >= DEAD_LINK_S:
        raise ConfigError("VIW_AGENT_PING_INTERVAL_SECS", f"must be below {DEAD_LINK_S:g} s (the dead-link limit)")
    telemetry_interval = parse_number(
        "VIW_AGENT_TELEMETRY_INTERVAL_SECS",
        optional("VIW_AGENT_TELEMETRY_INTERVAL_SECS", "30"),
        integer=False,
        minimum=1,
    )
    http_port = int(
        parse_number(
            "VIW_AGENT_INBOUND_HTTP_PORT", optional("VIW_AGENT_INBOUND_HTTP_PORT", "8090"), integer=True, minimum=1
        )
    )
    if http_port > 65535:
        raise ConfigError("VIW_AGENT_INBOUND_HTTP_PORT", "must be at most 65535")
    return Config(
        backend_url=url,
        agent_id=agent_id,
        cert_path=cert_path,
        key_path=key_path,
        trust_bundle=trust_bundle,
        pin_text=pin_text,
        pins=pin_list,
        site=site,
        container_engine=engine,
        scripts_root=scripts_root,
        max_concurrency=max_concurrency,
        cmd_timeout_s=cmd_timeout,
        exec_enabled=exec_enabled,
        inbound_http=inbound_http,
        log_level=log_level,
        signing_pubkey_path=Path(signing) if signing else None,
        ping_interval_s=ping_interval,
        telemetry_interval_s=telemetry_interval,
        agent_version=optional("VIW_AGENT_VERSION", DEFAULT_VERSION),
        inbound_http_bind=optional("VIW_AGENT_INBOUND_HTTP_BIND", "0.0.0.0"),
        inbound_http_port=http_port,
        placeholder_telemetry=parse_bool(
            "VIW_LAB_PLACEHOLDER_TELEMETRY", optional("VIW_LAB_PLACEHOLDER_TELEMETRY", "false")
        ),
    )
