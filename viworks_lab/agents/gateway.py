"""The lab's reference ViWorkS gateway agent: an outbound-only wss client that speaks the contract.

Shipped as the zipapp ``/opt/viworks/viworks-gateway-agent`` whose ``__main__`` calls :func:`main`
(which exits the process with :func:`run`'s code). Runs on Debian bookworm's Python 3.11 with
websockets 10.4 (legacy asyncio client), PyJWT 2.6 and cryptography 38; also works with newer ones.

Configuration (environment, from ``/opt/viworks/agent/.env``)::

    required  VIW_AGENT_BACKEND_URL          wss://<agent domain>/ws/agent (ws:// is refused)
              VIW_AGENT_ID                   must equal the client certificate's CN
              VIW_AGENT_CERT_PATH / VIW_AGENT_KEY_PATH / VIW_AGENT_TRUST_BUNDLE
              VIW_AGENT_BACKEND_SPKI_PIN     bare or sha256/ base64 SPKI pin, comma-separated backups
              VIW_AGENT_SITE, VIW_AGENT_SCRIPTS_ROOT
    optional  VIW_AGENT_CONTAINER_ENGINE (docker; "none" for no engine), VIW_AGENT_MAX_CONCURRENCY (4),
              VIW_AGENT_CMD_TIMEOUT_SECS (45), VIW_AGENT_FEATURE_EXEC_ENABLE (true),
              VIW_AGENT_FEATURE_INBOUND_HTTP (false), RUST_LOG (info)
    lab       VIW_AGENT_SIGNING_PUBKEY (Ed25519 public key PEM; when set, command signatures are verified),
              VIW_AGENT_PING_INTERVAL_SECS (15), VIW_AGENT_TELEMETRY_INTERVAL_SECS (30),
              VIW_AGENT_VERSION (1.4.2-lab), VIW_AGENT_INBOUND_HTTP_BIND (0.0.0.0),
              VIW_AGENT_INBOUND_HTTP_PORT (8090)

Exit codes: 2 for a missing or malformed variable (one log line naming it), 1 for a required file
(certificate, key, trust bundle, scripts root, signing key) missing, unreadable or world-writable at
start-up, 0 after SIGTERM/SIGINT. Once running, the agent never exits on its own: every connection
attempt re-reads the certificate, key and CA from disk, and a file that went missing is logged as that
attempt's error and retried with exponential backoff (1 s doubling to 30 s, with jitter; reset after a
session that got ``welcome``). SIGHUP drops the session and reconnects at once.

TLS: the server chain is verified against the trust bundle with hostname checking, the client
certificate is presented, and after the handshake the leaf's SPKI pin must match one configured pin
(``pin mismatch: expected <configured> got <live>`` otherwise, then close and retry).

Commands: every COMMAND goes through one process-wide :class:`~viworks_verify.commands.CommandGate`
(so the nonce memory persists across sessions); a resent ``corr_id`` gets the cached RESULT (kept
10 minutes) without running again. Admitted commands run under a semaphore of MAX_CONCURRENCY with a
timeout of CMD_TIMEOUT_SECS (TIMEOUT / EXEC_TIMEOUT, the process group is killed).
Built-in verbs: ``get_system_health``, ``get_service_status``, ``get_monitoring_data``,
``list_containers``, ``list_users``. Script verbs run ``VIW_AGENT_SCRIPTS_ROOT/<script>``:
``create_panel_user`` -> ``add_user.sh``, ``delete_user`` -> ``delete_user.sh``,
``create_openvpn_user`` -> ``add_vpn_user.sh`` (``delete_vpn_user.sh`` is not mapped: no allowlisted
verb has its arguments). A script is executed directly (never through a shell) with no arguments,
the command's ``args`` object as one JSON document on stdin, its directory as working directory, and an
environment of exactly ``PATH=/usr/sbin:/usr/bin:/sbin:/bin``. It must exist (else ERROR
SCRIPT_NOT_FOUND), be an executable regular file (else ERROR SCRIPT_NOT_EXECUTABLE) and not be group- or
world-writable (else ERROR SCRIPT_INSECURE). rc 0 -> SUCCESS, else ERROR EXEC_FAILED. Its stdout, when
JSON, is passed on (else wrapped as ``{"output": text}``), with the values of the arguments named
password, userpass, key, hmac_key and bootstrap_token redacted; stderr is only hashed. Other
allowlisted verbs answer ERROR UNSUPPORTED_VERB.

With VIW_AGENT_FEATURE_INBOUND_HTTP false the agent listens on no port. When true it serves a read-only
``GET /health`` JSON on VIW_AGENT_INBOUND_HTTP_BIND:PORT (no commands over HTTP).

Logs go to stdout (journald), one line per event, never key material, secrets or command arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import ssl
import stat
import sys
import time
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping

import websockets
import websockets.exceptions

from viworks_lab.agents import host_readings
from viworks_verify import commands, gateway_config, pins, protocol

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
BUILTIN_VERBS = ("get_system_health", "get_service_status", "get_monitoring_data", "list_containers", "list_users")
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

LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}


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
            raise ConfigError("RUST_LOG", f"unknown log level in directive {directive!r} (use trace, debug, info, warn, error or off)")
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
        raise ConfigError("VIW_AGENT_BACKEND_URL", f"must be a wss:// URL (scheme is {parsed.scheme or 'none'!r}); plain ws:// bypasses TLS")
    if not parsed.hostname:
        raise ConfigError("VIW_AGENT_BACKEND_URL", "has no host name")
    try:
        parsed.port
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

    max_concurrency = int(parse_number("VIW_AGENT_MAX_CONCURRENCY", optional("VIW_AGENT_MAX_CONCURRENCY", "4"), integer=True, minimum=1))
    cmd_timeout = parse_number("VIW_AGENT_CMD_TIMEOUT_SECS", optional("VIW_AGENT_CMD_TIMEOUT_SECS", "45"), integer=False, minimum=0.1)
    exec_enabled = parse_bool("VIW_AGENT_FEATURE_EXEC_ENABLE", optional("VIW_AGENT_FEATURE_EXEC_ENABLE", "true"))
    inbound_http = parse_bool("VIW_AGENT_FEATURE_INBOUND_HTTP", optional("VIW_AGENT_FEATURE_INBOUND_HTTP", "false"))
    log_level = parse_log_level(optional("RUST_LOG", "info"))
    signing = environ.get("VIW_AGENT_SIGNING_PUBKEY", "").strip()
    ping_interval = parse_number("VIW_AGENT_PING_INTERVAL_SECS", optional("VIW_AGENT_PING_INTERVAL_SECS", "15"), integer=False, minimum=1)
    if ping_interval >= DEAD_LINK_S:
        raise ConfigError("VIW_AGENT_PING_INTERVAL_SECS", f"must be below {DEAD_LINK_S:g} s (the dead-link limit)")
    telemetry_interval = parse_number(
        "VIW_AGENT_TELEMETRY_INTERVAL_SECS", optional("VIW_AGENT_TELEMETRY_INTERVAL_SECS", "30"), integer=False, minimum=1
    )
    http_port = int(parse_number("VIW_AGENT_INBOUND_HTTP_PORT", optional("VIW_AGENT_INBOUND_HTTP_PORT", "8090"), integer=True, minimum=1))
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
        placeholder_telemetry=parse_bool("VIW_LAB_PLACEHOLDER_TELEMETRY", optional("VIW_LAB_PLACEHOLDER_TELEMETRY", "false")),
    )


# ---------------------------------------------------------------------------------------------
# required files
# ---------------------------------------------------------------------------------------------


def path_problem(path: Path, *, directory: bool = False) -> str | None:
    """Why a required file (or directory) is unusable: missing, wrong kind, world-writable, unreadable."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot stat ({exc.strerror})"
    if directory and not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if not directory and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_mode & stat.S_IWOTH:
        return f"world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
    if not os.access(path, os.R_OK | (os.X_OK if directory else 0)):
        return "not readable by the agent"
    return None


