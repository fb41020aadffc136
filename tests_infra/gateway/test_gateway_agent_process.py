"""The gateway agent at run time: its process is the unit's program, and the host listens only for sshd."""

from __future__ import annotations

import pytest

from viworks_verify import ss_listeners

pytestmark = [pytest.mark.infra, pytest.mark.gateway]


def _main_pid(gateway_unit) -> int:
    value = gateway_unit.get("MainPID")
    return int(value) if value.isdigit() else 0


@pytest.mark.smoke
def test_agent_process_runs_the_unit_program(gateway_host, gateway_unit, gateway_snapshot, fact_of):
    pid, program = _main_pid(gateway_unit), gateway_unit.exec_start_path
    if pid == 0 or program is None:
        pytest.fail(
            f"{gateway_host.id}: {gateway_unit.unit}: MainPID={pid}, ExecStart={program or '<none>'} "
            f"(ActiveState={gateway_unit.get('ActiveState') or '?'}); expected a running agent process",
            pytrace=False,
        )
    fact_of(gateway_snapshot, "process").require()
    facts = gateway_snapshot.process_facts()
    if not facts.alive or not facts.runs_program:
        pytest.fail(f"{gateway_host.id}: {gateway_unit.unit}: MainPID {facts.describe()}; expected a live process running {program}", pytrace=False)


@pytest.mark.smoke
def test_host_listens_on_no_port_but_sshd(gateway_host, gateway_unit, gateway_snapshot, fact_of, settings):
    fact_of(gateway_snapshot, "listeners").require()
    allowed = settings.gateway.listen_allowed_processes
    found = ss_listeners.unexpected(gateway_snapshot.host_listeners(), allowed, settings.gateway.engine_listen_addresses)
    labels = {_main_pid(gateway_unit): "the agent"}
    if found:
        pytest.fail(
            f"{gateway_host.id}: listening: {'; '.join(listener.describe(labels) for listener in found)}; "
            f"expected no listener but {', '.join(allowed)} (outbound only)",
            pytrace=False,
        )
