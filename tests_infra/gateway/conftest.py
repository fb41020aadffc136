"""Gateway host facts several checks need, read once per host per run.

A fact that cannot be read is a ``Reading`` with its problem: the first check that needs it fails
with the reason and later ones skip with it, so one root cause is one failure.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import pytest
from cryptography import x509

from viworks_verify import certs, public_keys
from viworks_verify.envfile import parse_env
from viworks_verify.file_stat import FileTable, stat_command
from viworks_verify.gateway_env import CERT_PATH, KEY_PATH, TRUST_BUNDLE, required_paths
from viworks_verify.pins import load_certificate
from viworks_verify.pytest_plugin import Reading
from viworks_verify.systemd_unit import UnitProperties, show_command


@pytest.fixture(scope="session")
def gateway_unit(gateway_host, settings) -> UnitProperties:
    unit = settings.gateway.unit
    result = gateway_host.run(" ".join(["%s"] * len(show_command(unit))), *show_command(unit))
    if result.rc != 0:
        pytest.fail(f"{gateway_host.id}: systemctl show {unit} failed: {result.stderr.strip()[:200]}", pytrace=False)
    return UnitProperties.parse(unit, result.stdout)


@pytest.fixture(scope="session")
def gateway_required_files(settings, gateway_unit, gateway_env_text) -> dict[str, str]:
    """Every file the agent needs, by role: the unit's program and env files, the .env's certificates and scripts."""
    files = {"binary": settings.gateway.binary_path, ".env": settings.gateway.env_file}
    if gateway_unit.exec_start_path:
        files["ExecStart"] = gateway_unit.exec_start_path
    for index, path in enumerate(gateway_unit.environment_files):
        files[f"EnvironmentFile{index or ''}"] = path
    env = parse_env(gateway_env_text) if gateway_env_text is not None else {}
    files.update(required_paths(env, settings.gateway.scripts))
    return files


@pytest.fixture(scope="session")
def gateway_files(gateway_host, gateway_required_files) -> FileTable:
    """Owner, mode and type of every required file, from ONE stat command."""
    paths = list(dict.fromkeys(gateway_required_files.values()))
    template, args = stat_command(paths)
    result = gateway_host.run(template, *args)
    table = FileTable.parse(result.stdout, result.stderr)
    if result.rc not in (0, 1) or (not table.stats and not table.errors):
        pytest.fail(f"{gateway_host.id}: stat of the agent's files failed (exit {result.rc}): {result.stderr.strip()[:200]}", pytrace=False)
    return table


@dataclasses.dataclass(frozen=True)
class GatewayPki:
    """The agent's client identity as found on the host: each part a fact or why it is unusable."""

    certificate: Reading  # x509.Certificate
    ca: Reading  # list[x509.Certificate]
    key_spki: Reading  # bytes: the key's PUBLIC half only


@pytest.fixture(scope="session")
def gateway_pki(gateway_host, settings, gateway_env_reading) -> GatewayPki:
    def part(key: str, read: Callable[[str], tuple[object, str | None]]) -> Callable[[dict[str, str]], Reading]:
        def derive(env: dict[str, str]) -> Reading:
            path = env.get(key)
            if not path:
                return Reading(problem=f"{gateway_host.id}: {settings.gateway.env_file}: {key} not set; expected the path of the agent's {key}")
            value, problem = read(path)
            return Reading(problem=f"{gateway_host.id}: {problem}") if problem else Reading(value)

        return derive

    certificate = gateway_env_reading.then(part(CERT_PATH, lambda path: _first(_read_certificates(gateway_host, path))))
    ca = gateway_env_reading.then(part(TRUST_BUNDLE, lambda path: _read_certificates(gateway_host, path)))
    key_spki = gateway_env_reading.then(part(KEY_PATH, lambda path: _key_spki(gateway_host, path)))
    return GatewayPki(certificate, ca, key_spki)


def _first(found: tuple[list[x509.Certificate], str | None]) -> tuple[x509.Certificate | None, str | None]:
    certificates, problem = found
    return (certificates[0] if certificates else None), problem


def _read_certificates(host, path: str) -> tuple[list[x509.Certificate], str | None]:
    text = host.read_file(path)
    if text is None:
        return [], f"{path} cannot be read (missing?); expected a PEM certificate"
    try:
        found = certs.load_pem_certificates(text.encode()) if "-----BEGIN" in text else [load_certificate(text.encode())]
    except ValueError:
        return [], f"{path} holds no PEM certificate; expected one"
    return found, None


def _key_spki(host, path: str) -> tuple[bytes | None, str | None]:
    """The private key's public half: derived on the host (openssl), the key never crossing the connection.

    Only where the host has no openssl is the key read once, its public half taken and the rest dropped;
    testinfra's command log is off for that read so the key cannot reach a log.
    """
    template, args = public_keys.public_key_command(path)
    result = host.run(template, *args)
    if result.rc == 0:
        try:
            return public_keys.spki_from_public_pem(result.stdout), None
        except ValueError as exc:
            return None, f"{path}: {exc}"
    if result.rc != public_keys.COMMAND_NOT_FOUND:
        return None, f"{path} unusable as a private key (openssl: {_first_line(result.stderr)})"
    testinfra_log = logging.getLogger("testinfra")
    was_disabled, testinfra_log.disabled = testinfra_log.disabled, True
    try:
        read = host.run("cat -- %s", path)
        if read.rc != 0:
            return None, f"{path} cannot be read (missing?); expected the agent's private key"
        return public_keys.spki_from_private_pem(read.stdout.encode()), None
    except ValueError as exc:
        return None, f"{path}: {exc}"
    finally:
        testinfra_log.disabled = was_disabled
        read = None  # noqa: F841 - drop the key text now


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:160] if lines else "no message"
