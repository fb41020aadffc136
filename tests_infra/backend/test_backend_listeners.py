"""Inside the backend agent container: the API and WebSocket ports are served by the agent itself.

Read from /proc (the production image has no ss/netstat/ps), in one exec per run.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("network")]


def _assert_served_by_backend_agent(host, settings, snapshot, port: int, role: str) -> None:
    backend = settings.backend
    where = f"{host.id}: {backend.agent_container}: {port}/tcp ({role})"
    agent = f"the backend agent ({backend.binary_path})"
    listeners = snapshot.listening_on(port)
    assert listeners, (
        f"{where}: expected {agent} listening; found nothing listening on it "
        f"(listening: {', '.join(map(str, snapshot.listening_ports)) or 'none'}; see docker logs {backend.agent_container})"
    )
    reachable = [listener for listener in listeners if listener.socket.reachable_from_outside]
    assert reachable, (
        f"{where}: expected a listener on 0.0.0.0/:: or a container address (nginx must reach it); "
        f"found {', '.join(listener.socket.endpoint for listener in listeners)} only (check bind_address in {backend.config_path})"
    )
    for listener in reachable:
        if not listener.owners:
            unlisted = snapshot.unlisted_pids
            why = f"/proc/<pid>/fd not readable for pids {', '.join(map(str, unlisted))}" if unlisted else "no process in the container holds it"
            pytest.fail(f"{where}: expected {agent} to hold {listener.socket.endpoint}; owner unknown: {why}", pytrace=False)
        strangers = [owner for owner in listener.owners if not owner.runs(backend.binary_path)]
        assert not strangers, (
            f"{where}: expected {agent} to hold {listener.socket.endpoint}; found {', '.join(o.describe() for o in strangers)}"
        )


@pytest.mark.smoke
def test_backend_agent_listens_on_api_port(backend_host, backend_listeners, settings):
    _assert_served_by_backend_agent(backend_host, settings, backend_listeners.require(), settings.backend.api_port, "API")


@pytest.mark.smoke
def test_backend_agent_listens_on_ws_port(backend_host, backend_listeners, settings):
    _assert_served_by_backend_agent(backend_host, settings, backend_listeners.require(), settings.backend.ws_port, "agent WebSocket")
