"""The gateway agent at run time: its process is the unit's program and listens on nothing;
the host listens only where declared."""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail
from viworks_verify.gateway import ss_listeners

pytestmark = [pytest.mark.infra, pytest.mark.gateway, pytest.mark.area("network")]


def _main_pid(gateway_unit) -> int:
    value = gateway_unit.get("MainPID")
    return int(value) if value.isdigit() else 0


@pytest.mark.smoke
@pytest.mark.area("unit")
@pytest.mark.needs_agent("running")
def test_agent_process_runs_the_unit_program(gateway_host, gateway_unit, gateway_snapshot):
    pid, program = _main_pid(gateway_unit), gateway_unit.exec_start_path
    if pid == 0 or program is None:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected="a running agent process",
            found=f"MainPID={pid}, ExecStart={program or '<none>'} "
            f"(ActiveState={gateway_unit.get('ActiveState') or '?'})",
        )
    facts = gateway_snapshot.process.require()
    if not facts.alive or not facts.runs_program:
        fail(
            gateway_host.id,
            gateway_unit.unit,
            expected=f"a live process running {program}",
            found=f"MainPID {facts.describe()}",
        )


@pytest.mark.smoke
@pytest.mark.needs_agent("running")
def test_agent_listens_on_no_port(gateway_host, gateway_unit, gateway_snapshot, settings):
    """Outbound only: with inbound HTTP off, the agent process listens on nothing."""
    listeners = gateway_snapshot.listeners.require().listeners
    pid = _main_pid(gateway_unit)
    if settings.gateway.expect_inbound_http or pid == 0:
        return  # inbound HTTP expected; or no agent process (test_agent_process_runs_the_unit_program says so)
    found = ss_listeners.owned_by(listeners, {pid})
    if found:
        fail(
            gateway_host.id,
            "the agent",
            expected="no listener (outbound only, inbound HTTP off)",
            found=f"it listens: {'; '.join(listener.describe({pid: 'the agent'}) for listener in found)}",
        )


@pytest.mark.smoke
def test_host_listens_only_where_declared(gateway_host, gateway_unit, gateway_snapshot, settings):
    """The host's other services (sshd, a resolver, a VPN server...) are the target's declared set."""
    listeners = gateway_snapshot.listeners.require().listeners
    gateway = settings.gateway
    agent = ss_listeners.owned_by(listeners, {_main_pid(gateway_unit)})  # test_agent_listens_on_no_port's
    found = [
        listener
        for listener in ss_listeners.undeclared(listeners, gateway.allowed_listeners, gateway.engine_listen_addresses)
        if listener not in agent
    ]
    if found:
        fail(
            gateway_host.id,
            expected=f"only the declared listeners ({', '.join(gateway.allowed_listeners)})",
            found=f"listening: {'; '.join(listener.describe() for listener in found)}",
            evidence=f"gateway.allowed_listeners in {settings.source}",
        )