def required_paths(config: Config) -> list[tuple[str, Path, bool]]:
    """(role, path, is_directory) of every file the agent refuses to start without."""
    paths = [
        ("client certificate", config.cert_path, False),
        ("client key", config.key_path, False),
        ("trust bundle", config.trust_bundle, False),
        ("scripts root", config.scripts_root, True),
    ]
    if config.signing_pubkey_path is not None:
        paths.append(("command signing key", config.signing_pubkey_path, False))
    return paths


def file_problems(entries: list[tuple[str, Path, bool]]) -> list[str]:
    problems = []
    for role, path, directory in entries:
        problem = path_problem(path, directory=directory)
        if problem:
            problems.append(f"{role} {path}: {problem}")
    return problems


def key_mode_warning(path: Path) -> str | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return f"client key {path} has mode {mode:04o}; it should be 0600 or 0400 (owner only)"
    return None


def load_signing_key(path: Path) -> Any:
    """The backend's Ed25519 command-signing public key (PEM); ConfigError when it is not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError:
        raise ConfigError("VIW_AGENT_SIGNING_PUBKEY", f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("VIW_AGENT_SIGNING_PUBKEY", f"{path} is not an Ed25519 public key")
    return key


def certificate_cn(path: Path) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (OSError, ValueError):
        return None
    return str(names[0].value) if names else None


def build_tls_context(config: Config) -> ssl.SSLContext:
    """A fresh client context from the files on disk: chain + hostname verified, client cert presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.load_verify_locations(cafile=str(config.trust_bundle))
    context.load_cert_chain(certfile=str(config.cert_path), keyfile=str(config.key_path))
    return context


