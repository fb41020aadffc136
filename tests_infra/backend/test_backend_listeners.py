"""Inside the backend agent container: the API and WebSocket ports are served by the agent itself.

Read from /proc (the production image has no ss/netstat/ps), in one exec per run.
"""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("network")]


def _check_served_by_backend_agent(host, settings, snapshot, port: int, role: str) -> None:
    backend = settings.backend
    where = f"{backend.agent_container}: {port}/tcp ({role})"
    agent = f"the backend agent ({backend.binary_path})"
    listeners = snapshot.listening_on(port)
    if not listeners:
        fail(
            host.id,
            where,
            expected=f"{agent} listening",
            found="nothing listening on it",
            evidence=f"listening: {', '.join(map(str, snapshot.listening_ports)) or 'none'}; "
            f"see docker logs {backend.agent_container}",
        )
    reachable = [listener for listener in listeners if listener.socket.reachable_from_outside]
    if not reachable:
        fail(
            host.id,
            where,
            expected="a listener on 0.0.0.0/:: or a container address (nginx must reach it)",
            found=f"{', '.join(listener.socket.endpoint for listener in listeners)} only",
            evidence=f"check bind_address in {backend.config_path}",
        )
    for listener in reachable:
        if not listener.owners:
            unlisted = snapshot.unlisted_pids
            why = (
                f"/proc/<pid>/fd not readable for pids {', '.join(map(str, unlisted))}"
                if unlisted
                else "no process in the container holds it"
            )
            fail(
                host.id,
                where,
                expected=f"{agent} to hold {listener.socket.endpoint}",
                found="owner unknown",
                evidence=why,
            )
        strangers = [owner for owner in listener.owners if not owner.runs(backend.binary_path)]
        if strangers:
            fail(
                host.id,
                where,
                expected=f"{agent} to hold {listener.socket.endpoint}",
                found=", ".join(o.describe() for o in strangers),
            )


@pytest.mark.smoke
def test_backend_agent_listens_on_api_port(backend_host, backend_snapshot, settings):
    listeners = backend_snapshot.agent_listeners.require()
    _check_served_by_backend_agent(backend_host, settings, listeners, settings.backend.api_port, "API")


@pytest.mark.smoke
def test_backend_agent_listens_on_ws_port(backend_host, backend_snapshot, settings):
    listeners = backend_snapshot.agent_listeners.require()
    _check_served_by_backend_agent(backend_host, settings, listeners, settings.backend.ws_port, "agent WebSocket")
