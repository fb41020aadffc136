"""Gateway host facts as the checks use them, from the host's snapshot (no I/O here)."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from viworks_verify.core.fact import Fact
from viworks_verify.gateway.env import required_paths
from viworks_verify.gateway.file_stat import FileTable
from viworks_verify.gateway.systemd_unit import UnitProperties


@pytest.fixture
def gateway_unit(gateway_snapshot, settings) -> UnitProperties:
    """``GatewaySnapshot.unit``: the unit's properties (``systemctl show``), named as the target names the unit
    (a loaded snapshot's are nameless)."""
    return dataclasses.replace(gateway_snapshot.unit.require(), unit=settings.gateway.unit)


@pytest.fixture
def gateway_files(gateway_snapshot) -> FileTable:
    """``GatewaySnapshot.files``: owner, mode and type of every required file (one stat on the host)."""
    return gateway_snapshot.files.require()


@pytest.fixture
def gateway_required_files(settings, gateway_unit, gateway_env_fact) -> dict[str, str]:
    """Every file the agent needs, by role: the unit's program and env files, the .env's certificates and scripts."""
    files = {"binary": settings.gateway.binary_path, ".env": settings.gateway.env_file}
    if gateway_unit.exec_start_path:
        files["ExecStart"] = gateway_unit.exec_start_path
    for index, path in enumerate(gateway_unit.environment_files):
        files[f"EnvironmentFile{index or ''}"] = path
    env = gateway_env_fact.value or {}
    files.update(required_paths(env, settings.gateway.scripts))
    return files


@dataclasses.dataclass(frozen=True)
class GatewayPki:
    """The agent's client identity as found on the host: each part a fact or why it is unusable."""

    certificate: Fact  # x509.Certificate
    ca: Fact  # list[x509.Certificate]
    key_spki: Fact  # bytes: the key's PUBLIC half only
    intermediates: list  # x509.Certificate: the CA certificates the certificate file carries after its leaf


@pytest.fixture(scope="session")
def gateway_pki(gateway_snapshot) -> GatewayPki:
    return GatewayPki(
        gateway_snapshot.client_certificate.then(lambda pem: Fact(pem.leaf)),
        gateway_snapshot.trust_bundle.then(lambda bundle: Fact(bundle.certificates)),
        gateway_snapshot.client_key_spki.then(lambda text: Fact(base64.b64decode(text))),
        gateway_snapshot.client_certificate.value.after_leaf if gateway_snapshot.client_certificate.ok else [],
    )
