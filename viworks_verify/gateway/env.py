"""The gateway agent's ``.env`` judged against the contract: keys, backend URL, pin, feature flags.

Sans-I/O: every function takes the parsed file (``envfile.parse_env``) or one of its values and
returns what is wrong as a short phrase (the "found" half of a failure message), or nothing. The
value of a key whose name marks it secret (``envfile.is_secret_name``) never appears in a phrase.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import ipaddress
import posixpath
from collections.abc import Mapping
from urllib.parse import urlsplit

from viworks_verify.core.envfile import is_secret_name
from viworks_verify.gateway.config import OUTBOUND_KEYS
from viworks_verify.pki.pins import PinFormatError, parse_pins

BACKEND_URL = "VIW_AGENT_BACKEND_URL"
AGENT_ID = "VIW_AGENT_ID"
CERT_PATH = "VIW_AGENT_CERT_PATH"
KEY_PATH = "VIW_AGENT_KEY_PATH"
TRUST_BUNDLE = "VIW_AGENT_TRUST_BUNDLE"
SPKI_PIN = "VIW_AGENT_BACKEND_SPKI_PIN"
SCRIPTS_ROOT = "VIW_AGENT_SCRIPTS_ROOT"
FEATURE_EXEC = "VIW_AGENT_FEATURE_EXEC_ENABLE"
FEATURE_INBOUND_HTTP = "VIW_AGENT_FEATURE_INBOUND_HTTP"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Placeholders seen in templates: the SHA-256 of nothing (``echo -n | sha256sum``).
_PLACEHOLDER_DIGESTS = {hashlib.sha256(b"").digest(): "the SHA-256 of empty input"}
_MIN_DISTINCT_DIGEST_BYTES = 12  # a real SHA-256 digest has ~30 distinct bytes of 32; "AAAA...=" has 1


def shown(key: str, value: str | None) -> str:
    """A value as a message may show it: secrets masked, absence said."""
    if value is None:
        return "<not set>"
    if is_secret_name(key):
        return "***"
    return value


def key_problems(env: Mapping[str, str], required: tuple[str, ...] | list[str]) -> list[str]:
    """Required keys that are absent or empty (``VIW_AGENT_SITE missing``, ``RUST_LOG empty``)."""
    problems = []
    for key in required:
        if key not in env:
            problems.append(f"{key} missing")
        elif not env[key].strip():
            problems.append(f"{key} empty")
    return problems


def unknown_keys(env: Mapping[str, str], known: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Keys of the .env that the agent does not read (beyond ``known`` and the ``[outbound]`` overrides),
    each with the known key it most resembles (a typo), or None."""
    names = sorted({*known, *OUTBOUND_KEYS})
    return {
        key: next(iter(difflib.get_close_matches(key, names, n=1, cutoff=0.8)), None) for key in env if key not in names
    }


def expected_backend_url(domain: str, ws_path: str, https_port: int = 443) -> str:
    """The agent WebSocket URL as an agent writes it: ``wss://`` the agent domain (the port only when not 443)
    and path."""
    port = "" if https_port == 443 else f":{https_port}"
    return f"wss://{domain}{port}{ws_path}"


def backend_url_problems(url: str | None, domain: str, ws_path: str, https_port: int = 443) -> list[str]:
    """What keeps ``url`` from being the agent endpoint behind the TLS edge (empty when it is)."""
    if url is None or not url.strip():
        return ["no URL"]
    parts = urlsplit(url.strip())
    problems = []
    scheme = parts.scheme.lower()
    if scheme == "ws":
        problems.append("scheme ws:// (plain text: no TLS, no client certificate, no pin)")
    elif scheme != "wss":
        problems.append(f"scheme {parts.scheme or '<none>'}://")
    host = parts.hostname
    if not host:
        problems.append("no host")
    elif _is_ip(host):
        problems.append(
            f"host {host} is an IP address, not the agent domain (certificate names and the pin belong to the domain)"
        )
    elif host.rstrip(".").lower() != domain.rstrip(".").lower():
        problems.append(f"host {host}")
    try:
        port = parts.port
    except ValueError:
        problems.append("a port that is not a number")
    else:
        effective = port if port is not None else (443 if scheme == "wss" else 80 if scheme == "ws" else None)
        if effective is not None and effective != https_port:
            problems.append(f"port {effective} (not the edge's {https_port}: bypasses nginx)")
    if parts.path != ws_path:
        problems.append(f"path {parts.path or '<none>'}")
    return problems


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def pin_problem(text: str | None) -> str | None:
    """Why a configured pin list is unusable (malformed or a placeholder), or None."""
    if text is None or not text.strip():
        return "no pin"
    try:
        pins = parse_pins(text)
    except PinFormatError as exc:
        return str(exc)
    for pin in pins:
        digest = base64.b64decode(pin.value)
        if digest in _PLACEHOLDER_DIGESTS:
            return f"pin {pin.value} is a placeholder ({_PLACEHOLDER_DIGESTS[digest]})"
        distinct = len(set(digest))
        if distinct < _MIN_DISTINCT_DIGEST_BYTES:
            plural = "" if distinct == 1 else "s"
            return (
                f"pin {pin.value} is a placeholder "
                f"(a digest of {distinct} distinct byte value{plural}; a real SHA-256 has about 30)"
            )
    return None


def parse_flag(text: str | None) -> bool | None:
    """A boolean as the agent reads it (true/false, 1/0, yes/no, on/off), or None when it is not one."""
    if text is None:
        return None
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def flag_problem(env: Mapping[str, str], key: str, expected: bool) -> str | None:
    """How a feature flag differs from the expected value (``VIW_AGENT_FEATURE_INBOUND_HTTP=true``), or None."""
    if key not in env:
        return f"{key} not set"
    value = parse_flag(env[key])
    if value is None:
        return f"{key}={shown(key, env[key])!s} (not a boolean)"
    if value != expected:
        return f"{key}={shown(key, env[key])}"
    return None


def required_paths(env: Mapping[str, str], scripts: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The files the ``.env`` makes the agent need, by role (``certificate``, ``script add_user.sh``)."""
    paths = {}
    for role, key in (("certificate", CERT_PATH), ("key", KEY_PATH), ("CA", TRUST_BUNDLE)):
        if env.get(key, "").strip():
            paths[role] = env[key].strip()
    root = env.get(SCRIPTS_ROOT, "").strip()
    if root:
        for name in scripts:
            paths[f"script {name}"] = posixpath.join(root, name)
    return paths
