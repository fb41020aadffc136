"""The gateway agent connected: its journal shows a session established since the unit last started."""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("session")]


@pytest.mark.smoke
@pytest.mark.needs_agent("running")
def test_agent_logged_a_connected_session_since_its_last_start(gateway_host, gateway_unit, gateway_snapshot, settings):
    invocation = gateway_unit.get("InvocationID")
    pattern = settings.gateway.connected_log_pattern
    started = gateway_unit.get("ActiveEnterTimestamp") or "?"
    active = gateway_unit.get("ActiveState")
    if active != "active" or not invocation:
        # An inactive unit keeps its last InvocationID: a session it once had is not a session now.
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=f"a running unit that logged {pattern!r}",
            found=f"it is not running (ActiveState={active or '?'}, InvocationID={invocation or '<none>'})",
        )
    if pattern is None:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected="a connected-session line to look for (what the agent logs once the backend welcomes it)",
            found="none",
            evidence=f"set gateway.connected_log_pattern in {settings.source}",
        )
    logged = gateway_snapshot.journal.require()
    if logged.connected:
        return
    quoted = logged.quote
    seen = f"it logged: {quoted[:240]}" if quoted else "nothing logged (empty journal)"
    fail(
        gateway_host.id,
        gateway_unit.unit,
        expected=f"the agent connected to the backend: {pattern!r} in the journal since it started "
        f"({started}, invocation {invocation})",
        found=f"no {pattern!r}; {seen}",
    )
