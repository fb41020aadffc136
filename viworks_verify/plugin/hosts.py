"""Every check gets the host it is about: parametrization (test ids naming the host), the host and
snapshot fixtures, a fact as a Reading shared by the run (an unreadable one fails once, then skips)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from viworks_verify.gather.reading import Reading, Unreadable
from viworks_verify.gather.snapshot import Snapshot
from viworks_verify.plugin.state import (
    _HOST,
    _HOSTS,
    _RECORDER,
    _SOURCE,
    RecordedHost,
    _area_of,
    _baseline,
    _deployed_agent_ids,
    _drift,
    _fail_on_drift,
    _gateway_host_running,
    _group_hosts,
    _host_ids,
    _host_of,
    _inventory,
    _reading,
    _replay,
    _row_of,
    _settings,
    _source,
)
from viworks_verify.report.drift import DriftItem, selected
from viworks_verify.target.connections import TargetHost


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every check the host it is about, in its test id (``[ssh://gw-lab-01]``)."""
    for fixture, group in (("backend_host", "backend"), ("gateway_host", "gateway")):
        if fixture in metafunc.fixturenames:
            hosts = _group_hosts(metafunc.config, group)
            metafunc.parametrize(
                fixture,
                [name for name, _ in hosts],
                ids=[host_id for _, host_id in hosts],
                indirect=True,
                scope="session",
            )
    if "drift_host" in metafunc.fixturenames:
        hosts = [host_id for group in ("backend", "gateway") for _, host_id in _group_hosts(metafunc.config, group)]
        hosts.append(f"https://{_settings(metafunc.config).edge.domain}")
        metafunc.parametrize("drift_host", hosts, ids=hosts, scope="session")
    if "public_address" in metafunc.fixturenames:
        settings = _settings(metafunc.config)
        addresses = list(settings.backend.public_addresses) or [settings.edge.connect_address or settings.edge.domain]
        metafunc.parametrize("public_address", addresses, ids=[f"tcp://{a}" for a in addresses], scope="session")
    if "deployed_agent_id" in metafunc.fixturenames:
        agent_ids = _deployed_agent_ids(metafunc.config)
        metafunc.parametrize("deployed_agent_id", agent_ids, ids=[f"agent://{a}" for a in agent_ids], scope="session")
    else:
        for fixture in ("edge", "edge_snapshot"):
            if fixture in metafunc.fixturenames:
                domain = _settings(metafunc.config).edge.domain
                metafunc.parametrize(fixture, [domain], ids=[f"https://{domain}"], indirect=True, scope="session")
                break


@pytest.fixture(scope="session")
def deployed_agents(pytestconfig: pytest.Config) -> list[str]:
    """Every deployed gateway agent id of the target (the ``deployed_agent_id`` parameters, all at once)."""
    return _deployed_agent_ids(pytestconfig)


def _target_host(request: pytest.FixtureRequest) -> TargetHost | RecordedHost:
    replay = _replay(request.config)
    if replay is not None:
        found = next(h for h in replay.hosts if h.kind in ("backend", "gateway") and h.name == request.param)
        return RecordedHost(found.host, found.name)
    _inventory(request.config)
    return request.config.stash[_HOSTS][request.param]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An unreachable host fails its first check once, fast; its other checks skip with the reason.

    Done before any fixture runs, so no cached fixture error repeats the failure for every check.
    """
    item.config.stash[_RECORDER].current_check = item.nodeid
    item.stash[_HOST] = _host_of(item)
    item.user_properties += [("host", item.stash[_HOST]), ("area", _area_of(item)), ("row", _row_of(item))]
    for host_id in _host_ids(item):
        snapshot = _source(item.config).snapshot(host_id)
        _reading(item.config, snapshot, "connection").require()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_setup")
def pytest_runtest_setup_reports_unreadable_facts(item: pytest.Item):
    with _unreadable_reported_once():  # a fixture that required the fact
        return (yield)


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_call")
def pytest_runtest_call_reports_unreadable_facts(item: pytest.Item):
    with _unreadable_reported_once():  # the check itself required it
        return (yield)


@contextlib.contextmanager
def _unreadable_reported_once() -> Iterator[None]:
    """The first check that needed an unreadable fact fails with its problem; every later one skips naming it."""
    try:
        yield
    except Unreadable as exc:
        if exc.first:
            pytest.fail(exc.problem, pytrace=False)
        pytest.skip(f"already reported: {exc.problem}")


@pytest.fixture(scope="session")
def fact_of(pytestconfig: pytest.Config) -> Callable[[Snapshot, str], Reading]:
    """``fact_of(snapshot, "unit")``: that fact as a Reading shared by every check of the run."""
    return lambda snapshot, field: _reading(pytestconfig, snapshot, field)


@pytest.fixture(scope="session")
def backend_host(request: pytest.FixtureRequest) -> TargetHost | RecordedHost:
    return _target_host(request)


@pytest.fixture(scope="session")
def gateway_host(request: pytest.FixtureRequest) -> TargetHost | RecordedHost:
    return _target_host(request)


@pytest.fixture(scope="session")
def backend_snapshot(pytestconfig: pytest.Config, backend_host) -> Snapshot:
    """What the gather phase read of this backend host (waits for that host only)."""
    return _source(pytestconfig).snapshot(backend_host.id)


@pytest.fixture(scope="session")
def gateway_snapshot(pytestconfig: pytest.Config, gateway_host) -> Snapshot:
    """What the gather phase read of this gateway host (waits for that host only)."""
    return _source(pytestconfig).snapshot(gateway_host.id)


@pytest.fixture(scope="session")
def gateway_snapshot_of(pytestconfig: pytest.Config) -> Callable[[str], Snapshot | None]:
    """``gateway_snapshot_of(agent_id)``: the snapshot of the gateway host running that agent (None if none does)."""

    def find(agent_id: str) -> Snapshot | None:
        if _replay(pytestconfig) is None and _SOURCE not in pytestconfig.stash:
            return None
        host_id = _gateway_host_running(pytestconfig, agent_id)
        return _source(pytestconfig).snapshot(host_id) if host_id is not None else None

    return find


@pytest.fixture(scope="session")
def edge_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """What the gather phase read of the TLS edge; a check that needs it fails (once) when it could not be read."""
    return _source(request.config).snapshot(f"https://{request.param}")


@pytest.fixture(scope="session")
def gated_drift(pytestconfig: pytest.Config) -> Callable[[str], tuple[list[DriftItem], str]]:
    """``gated_drift(host_id)``: the host's drift since the baseline that fails the gate, and the baseline's name."""
    _baseline(pytestconfig)  # loaded (the check is collected only with one)
    settings = _settings(pytestconfig)
    patterns = _fail_on_drift(pytestconfig)

    def of_host(host_id: str) -> tuple[list[DriftItem], str]:
        _source(pytestconfig)  # the gathering, started
        items = [item for item in _drift(pytestconfig).of_host(host_id) if not item.volatile]
        ignored = selected(items, settings.drift.ignore)
        return [item for item in selected(items, patterns) if item not in ignored], pytestconfig.getoption("--baseline")

    return of_host
