"""The backend host's containers: running, stable, on the right networks, published as expected."""

from __future__ import annotations

import pytest

from viworks_verify.containers import binding_problem, restart_problem

pytestmark = [pytest.mark.infra, pytest.mark.backend]


def _expected_containers(settings):
    backend = settings.backend
    return (backend.agent_container, backend.nginx_container, backend.postgres_container, backend.redis_container)


@pytest.mark.smoke
def test_containers_are_running(backend_host, backend_containers, settings):
    problems = []
    for name in _expected_containers(settings):
        facts = backend_containers.get(name)
        if facts is None:
            problems.append(f"{name} missing")
        elif not facts.running:
            exited = f", exit code {facts.exit_code}" if facts.exit_code is not None else ""
            problems.append(f"{name} is {facts.status}{exited} (docker logs {name})")
        elif facts.health == "unhealthy":
            problems.append(f"{name} is running but its healthcheck says unhealthy")
    assert not problems, f"{backend_host.id}: expected every container running; found {'; '.join(problems)}"


@pytest.mark.smoke
def test_containers_are_not_restarting_repeatedly(backend_host, backend_containers, settings):
    backend = settings.backend
    problems = []
    for name in _expected_containers(settings):
        facts = backend_containers.get(name)
        if facts is None or not facts.running:
            continue  # test_containers_are_running says so
        problem = restart_problem(facts, backend_containers.engine_now(), backend.max_restarts, backend.restart_window_s)
        if problem and facts.restart_count <= backend.max_restarts:
            # Restarted recently but within bounds: watch it for the rest of the window, no fixed sleep.
            problem = backend_containers.watch_settling(name, backend.restart_window_s)
        if problem:
            problems.append(problem)
    assert not problems, (
        f"{backend_host.id}: expected at most {backend.max_restarts} restarts and every container up "
        f"{backend.restart_window_s:.0f} s since its last restart; found {'; '.join(problems)}"
    )


@pytest.mark.smoke
def test_backend_agent_is_on_every_expected_network(backend_host, backend_containers, settings, recorder):
    name = settings.backend.agent_container
    facts = backend_containers.require(name)
    attached = facts.attrs.get("NetworkSettings", {}).get("Networks") or {}
    recorder.attach(f"{name} networks", {network: {"ip": info.get("IPAddress"), "aliases": info.get("Aliases")} for network, info in attached.items()})
    missing = [network for network in settings.backend.networks if network not in facts.networks]
    assert not missing, (
        f"{backend_host.id}: {name}: expected on [{', '.join(settings.backend.networks)}]; found on [{', '.join(facts.networks)}] "
        f"(missing {', '.join(missing)}: docker network connect {missing[0]} {name})"
    )


@pytest.mark.smoke
def test_backend_agent_ports_are_published(backend_host, backend_containers, settings):
    backend = settings.backend
    facts = backend_containers.require(backend.agent_container)
    problems = [p for p in (binding_problem(facts, port, backend.published_host_ip) for port in (backend.api_port, backend.ws_port)) if p]
    assert not problems, f"{backend_host.id}: {backend.agent_container}: {'; '.join(problems)}"
