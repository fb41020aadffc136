"""The backend host's containers: running, stable, on exactly their networks, and reachable only through the edge."""

from __future__ import annotations

import datetime as dt

import pytest

from viworks_verify.backend.containers import host_address, network_set_problem, publishing_problems, restart_problem
from viworks_verify.core.verdict import CheckFailed, fail

pytestmark = [pytest.mark.infra, pytest.mark.backend, pytest.mark.area("containers")]


def _expected_containers(settings):
    backend = settings.backend
    return (backend.agent_container, backend.nginx_container, backend.postgres_container, backend.redis_container)


def _container(snapshot, name):
    """The container's facts (``BackendSnapshot.containers``); None when there is none by that name."""
    fact = snapshot.containers.get(name)
    return fact.value if fact is not None else None


def _require_container(snapshot, name):
    fact = snapshot.containers.get(name)
    if fact is None:
        fail(snapshot.host, expected=f"container {name}", found="not read")
    if not fact.ok:
        raise CheckFailed(fact.problem)  # the reading's own verdict, host first
    return fact.value


@pytest.mark.smoke
def test_containers_are_running(backend_host, backend_snapshot, settings):
    problems = []
    for name in _expected_containers(settings):
        facts = _container(backend_snapshot, name)
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
    read_at = dt.datetime.fromtimestamp(backend_snapshot.gathered_at + backend_snapshot.engine_offset_s, dt.UTC)
    problems = []
    for name in _expected_containers(settings):
        facts = _container(backend_snapshot, name)
        if facts is None or not facts.running:
            continue  # test_containers_are_running says so
        problem = restart_problem(facts, read_at, backend.max_restarts, backend.restart_window_s)
        if problem:
            problems.append(problem)
    if problems:
        fail(
            backend_host.id,
            expected=f"at most {backend.max_restarts} restarts and every container up "
            f"{backend.restart_window_s:.0f} s since its last restart",
            found="; ".join(problems),
        )


@pytest.mark.smoke
@pytest.mark.area("network")
def test_backend_agent_is_on_exactly_the_expected_networks(backend_host, backend_snapshot, settings, recorder):
    """Both ways: a missing network cuts nginx or the database off; an extra one (Docker's default
    ``bridge``) makes the agent's plain 8080/8081 reachable from every container on that network."""
    name = settings.backend.agent_container
    facts = _require_container(backend_snapshot, name)
    attached = facts.attrs.get("NetworkSettings", {}).get("Networks") or {}
    recorder.attach(
        f"{name} networks",
        {network: {"ip": info.get("IPAddress"), "aliases": info.get("Aliases")} for network, info in attached.items()},
    )
    problem = network_set_problem(facts.networks, settings.backend.networks)
    if problem:
        fail(
            backend_host.id,
            name,
            expected=f"on exactly [{', '.join(settings.backend.networks)}]",
            found=f"on [{', '.join(facts.networks)}], {problem.found}",
            evidence=problem.fix(name),
        )


@pytest.mark.smoke
@pytest.mark.area("network")
def test_nginx_postgres_and_redis_are_on_no_unexpected_network(backend_host, backend_snapshot, settings):
    """Postgres and Redis on the internal network only; nginx on the edge's network and those it shares
    with the agent, nothing more."""
    backend = settings.backend
    expected = {
        backend.postgres_container: backend.internal_networks,
        backend.redis_container: backend.internal_networks,
    }
    problems, fixes = [], []
    for name, networks in expected.items():
        facts = _container(backend_snapshot, name)
        if facts is None:
            continue  # test_containers_are_running says so
        problem = network_set_problem(facts.networks, networks)
        if problem:
            problems.append(
                f"{name} on [{', '.join(facts.networks)}] (expected [{', '.join(networks)}]), {problem.found}"
            )
            fixes.append(problem.fix(name))
    nginx = _container(backend_snapshot, backend.nginx_container)
    if nginx is not None:
        allowed = (*backend.edge_networks, *backend.networks)
        problem = network_set_problem(nginx.networks, backend.edge_networks, may_also=allowed)
        if problem:
            problems.append(
                f"{nginx.name} on [{', '.join(nginx.networks)}] "
                f"(expected [{', '.join(backend.edge_networks)}] and any of "
                f"[{', '.join(backend.networks)}]), {problem.found}"
            )
            fixes.append(problem.fix(nginx.name))
    if problems:
        fail(
            backend_host.id,
            expected="each container on its networks only",
            found="; ".join(problems),
            evidence="; ".join(fixes),
        )


@pytest.mark.smoke
@pytest.mark.area("network")
def test_nginx_publishes_only_the_edge_ports(backend_host, backend_snapshot, settings):
    """The edge is the only way in: nginx publishes the HTTP and HTTPS ports, and no other."""
    name, edge = settings.backend.nginx_container, settings.edge
    facts = _container(backend_snapshot, name)
    if facts is None:
        return  # test_containers_are_running says so
    published = sorted({int(host_port) for _, _, host_port in facts.host_bindings() if host_port.isdigit()})
    expected = sorted({edge.http_port, edge.https_port})
    missing, extra = [p for p in expected if p not in published], [p for p in published if p not in expected]
    if missing or extra:
        found = [f"missing {', '.join(map(str, missing))}"] if missing else []
        found += [f"also {', '.join(b for port in extra for b in _bindings_on(facts, port))}"] if extra else []
        fail(
            backend_host.id,
            name,
            expected=f"published on exactly ports {', '.join(map(str, expected))}",
            found=f"published on {', '.join(map(str, published)) or 'none'}: {'; '.join(found)}",
        )


def _bindings_on(facts, port: int) -> list[str]:
    return [
        f"{host_address(ip)}:{host_port}->{container_port}"
        for container_port, ip, host_port in facts.host_bindings()
        if host_port == str(port)
    ]


@pytest.mark.smoke
@pytest.mark.area("network")
def test_backend_agent_postgres_and_redis_publish_no_port(backend_host, backend_snapshot, settings):
    """Exposure: the edge is the only way in. Whoever reaches 8080/8081 directly bypasses TLS, the
    client-certificate check and the identity binding; the database and cache are internal only."""
    backend = settings.backend
    problems = []
    for name in (backend.agent_container, backend.postgres_container, backend.redis_container):
        facts = _container(backend_snapshot, name)
        if facts is not None:  # a missing container: test_containers_are_running says so
            problems += publishing_problems(facts, backend.allow_loopback_publishing)
    allowed = "; the target allows loopback only" if backend.allow_loopback_publishing else ""
    if problems:
        fail(
            backend_host.id,
            expected=f"{backend.agent_container}, {backend.postgres_container} and {backend.redis_container} "
            f"published on no host address (nginx reaches them over the Docker networks{allowed})",
            found="; ".join(problems),
            evidence="remove the ports: mapping",
        )
