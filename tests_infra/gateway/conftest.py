"""Gateway host facts several checks need, read once per host per run."""

from __future__ import annotations

import pytest

from viworks_verify.systemd_unit import UnitProperties, show_command


@pytest.fixture(scope="session")
def gateway_unit(gateway_host, settings) -> UnitProperties:
    unit = settings.gateway.unit
    result = gateway_host.run(" ".join(["%s"] * len(show_command(unit))), *show_command(unit))
    if result.rc != 0:
        pytest.fail(f"{gateway_host.id}: systemctl show {unit} failed: {result.stderr.strip()[:200]}", pytrace=False)
    return UnitProperties.parse(unit, result.stdout)
