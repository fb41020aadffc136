"""The backend host's containers: running, stable, on the right networks, published as expected."""

from __future__ import annotations

import pytest

from viworks_verify.containers import binding_problem

pytestmark = [pytest.mark.infra, pytest.mark.backend]


def _expected_containers(settings):
    backend = settings.backend
    return (backend.agent_container, backend.nginx_container, backend.postgres_container, backend.redis_container)


@pytest.mark.smoke
def test_containers_are_running_and_stable(backend_host, backend_containers, settings):
    problems = []
    for name in _expected_containers(settings):
        facts = backend_containers.get(name)
        if facts is None:
            problems.append(f"{name} missing")
        elif not facts.running:
            problems.append(f"{name} is {facts.status}")
        elif facts.restart_count > settings.backend.max_restarts:
            problems.append(f"{name} restarted {facts.restart_count} times (max {settings.backend.max_restarts})")
    assert not problems, f"{backend_host.id}: expected every container running and stable; found {'; '.join(problems)}"


@pytest.mark.smoke
def test_backend_agent_is_on_every_expected_network(backend_host, backend_containers, settings):
    name = settings.backend.agent_container
    facts = backend_containers.require(name)
    missing = [network for network in settings.backend.networks if network not in facts.networks]
    assert not missing, f"{backend_host.id}: {name} is on [{', '.join(facts.networks)}]; missing {', '.join(missing)}"


@pytest.mark.smoke
def test_backend_agent_ports_are_published(backend_host, backend_containers, settings):
    backend = settings.backend
    facts = backend_containers.require(backend.agent_container)
    problems = [p for p in (binding_problem(facts, port, backend.published_host_ip) for port in (backend.api_port, backend.ws_port)) if p]
    assert not problems, f"{backend_host.id}: {backend.agent_container}: {'; '.join(problems)}"
