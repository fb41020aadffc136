"""The backend agent's TOML configuration: defaults, merging, and URLs shown without their passwords."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from viworks_lab.agents.log_levels import LOG_LEVELS

log = logging.getLogger("viworks.backend")

DEFAULT_CONFIG_PATH = "/app/config/backend-agent.toml"

DEFAULT_CONFIG: dict[str, dict[str, Any]] = {
    "server": {"bind_address": "0.0.0.0", "port": 8080, "version": "1.4.2-lab"},
    "database": {"url": "postgresql://viworks@viworks-postgres:5432/viworks_agent"},
    "redis": {"url": "redis://viworks-redis:6379/0"},
    "security": {
        "jwt_secret": "",
        "client_cn_header": "X-Client-CN",
        "client_verify_header": "X-Client-Verify",
    },
    "agent_management": {
        "enabled": True,
        "bind_address": "0.0.0.0",
        "port": 8081,
        "path": "/ws/agent",  # where agents connect (the lab's; a deployment may serve another path)
        "heartbeat_interval": 15,
        "connection_timeout": 45,
        "hello_timeout": 10,
    },
    "command": {
        "signing_key_path": "/app/config/command-signing.key",
        "default_timeout": 30,
        "max_timeout": 300,
        "dispatch_enabled": True,
    },
    "telemetry": {"ttl_seconds": 600},
    # The lab agent's switches for the fault matrix (each a real defect a check must catch); all off
    # is the contract's behaviour. A production build has no such section.
    "lab_faults": {
        "client_certificate_unchecked": False,  # upgrade without nginx's verified-client header
        "hello_unbound_to_cn": False,  # welcome a hello whatever the certificate CN says
        "duplicate_sessions": False,  # welcome a second live session of the same agent id
        "api_open": False,  # /api/v1 without a token
        "api_trusts_identity_headers": False,  # /api/v1 takes the identity headers as authentication
        "registry_hidden": False,  # the registry lists no agent ("the agent registry stayed empty")
        "health_delay_ms": 0,  # /health answers this much later
    },
    "logging": {"level": "info"},
}


# --------------------------------------------------------------------------- configuration


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or has a value of the wrong kind."""


# What a deployment must say itself, as production's agent requires: a config without one of these
# refuses to start (a default would hide a deploy that lost its database, Redis or JWT secret).
REQUIRED_KEYS = {
    "server": ("port",),
    "database": ("url",),
    "redis": ("url",),
    "security": ("jwt_secret",),
    "agent_management": ("port", "path"),
    "command": ("signing_key_path",),
}


def merge_config(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The file's sections over :data:`DEFAULT_CONFIG`, with types checked (ConfigError when wrong)."""
    merged: dict[str, dict[str, Any]] = {}
    for section, defaults in DEFAULT_CONFIG.items():
        given = data.get(section, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"[{section}] is not a table")
        values = dict(defaults)
        values.update(given)
        for key, default in defaults.items():
            value = values[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"[{section}] {key} must be true or false")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"[{section}] {key} must be an integer")
                if value < 0:
                    raise ConfigError(f"[{section}] {key} must not be negative")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ConfigError(f"[{section}] {key} must be a string")
        merged[section] = values
    for section, given in data.items():
        if section not in merged and isinstance(given, Mapping):
            merged[section] = dict(given)
    for section in ("server", "agent_management"):
        port = merged[section]["port"]
        if not 1 <= port <= 65535:
            raise ConfigError(f"[{section}] port {port} is not a TCP port")
    if merged["command"]["max_timeout"] < 1:
        raise ConfigError("[command] max_timeout must be at least 1")
    if not 1 <= merged["command"]["default_timeout"] <= merged["command"]["max_timeout"]:
        raise ConfigError("[command] default_timeout must be between 1 and max_timeout")
    return merged


def load_config(path: str) -> dict[str, dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    missing = [
        f"[{section}] {key}"
        for section, keys in REQUIRED_KEYS.items()
        for key in keys
        if not isinstance(data.get(section), Mapping) or key not in data[section]
    ]
    if missing:
        raise ConfigError(f"config {path}: required key(s) missing: {', '.join(missing)}")
    return merge_config(data)


def redact_url(url: str) -> str:
    """``host:port/db`` of a database or Redis URL: never the user or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port
    except (ValueError, TypeError, AttributeError):
        return "<unparseable url>"
    if ":" in host:
        host = f"[{host}]"
    where = f"{host}:{port}" if port else host
    path = parts.path.strip("/")
    return f"{where}/{path}" if path else where


def url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except (ValueError, TypeError, AttributeError):
        return None
    return unquote(password) if password else None


def log_level(text: Any) -> int:
    """A logging level from ``info``, ``debug``, ``warn``... (also RUST_LOG style ``info,foo=debug``)."""
    word = str(text or "info").split(",")[0].split("=")[-1].strip().lower()
    return LOG_LEVELS.get(word, logging.INFO)


def brief_error(exc: BaseException) -> str:
    """An exception in one log line: its type and message (never a URL with its password: callers redact)."""
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
