"""The files the agent needs at start-up and on every connection: checked, and the TLS context built from them."""

from __future__ import annotations

import logging
import os
import ssl
import stat
from pathlib import Path
from typing import Any

from viworks_lab.agents.gateway.config import Config, ConfigError

log = logging.getLogger("viworks-gateway-agent")


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