# ---------------------------------------------------------------------------------------------
# backoff, result cache, redaction (pure)
# ---------------------------------------------------------------------------------------------


class Backoff:
    """Exponential backoff with jitter: 1 s doubling up to 30 s, each delay drawn in [0.8, 1.0] of it."""

    def __init__(self, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S, rng: Callable[[], float] = random.random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def ceiling(self) -> float:
        return min(self.cap_s, self.base_s * (2 ** min(self.failures, 30)))

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        self.failures += 1
        return ceiling * (0.8 + 0.2 * self.rng())


class ResultCache:
    """Results (or in-flight futures) by corr_id, kept ``ttl_s`` seconds, at most ``max_entries``."""

    def __init__(self, ttl_s: float = RESULT_CACHE_TTL_S, max_entries: int = RESULT_CACHE_MAX, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, (t, _) in self._entries.items() if now - t >= self.ttl_s]:
            del self._entries[key]
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def get(self, corr_id: str) -> Any:
        self._expire()
        entry = self._entries.get(corr_id)
        return entry[1] if entry else None

    def put(self, corr_id: str, value: Any) -> None:
        self._entries.pop(corr_id, None)
        self._entries[corr_id] = (self.clock(), value)
        self._expire()

    def discard(self, corr_id: str) -> None:
        self._entries.pop(corr_id, None)

    def __len__(self) -> int:
        return len(self._entries)


def secret_values(args: Mapping[str, Any]) -> list[str]:
    """The values of secret-named arguments, longest first (so overlaps redact fully)."""
    values = {str(v) for k, v in args.items() if k in SECRET_ARG_NAMES and v is not None and str(v) != ""}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, list):
        return [_redact_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_ARG_NAMES else _redact_value(v, secrets)) for k, v in value.items()}
    return value


