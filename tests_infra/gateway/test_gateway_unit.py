"""The gateway agent's systemd unit: loaded, enabled, active, not crash-looping."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.gateway]


@pytest.mark.smoke
def test_unit_is_loaded_enabled_and_active(gateway_host, gateway_unit):
    states = {key: gateway_unit.get(key) for key in ("LoadState", "UnitFileState", "ActiveState", "SubState")}
    expected = {"LoadState": "loaded", "UnitFileState": "enabled", "ActiveState": "active", "SubState": "running"}
    wrong = {key: value for key, value in states.items() if value != expected[key]}
    assert not wrong, (
        f"{gateway_host.id}: {gateway_unit.unit}: expected "
        + ", ".join(f"{k}={expected[k]}" for k in wrong) + "; found " + ", ".join(f"{k}={v or '?'}" for k, v in wrong.items())
    )


@pytest.mark.smoke
def test_unit_is_not_crash_looping(gateway_host, gateway_unit, settings):
    limit = settings.gateway.max_restarts
    assert gateway_unit.n_restarts <= limit, (
        f"{gateway_host.id}: {gateway_unit.unit}: expected at most {limit} restarts; found NRestarts={gateway_unit.n_restarts}"
    )
