"""Every check gets the host it is about: parametrization (test ids naming the host), the host and
snapshot fixtures; an unreadable fact fails the first check that needs it, and the others skip naming it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from viworks_verify.core.fact import Fact, Unreadable
from viworks_verify.edge.snapshot import edge_host_id
from viworks_verify.gather.snapshot import Snapshot
from viworks_verify.plugin.state import HOST_PARAMETERS, NamedHost, Run
from viworks_verify.report.drift import DriftItem, selected
from viworks_verify.target.connections import TargetHost


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every check the host it is about, in its test id (``[ssh://gw-lab-01]``): ``HOST_PARAMETERS``."""
    for parameter in HOST_PARAMETERS:
        if parameter.fixture in metafunc.fixturenames and not set(parameter.unless_beside) & set(metafunc.fixturenames):
            hosts = Run.of(metafunc.config).hosts_taken_by(parameter)
            metafunc.parametrize(
                parameter.fixture,
                [host.value for host in hosts],
                ids=[host.id for host in hosts],
                indirect=parameter.indirect,
                scope="session",
            )


@pytest.fixture(scope="session")
def deployed_agents(pytestconfig: pytest.Config) -> list[str]:
    """Every deployed gateway agent id of the target (the ``deployed_agent_id`` parameters, all at once)."""
    return Run.of(pytestconfig).deployed_agent_ids


def _area_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("area")
    return str(marker.args[0]) if marker and marker.args else ""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An unreachable host fails its first check once, fast; its other checks skip with the reason.

    Done before any fixture runs, so no cached fixture error repeats the failure for every check.
    """
    run = Run.of(item.config)
    run.recorder.current_check = item.nodeid
    item.user_properties += [("host", run.host_of(item)), ("area", _area_of(item)), ("row", run.row_of(item))]
    for host_id in run.inventory_hosts_of(item):
        run.snapshot(host_id).connection.require()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_setup")
def pytest_runtest_setup_reports_unreadable_facts(item: pytest.Item):
    with _unreadable_reported_once(Run.of(item.config)):  # a fixture that required the fact
        return (yield)


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_call")
def pytest_runtest_call_reports_unreadable_facts(item: pytest.Item):
    with _unreadable_reported_once(Run.of(item.config)):  # the check itself required it
        return (yield)


@contextlib.contextmanager
def _unreadable_reported_once(run: Run) -> Iterator[None]:
    """The first check that needed an unreadable fact fails with its problem; every later one skips naming it."""
    try:
        yield
    except Unreadable as exc:
        if run.first_to_report(exc.problem):
            pytest.fail(exc.problem, pytrace=False)
        pytest.skip(f"already reported: {exc.problem}")


@pytest.fixture(scope="session")
def reported_here(pytestconfig: pytest.Config) -> Callable[[Fact], None]:
    """``reported_here(fact)``: the check has said what is wrong with ``fact`` itself; the checks that need it skip."""
    return Run.of(pytestconfig).mark_reported


@pytest.fixture(scope="session")
def backend_host(request: pytest.FixtureRequest) -> TargetHost | NamedHost:
    return Run.of(request.config).target_host(request.param)


@pytest.fixture(scope="session")
def gateway_host(request: pytest.FixtureRequest) -> TargetHost | NamedHost:
    return Run.of(request.config).target_host(request.param)


@pytest.fixture(scope="session")
def backend_snapshot(pytestconfig: pytest.Config, backend_host) -> Snapshot:
    """What the gather phase read of this backend host (waits for that host only)."""
    return Run.of(pytestconfig).snapshot(backend_host.id)


@pytest.fixture(scope="session")
def gateway_snapshot(pytestconfig: pytest.Config, gateway_host) -> Snapshot:
    """What the gather phase read of this gateway host (waits for that host only)."""
    return Run.of(pytestconfig).snapshot(gateway_host.id)


@pytest.fixture(scope="session")
def gateway_snapshot_of(pytestconfig: pytest.Config) -> Callable[[str], Snapshot | None]:
    """``gateway_snapshot_of(agent_id)``: the snapshot of the gateway host running that agent (None if none does)."""
    run = Run.of(pytestconfig)

    def find(agent_id: str) -> Snapshot | None:
        if run.replay is None and run.started_source is None:
            return None  # a live run whose checks judge no snapshot gathers none, not even for this
        host_id = run.gateway_host_running(agent_id)
        return run.snapshot(host_id) if host_id is not None else None

    return find


@pytest.fixture(scope="session")
def edge_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """What the gather phase read of the TLS edge; a check that needs it fails (once) when it could not be read."""
    return Run.of(request.config).snapshot(edge_host_id(request.param))


@pytest.fixture(scope="session")
def gated_drift(pytestconfig: pytest.Config) -> Callable[[str], tuple[list[DriftItem], str]]:
    """``gated_drift(host_id)``: the host's drift since the baseline that fails the gate, and the baseline's name."""
    run = Run.of(pytestconfig)
    _ = run.baseline  # loaded (the check is collected only with one)
    patterns = run.fail_on_drift

    def of_host(host_id: str) -> tuple[list[DriftItem], str]:
        _ = run.source  # the gathering, started
        items = [item for item in run.drift.of_host(host_id) if not item.volatile]
        ignored = selected(items, run.settings.drift.ignore)
        return [item for item in selected(items, patterns) if item not in ignored], pytestconfig.getoption("--baseline")

    return of_host
