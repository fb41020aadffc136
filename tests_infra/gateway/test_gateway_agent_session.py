"""The gateway agent connected: its journal shows a session established since the unit last started."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("session")]


@pytest.mark.smoke
def test_agent_logged_a_connected_session_since_its_last_start(gateway_host, gateway_unit, gateway_snapshot, fact_of, settings):
    invocation = gateway_unit.get("InvocationID")
    pattern = settings.gateway.connected_log_pattern
    started = gateway_unit.get("ActiveEnterTimestamp") or "?"
    active = gateway_unit.get("ActiveState")
    if active != "active" or not invocation:
        # An inactive unit keeps its last InvocationID: a session it once had is not a session now.
        pytest.fail(
            f"{gateway_host.id}: {gateway_unit.unit} is not running (ActiveState={active or '?'}, InvocationID={invocation or '<none>'}); "
            f"expected a running unit that logged {pattern!r}",
            pytrace=False,
        )
    if pattern is None:
        pytest.fail(f"{gateway_host.id}: no connected-session line to look for: set gateway.connected_log_pattern (what the agent "
                    f"logs once the backend welcomes it) in {settings.source}", pytrace=False)
    logged = fact_of(gateway_snapshot, "journal").require()
    if logged.get("connected"):
        return
    telling = logged.get("telling")
    seen = f"it logged: {telling[:240]}" if telling else "nothing logged (empty journal)"
    pytest.fail(
        f"{gateway_host.id}: {gateway_unit.unit}: no {pattern!r} in the journal since it started ({started}, invocation {invocation}); "
        f"{seen}; expected the agent connected to the backend",
        pytrace=False,
    )