def result_stdout(raw: str, args: Mapping[str, Any]) -> str:
    """A script's stdout as the RESULT's JSON string, with secret argument values redacted."""
    secrets = secret_values(args)
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError:
        document = None
    if document is None:
        document = {"output": raw}
    return json.dumps(_redact_value(document, secrets), separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# readings for hello, telemetry and the built-in verbs
# ---------------------------------------------------------------------------------------------


class HostInfo:
    """Host facts and readings the agent reports."""

    def __init__(self, config: Config, start_time: float) -> None:
        self.config = config
        self.start_time = start_time
        self.cpu = host_readings.CpuMeter()

    def watched_services(self) -> list[str]:
        names = list(WATCHED_SERVICES)
        engine = self.config.container_engine.lower()
        if engine in host_readings.ENGINE_PS:
            names.append(engine)
        return names

    def hello_payload(self) -> dict[str, Any]:
        return {
            "agent_id": self.config.agent_id,
            "site": self.config.site,
            "agent_version": self.config.agent_version,
            "os": host_readings.read_os_pretty_name(),
            "kernel": host_readings.kernel_release(),
            "container_engine": self.config.container_engine,
            "supported_verbs": list(commands.VERB_ARGS),
            "start_time": protocol.rfc3339(self.start_time),
            "feature_flags": {"exec_enable": self.config.exec_enabled, "inbound_http": self.config.inbound_http},
        }

    async def telemetry_payload(self) -> dict[str, Any]:
        if self.config.placeholder_telemetry:
            return {"agent_id": self.config.agent_id, "site": self.config.site, "ts": protocol.rfc3339(), "uptime_s": 0,
                    "cpu_pct": 0, "mem": {"total_mb": 0, "used_mb": 0}, "loadavg": [0, 0, 0], "disk": [], "services": {},
                    "containers": [], "version": self.config.agent_version}
        cpu = await self.cpu.read()
        total_mb, used_mb = host_readings.memory_mb(host_readings.read_meminfo())
        services = await host_readings.service_states(self.watched_services())
        _, containers = await host_readings.list_engine_containers(self.config.container_engine)
        return {
            "agent_id": self.config.agent_id,
            "site": self.config.site,
            "ts": protocol.rfc3339(),
            "uptime_s": host_readings.read_uptime(),
            "cpu_pct": cpu,
            "mem": {"total_mb": total_mb, "used_mb": used_mb},
            "loadavg": host_readings.read_loadavg(),
            "disk": host_readings.read_disk_usage(),
            "services": services,
            "containers": containers,
            "version": self.config.agent_version,
        }

    async def system_health(self) -> dict[str, Any]:
        cpu = await host_readings.sample_cpu_percent(0.3)
        return {
            "cpu_usage_percent": cpu,
            "memory_usage_percent": host_readings.memory_percent(host_readings.read_meminfo()),
            "disk_usage_percent": host_readings.root_disk_used_pct(),
            "load_average": host_readings.read_loadavg(),
            "uptime_seconds": host_readings.read_uptime(),
        }

    async def service_status(self) -> dict[str, Any]:
        return {"services": await host_readings.service_states(self.watched_services())}

    async def containers(self) -> dict[str, Any]:
        available, containers = await host_readings.list_engine_containers(self.config.container_engine)
        return {"engine": self.config.container_engine, "available": available, "containers": containers}

    async def monitoring_data(self) -> dict[str, Any]:
        data = await self.system_health()
        total_mb, used_mb = host_readings.memory_mb(host_readings.read_meminfo())
        data.update(
            {
                "agent_id": self.config.agent_id,
                "site": self.config.site,
                "memory_mb": {"total": total_mb, "used": used_mb},
                "disks": host_readings.read_disk_usage(),
                "network": host_readings.read_net_dev(),
                "services": await host_readings.service_states(self.watched_services()),
                "containers": (await self.containers())["containers"],
                "agent_version": self.config.agent_version,
                "agent_uptime_seconds": round(time.time() - self.start_time, 1),
            }
        )
        return data

    def users(self) -> dict[str, Any]:
        return {"users": host_readings.read_passwd_users()}


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    status: str
    rc: int
    stdout: str = ""
    stderr: bytes = b""
    error_code: str = "NONE"


class CommandExecutor:
    """Admission (one gate per process), the corr_id result cache, and execution under limits."""

    def __init__(self, config: Config, gate: commands.CommandGate, host: HostInfo) -> None:
        self.config = config
        self.gate = gate
        self.host = host
        self.cache = ResultCache()
        self.semaphore = asyncio.Semaphore(config.max_concurrency)

    def _result(self, corr_id: str, verb: str, outcome: Outcome, duration_ms: int) -> dict[str, Any]:
        return protocol.result_payload(
            corr_id=corr_id,
            agent_id=self.config.agent_id,
            verb=verb,
            status=outcome.status,
            rc=outcome.rc,
            duration_ms=duration_ms,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            error_code=outcome.error_code,
        )

    async def process(self, token: Any, frame_corr_id: str | None) -> dict[str, Any]:
        """The RESULT payload for one COMMAND payload (never raises for a bad command)."""
        started = time.monotonic()
        try:
            claims = commands.read_claims(token)
        except commands.CommandRejected as exc:
            log.warning("command denied corr_id=%s code=%s: %s", frame_corr_id or "-", exc.error_code, exc.message)
            return self._result(frame_corr_id or "", "", Outcome("DENIED", -1, error_code=exc.error_code), 0)
        corr_id = str(claims["corr_id"])
        verb = str(claims["verb"])
        cached = self.cache.get(corr_id)
        if cached is not None:
            log.info("command resent corr_id=%s verb=%s: answering with the cached result", corr_id, verb)
            return await asyncio.shield(cached)
        try:
            claims = self.gate.admit(token)
        except commands.CommandRejected as exc:
            log.warning("command denied corr_id=%s verb=%s code=%s: %s", corr_id, verb, exc.error_code, exc.message)
            duration = int((time.monotonic() - started) * 1000)
            return self._result(corr_id, verb, Outcome("DENIED", -1, error_code=exc.error_code), duration)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.cache.put(corr_id, future)
        actor = claims.get("actor") if isinstance(claims.get("actor"), dict) else {}
        log.info("command admitted corr_id=%s verb=%s actor=%s role=%s", corr_id, verb, actor.get("id"), actor.get("role"))
        try:
            result = await self._execute(corr_id, verb, claims["args"])
        except BaseException:
            self.cache.discard(corr_id)
            future.cancel()
            raise
        future.set_result(result)
        log.info(
            "command finished corr_id=%s verb=%s status=%s rc=%s error_code=%s duration_ms=%s",
            corr_id, verb, result["status"], result["rc"], result["error_code"], result["duration_ms"],
        )
        return result

    async def _execute(self, corr_id: str, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        async with self.semaphore:
            started = time.monotonic()
            try:
                outcome = await asyncio.wait_for(self._run_verb(verb, args), self.config.cmd_timeout_s)
            except asyncio.TimeoutError:
                log.warning("command timed out corr_id=%s verb=%s after %.0fs", corr_id, verb, self.config.cmd_timeout_s)
                outcome = Outcome("TIMEOUT", -1, error_code="EXEC_TIMEOUT")
            except Exception as exc:  # a bug in a built-in must not kill the session
                log.error("command failed corr_id=%s verb=%s: %s: %s", corr_id, verb, type(exc).__name__, exc)
                outcome = Outcome("ERROR", -1, stderr=f"{type(exc).__name__}: {exc}".encode(), error_code="EXEC_FAILED")
            duration = int((time.monotonic() - started) * 1000)
        return self._result(corr_id, verb, outcome, duration)

    async def _run_verb(self, verb: str, args: Mapping[str, Any]) -> Outcome:
        builtin: Callable[[], Any] | None = {
            "get_system_health": self.host.system_health,
            "get_service_status": self.host.service_status,
            "get_monitoring_data": self.host.monitoring_data,
            "list_containers": self.host.containers,
            "list_users": self.host.users,
        }.get(verb)
        if builtin is not None:
            data = builtin()
            if asyncio.iscoroutine(data):
                data = await data
            return Outcome("SUCCESS", 0, stdout=json.dumps(data, separators=(",", ":")))
        script = SCRIPT_VERBS.get(verb)
        if script is None:
            return Outcome("ERROR", -1, stdout=json.dumps({"error": f"verb {verb} is not implemented by this agent"}), error_code="UNSUPPORTED_VERB")
        return await self._run_script(self.config.scripts_root / script, args)

    async def _run_script(self, path: Path, args: Mapping[str, Any]) -> Outcome:
        try:
            st = path.stat()
        except FileNotFoundError:
            log.error("script missing: %s", path)
            return Outcome("ERROR", 127, stdout=json.dumps({"error": f"script {path} not found"}), error_code="SCRIPT_NOT_FOUND")
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            log.error("script not executable: %s (mode %04o)", path, stat.S_IMODE(st.st_mode))
            return Outcome("ERROR", 126, stdout=json.dumps({"error": f"script {path} is not executable"}), error_code="SCRIPT_NOT_EXECUTABLE")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.error("script refused: %s is group- or world-writable (mode %04o)", path, stat.S_IMODE(st.st_mode))
            return Outcome("ERROR", 126, stdout=json.dumps({"error": f"script {path} is group- or world-writable"}), error_code="SCRIPT_INSECURE")
        try:
            proc = await asyncio.create_subprocess_exec(
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(path.parent),
                env={"PATH": SAFE_PATH},
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            log.error("script could not start: %s: %s", path, exc.strerror or exc)
            return Outcome("ERROR", 126, stderr=str(exc).encode(), error_code="EXEC_FAILED")
        try:
            out, err = await proc.communicate(json.dumps(dict(args)).encode())
        except BaseException:  # cancelled by the timeout (or shutdown): kill the script's whole group,
            try:  # including children that outlived it and still hold its pipes
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            # Drain to EOF (the group is dead, so it comes at once) and reap: the transport closes
            # now, not later in a garbage collector that may outlive the event loop.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(proc.stdout.read(), proc.stderr.read()), 2)
            await proc.wait()
            raise
        rc = proc.returncode if proc.returncode is not None else -1
        stdout = result_stdout(out[:STDOUT_LIMIT].decode("utf-8", "replace"), args)
        if rc == 0:
            return Outcome("SUCCESS", 0, stdout=stdout, stderr=err)
        return Outcome("ERROR", rc, stdout=stdout, stderr=err, error_code="EXEC_FAILED")


# ---------------------------------------------------------------------------------------------
# the agent
# ---------------------------------------------------------------------------------------------


def peer_certificate_der(ws: Any) -> bytes | None:
    transport = getattr(ws, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def describe_error(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GatewayAgent:
    def __init__(self, config: Config, signing_key: Any, start_time: float) -> None:
        self.config = config
        self.host = HostInfo(config, start_time)
        gate = commands.CommandGate(config.agent_id, exec_enabled=config.exec_enabled, signing_key=signing_key)
        self.executor = CommandExecutor(config, gate, self.host)
        self.backoff = Backoff()
        self.attempts = 0
        self.session_id: str | None = None
        self._ws: Any = None
        self._stop = asyncio.Event()
        self._hup = asyncio.Event()
        self._command_tasks: set[asyncio.Task] = set()
        self._send_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        http_server = await self._start_inbound_http() if self.config.inbound_http else None
        try:
            while not self._stop.is_set():
                attempt = asyncio.create_task(self._attempt())
                interrupted = await self._wait_or_signal(attempt)
                if self._stop.is_set():
                    await self._abort(attempt, 1001, "agent stopping")
                    break
                if interrupted:  # SIGHUP
                    self._hup.clear()
                    await self._abort(attempt, 1001, "agent reconnecting (SIGHUP)")
                    self.backoff.reset()
                    log.info("SIGHUP: session dropped, reconnecting now with files re-read from disk")
                    continue
                welcomed = attempt.result()
                if welcomed:
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                log.info("reconnecting in %.1fs (failures in a row: %d)", delay, self.backoff.failures)
                if await self._sleep_or_signal(delay):
                    if self._hup.is_set() and not self._stop.is_set():
                        self._hup.clear()
                        self.backoff.reset()
                        log.info("SIGHUP: reconnecting now with files re-read from disk")
        finally:
            for task in list(self._command_tasks):
                task.cancel()
            if self._command_tasks:
                await asyncio.gather(*self._command_tasks, return_exceptions=True)
            if http_server is not None:
                http_server.close()
                await http_server.wait_closed()
        log.info("agent stopped")
        return 0

    def _on_stop(self, name: str) -> None:
        log.info("%s received: closing the session and exiting", name)
        self._stop.set()

    def _on_hup(self) -> None:
        log.info("SIGHUP received")
        self._hup.set()

    async def _wait_or_signal(self, task: asyncio.Task) -> bool:
        """Wait for the task, a stop or a HUP; True when a signal came first."""
        stop = asyncio.create_task(self._stop.wait())
        hup = asyncio.create_task(self._hup.wait())
        try:
            await asyncio.wait({task, stop, hup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            hup.cancel()
        return not task.done() or self._stop.is_set() or self._hup.is_set()

    async def _sleep_or_signal(self, delay: float) -> bool:
        sleeper = asyncio.create_task(asyncio.sleep(delay))
        try:
            return await self._wait_or_signal(sleeper)
        finally:
            sleeper.cancel()

    async def _abort(self, attempt: asyncio.Task, code: int, reason: str) -> None:
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(code=code, reason=reason), CLOSE_TIMEOUT_S + 1)
            except Exception:  # noqa: BLE001 - closing a dying socket
                pass
        if not attempt.done():
            attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)

    # -- one connection attempt ------------------------------------------------------------

    async def _attempt(self) -> bool:
        """Connect, check the pin, hello/welcome, then serve the session; True when welcomed."""
        self.attempts += 1
        problems = file_problems(required_paths(self.config)[:4])  # cert, key, trust bundle, scripts root
        if problems:
            log.error("connection attempt %d not made: %s", self.attempts, "; ".join(problems))
            return False
        try:
            context = build_tls_context(self.config)
        except (OSError, ssl.SSLError) as exc:
            log.error("connection attempt %d not made: TLS material unusable: %s", self.attempts, describe_error(exc))
            return False
        log.info("connecting to %s (attempt %d)", self.config.backend_url, self.attempts)
        try:
            ws = await websockets.connect(
                self.config.backend_url,
                ssl=context,
                ping_interval=self.config.ping_interval_s,
                ping_timeout=self.config.ping_timeout_s,
                open_timeout=OPEN_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                max_size=4 * 1024 * 1024,
            )
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, TimeoutError):
            log.error("connect to %s failed: no WebSocket upgrade within %.0fs", self.config.backend_url, OPEN_TIMEOUT_S)
            return False
        except Exception as exc:  # OSError, ssl errors, InvalidStatusCode/InvalidHandshake ...
            log.error("connect to %s failed: %s", self.config.backend_url, describe_error(exc))
            return False
        self._ws = ws
        try:
            der = peer_certificate_der(ws)
            matched = pins.matching_pin(list(self.config.pins), der) if der else None
            if matched is None:
                live = pins.spki_pin(der) if der else "no certificate"
                log.error("pin mismatch: expected %s got %s", self.config.pin_text, live)
                await ws.close(code=1008, reason="pin mismatch")
                return False
            log.info("TLS established to %s; backend SPKI pin matched (%s, %s)", self.config.backend_url, matched.value, matched.form)
            return await self._session(ws)
        except websockets.exceptions.ConnectionClosed as exc:
            if self.session_id is None:
                log.error("connection closed before welcome: %s", describe_close(exc, ws))
                return False
            log.error("session closed: %s", describe_close(exc, ws))
            return True
        finally:
            self._ws = None
            self.session_id = None
            try:
                await ws.close()
            except Exception:  # noqa: BLE001
                pass

    async def _send(self, ws: Any, frame: protocol.Frame) -> None:
        async with self._send_lock:
            await ws.send(frame.to_json())

    async def _await_welcome(self, ws: Any) -> str | None:
        """The session_id of the welcome, or None after an error frame / timeout."""
        deadline = time.monotonic() + WELCOME_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error("no welcome from %s within %.0fs of hello", self.config.backend_url, WELCOME_TIMEOUT_S)
                return None
            try:
                message = await asyncio.wait_for(ws.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            try:
                frame = protocol.Frame.parse(message)
            except protocol.ProtocolError as exc:
                log.warning("malformed frame ignored while waiting for welcome: %s", exc)
                continue
            if frame.is_type(protocol.WELCOME):
                payload = frame.payload if isinstance(frame.payload, dict) else {}
                return str(payload.get("session_id") or "")
            if frame.is_type(protocol.ERROR):
                payload = frame.payload if isinstance(frame.payload, dict) else {}
                log.error("backend rejected hello: %s %s", payload.get("code", "?"), payload.get("message", ""))
                return None
            log.warning("ignoring %s frame received before welcome", frame.type)

    async def _session(self, ws: Any) -> bool:
        hello = self.host.hello_payload()
        await self._send(ws, protocol.make_frame(protocol.HELLO, hello))
        log.info("hello sent agent_id=%s site=%s version=%s", self.config.agent_id, self.config.site, self.config.agent_version)
        session_id = await self._await_welcome(ws)
        if session_id is None:
            return False
        self.session_id = session_id
        self.backoff.reset()
        log.info("session established agent_id=%s session_id=%s backend=%s", self.config.agent_id, session_id, self.config.backend_url)
        telemetry = asyncio.create_task(self._telemetry_loop(ws))
        try:
            async for message in ws:
                self._on_message(ws, message)
        except websockets.exceptions.ConnectionClosed as exc:
            log.error("session closed: %s", describe_close(exc, ws))
            return True
        finally:
            telemetry.cancel()
            await asyncio.gather(telemetry, return_exceptions=True)
        log.info("session closed: %s", describe_close(None, ws))
        return True

    def _on_message(self, ws: Any, message: Any) -> None:
        try:
            frame = protocol.Frame.parse(message)
        except protocol.ProtocolError as exc:
            log.warning("malformed frame ignored: %s", exc)
            return
        if frame.is_type(protocol.COMMAND):
            task = asyncio.create_task(self._handle_command(ws, frame))
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)
        elif frame.is_type(protocol.ERROR):
            payload = frame.payload if isinstance(frame.payload, dict) else {}
            log.warning(
                "backend error frame: %s %s (correlation_id=%s); session kept",
                payload.get("code", "?"), payload.get("message", ""), frame.correlation_id or "-",
            )
        elif frame.is_type(protocol.WELCOME):
            log.debug("duplicate welcome ignored")
        else:
            log.debug("ignoring %s frame", frame.type)

    async def _handle_command(self, ws: Any, frame: protocol.Frame) -> None:
        result = await self.executor.process(frame.payload, frame.correlation_id)
        try:
            await self._send(ws, protocol.make_frame(protocol.RESULT, result, correlation_id=result["corr_id"] or frame.correlation_id))
        except websockets.exceptions.ConnectionClosed:
            log.warning("RESULT corr_id=%s not delivered: the session closed (cached for a resend)", result["corr_id"])

    async def _telemetry_loop(self, ws: Any) -> None:
        while True:
            try:
                payload = await self.host.telemetry_payload()
            except Exception as exc:  # noqa: BLE001 - a reading failing must not end the session
                log.error("telemetry reading failed: %s", describe_error(exc))
            else:
                try:
                    await self._send(ws, protocol.make_frame(protocol.TELEMETRY, payload))
                except websockets.exceptions.ConnectionClosed:
                    return
                log.debug("telemetry sent cpu_pct=%s mem_used_mb=%s", payload["cpu_pct"], payload["mem"]["used_mb"])
            await asyncio.sleep(self.config.telemetry_interval_s)

    # -- optional inbound HTTP ---------------------------------------------------------------

    async def _start_inbound_http(self) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readline(), 5)
                while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                    pass
                parts = request.decode("latin-1").split()
                if len(parts) >= 2 and parts[0] == "GET" and parts[1] == "/health":
                    status = "200 OK"
                    body = {"status": "ok", "agent_id": self.config.agent_id, "connected": self.session_id is not None,
                            "session_id": self.session_id, "version": self.config.agent_version}
                else:
                    status, body = "404 Not Found", {"error": "not found"}
                data = json.dumps(body).encode()
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
                await writer.drain()
            except (asyncio.TimeoutError, OSError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, self.config.inbound_http_bind, self.config.inbound_http_port)
        log.warning("inbound HTTP enabled: serving GET /health on %s:%d", self.config.inbound_http_bind, self.config.inbound_http_port)
        return server


def describe_close(exc: BaseException | None, ws: Any) -> str:
    """What ended a session: websockets' own words (``sent 1011 (internal error) keepalive ping
    timeout; no close frame received``) when it raised, else the close code and reason."""
    if exc is not None:
        return str(exc).replace("\n", " ") or type(exc).__name__
    return f"code={getattr(ws, 'close_code', None)} reason={getattr(ws, 'close_reason', None) or '-'}"


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.exc_info = None  # tracebacks would span lines (and may hold values)
        record.exc_text = None
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # websockets' debug log prints frame contents (a COMMAND's JWS carries its arguments): never below WARNING
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))


def process_start_time() -> float:
    try:
        return host_readings.read_process_start_time()
    except (OSError, ValueError, IndexError):
        return time.time()


def toml_settings(path: Path) -> dict[str, str]:
    """``agent.toml``'s [outbound] keys as the VIW_AGENT_* variables they stand for (absent file: none).

    As the production agent reads it: every section is required when the file exists, and the
    environment (the unit's EnvironmentFile) overrides [outbound] one key at a time.
    """
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot be read as TOML: {exc}") from None
    missing = gateway_config.missing_sections(data)
    if missing:
        raise ConfigError(str(path), f"sections {', '.join(missing)} missing")
    outbound = data["outbound"]
    return {variable: str(outbound[key]).lower() if isinstance(outbound[key], bool) else str(outbound[key])
            for variable, key in gateway_config.OUTBOUND_KEYS.items() if key in outbound}


def run(environ: Mapping[str, str] | None = None) -> int:
    """Run the agent until SIGTERM; the process exit code."""
    environ = os.environ if environ is None else environ
    start_time = process_start_time()
    setup_logging()
    try:
        environ = {**toml_settings(Path.cwd() / "agent.toml"), **environ}
        config = load_config(environ)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    setup_logging(config.log_level)
    problems = file_problems(required_paths(config))
    if problems:
        log.error("refusing to start: %s", "; ".join(problems))
        return 1
    warning = key_mode_warning(config.key_path)
    if warning:
        log.warning("%s", warning)
    cn = certificate_cn(config.cert_path)
    if cn is not None and cn != config.agent_id:
        log.warning("client certificate CN %r differs from VIW_AGENT_ID %r: the backend will reject the hello", cn, config.agent_id)
    signing_key = None
    if config.signing_pubkey_path is not None:
        try:
            signing_key = load_signing_key(config.signing_pubkey_path)
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
    else:
        log.warning("VIW_AGENT_SIGNING_PUBKEY not set: command signatures are not verified")
    log.info(
        "starting viworks gateway agent %s agent_id=%s site=%s backend=%s pins=%s (%s) exec_enable=%s inbound_http=%s "
        "max_concurrency=%d cmd_timeout=%gs ping=%gs/%gs telemetry=%gs engine=%s scripts=%s",
        config.agent_version, config.agent_id, config.site, config.backend_url, config.pin_text,
        ", ".join(p.form for p in config.pins), config.exec_enabled, config.inbound_http, config.max_concurrency,
        config.cmd_timeout_s, config.ping_interval_s, config.ping_timeout_s, config.telemetry_interval_s,
        config.container_engine, config.scripts_root,
    )
    async def main_async() -> int:
        return await GatewayAgent(config, signing_key, start_time).run()

    return asyncio.run(main_async())


def main() -> None:
    """The zipapp's entry point: runs the agent and exits the process with its code (``--version``: prints it)."""
    if sys.argv[1:] == ["--version"]:
        print(f"viworks-gateway-agent {DEFAULT_VERSION}")
        sys.exit(0)
    sys.exit(run())


if __name__ == "__main__":
    main()
