"""The backend host's containers: running, stable, on the right networks, and reachable only through the edge."""

from __future__ import annotations

import datetime as dt

import pytest

from viworks_verify.backend.containers import publishing_problems, restart_problem
from viworks_verify.verdict import CheckFailed, fail

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("containers")]


def _expected_containers(settings):
    backend = settings.backend
    return (backend.agent_container, backend.nginx_container, backend.postgres_container, backend.redis_container)


def _require_container(snapshot, name):
    container = snapshot.container(name)
    if container is None:
        fact = snapshot.containers.get(name)
        if fact is not None:
            raise CheckFailed(fact.problem)  # the reading's own verdict, host first
        fail(snapshot.host, expected=f"container {name}", found="not read")
    return container


@pytest.mark.smoke
def test_containers_are_running(backend_host, backend_snapshot, settings):
    problems = []
    for name in _expected_containers(settings):
        facts = backend_snapshot.container(name)
        if facts is None:
            problems.append(f"{name} missing")
        elif not facts.running:
            exited = f", exit code {facts.exit_code}" if facts.exit_code is not None else ""
            problems.append(f"{name} is {facts.status}{exited} (docker logs {name})")
        elif facts.health == "unhealthy":
            problems.append(f"{name} is running but its healthcheck says unhealthy")
    if problems:
        fail(backend_host.id, expected="every container running", found="; ".join(problems))


@pytest.mark.smoke
def test_containers_are_not_restarting_repeatedly(backend_host, backend_snapshot, settings):
    backend = settings.backend
    # Judged at the moment of reading, by the engine's clock (the reader already watched a recent
    # restart settle for the rest of its window).
    read_at = dt.datetime.fromtimestamp(backend_snapshot.gathered_at + backend_snapshot.engine_offset_s, dt.timezone.utc)
    problems = []
    for name in _expected_containers(settings):
        facts = backend_snapshot.container(name)
        if facts is None or not facts.running:
            continue  # test_containers_are_running says so
        problem = restart_problem(facts, read_at, backend.max_restarts, backend.restart_window_s)
        if problem:
            problems.append(problem)
    if problems:
        fail(backend_host.id, expected=f"at most {backend.max_restarts} restarts and every container up "
                                       f"{backend.restart_window_s:.0f} s since its last restart", found="; ".join(problems))


@pytest.mark.smoke
@pytest.mark.area("network")
def test_backend_agent_is_on_every_expected_network(backend_host, backend_snapshot, settings, recorder):
    name = settings.backend.agent_container
    facts = _require_container(backend_snapshot, name)
    attached = facts.attrs.get("NetworkSettings", {}).get("Networks") or {}
    recorder.attach(f"{name} networks", {network: {"ip": info.get("IPAddress"), "aliases": info.get("Aliases")} for network, info in attached.items()})
    missing = [network for network in settings.backend.networks if network not in facts.networks]
    if missing:
        fail(backend_host.id, name, expected=f"on [{', '.join(settings.backend.networks)}]",
             found=f"on [{', '.join(facts.networks)}], missing {', '.join(missing)}",
             evidence="; ".join(f"docker network connect {network} {name}" for network in missing))


@pytest.mark.smoke
@pytest.mark.area("network")
def test_backend_agent_postgres_and_redis_publish_no_port(backend_host, backend_snapshot, settings):
    """Exposure: the edge is the only way in. Whoever reaches 8080/8081 directly bypasses TLS, the
    client-certificate check and the identity binding; the database and cache are internal only."""
    backend = settings.backend
    problems = []
    for name in (backend.agent_container, backend.postgres_container, backend.redis_container):
        facts = backend_snapshot.container(name)
        if facts is not None:  # a missing container: test_containers_are_running says so
            problems += publishing_problems(facts, backend.allow_loopback_publishing)
    allowed = "; the target allows loopback only" if backend.allow_loopback_publishing else ""
    if problems:
        fail(backend_host.id,
             expected=f"{backend.agent_container}, {backend.postgres_container} and {backend.redis_container} published on no host "
                      f"address (nginx reaches them over the Docker networks{allowed})",
             found="; ".join(problems), evidence="remove the ports: mapping")
