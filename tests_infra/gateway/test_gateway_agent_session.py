"""The gateway agent connected: its journal shows a session established since the unit last started."""

from __future__ import annotations

import pytest

from viworks_verify import journal

pytestmark = [pytest.mark.infra, pytest.mark.gateway]


@pytest.mark.smoke
def test_agent_logged_a_connected_session_since_its_last_start(gateway_host, gateway_unit, settings):
    invocation = gateway_unit.get("InvocationID")
    pattern = settings.gateway.connected_log_pattern
    started = gateway_unit.get("ActiveEnterTimestamp") or "?"
    if not invocation:
        pytest.fail(
            f"{gateway_host.id}: {gateway_unit.unit} has no current invocation (ActiveState={gateway_unit.get('ActiveState') or '?'}); "
            f"expected a running unit that logged {pattern!r}",
            pytrace=False,
        )
    template, args = journal.last_match_command(invocation, pattern)
    matched = journal.parse_lines(gateway_host.run(template, *args).stdout)
    if matched:
        return
    template, args = journal.last_lines_command(invocation, 1)
    last = gateway_host.run(template, *args)
    last_lines = journal.parse_lines(last.stdout)
    seen = f"last logged: {str(last_lines[-1])[:240]}" if last_lines else f"nothing logged ({last.stderr.strip()[:160] or 'empty journal'})"
    pytest.fail(
        f"{gateway_host.id}: {gateway_unit.unit}: no {pattern!r} in the journal since it started ({started}, invocation {invocation}); "
        f"{seen}; expected the agent connected to the backend",
        pytrace=False,
    )
