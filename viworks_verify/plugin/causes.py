"""One cause, one failure: a check that needs what a gateway host's blocker breaks is skipped naming it.

The blocker (``gateway.blockers``: the unit not loaded, its program missing, the unit not running)
is judged once per host from its snapshot. Its own check (``Blocker.reported_by``) runs and fails in
its own words; every check marked ``needs_agent(level)`` for that host (by its ``gateway_host``, or
its ``deployed_agent_id``'s host) whose level the blocker breaks is skipped, naming the cause and the
check that reports it. When that check is not in the run, the first dependent fails with the cause
instead and the rest skip: one failure, whatever subset of checks runs, in whatever order.
"""

from __future__ import annotations

import pytest

from viworks_verify.core.fact import Fact
from viworks_verify.gateway.blockers import LEVELS, Blocker, agent_blocker
from viworks_verify.plugin.state import Run, usage_error

_BLOCKERS = pytest.StashKey[dict[str, "Blocker | None"]]()
_REPORTERS = pytest.StashKey[set[tuple[str, str]]]()


def _gateway_host_of(item: pytest.Item) -> str | None:
    """The gateway host a check is about: its ``gateway_host``, or the host that runs its ``deployed_agent_id``."""
    run = Run.of(item.config)
    for host in run.hosts_of(item):
        if host.parameter.kind == "gateway":
            return host.id
        if host.parameter.kind == "gateway agent":
            return run.gateway_host_running(host.value)
    return None


def _blocker(config: pytest.Config, host_id: str) -> Blocker | None:
    blockers = config.stash.setdefault(_BLOCKERS, {})
    if host_id not in blockers:
        run = Run.of(config)
        blockers[host_id] = agent_blocker(run.snapshot(host_id), run.settings.gateway.unit)
    return blockers[host_id]


def _selected_reporters(session: pytest.Session) -> set[tuple[str, str]]:
    """(check name, host id) of every gateway check of the run: whether a blocker's reporter runs."""
    if _REPORTERS not in session.config.stash:
        session.config.stash[_REPORTERS] = {
            (item.originalname, host)
            for item in session.items
            if isinstance(item, pytest.Function)
            for host in Run.of(session.config).inventory_hosts_of(item)
        }
    return session.config.stash[_REPORTERS]


def needed_level(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("needs_agent")
    if marker is None:
        return None
    level = marker.args[0] if marker.args else "running"
    if level not in LEVELS:
        usage_error(f"{item.nodeid}: needs_agent({level!r}): expected one of {', '.join(LEVELS)}")
    return level


@pytest.hookimpl
def pytest_runtest_setup(item: pytest.Item) -> None:
    needed = needed_level(item)
    if needed is None or not isinstance(item, pytest.Function):
        return
    host_id = _gateway_host_of(item)
    blocker = _blocker(item.config, host_id) if host_id else None
    if blocker is None or not blocker.blocks(needed) or item.originalname == blocker.reported_by:
        return
    if (blocker.reported_by, host_id) in _selected_reporters(item.session):
        pytest.skip(f"{blocker.cause} (reported by {blocker.reported_by}[{host_id}])")
    # Its reporter is not in this run: the first check that needs what it breaks reports it, the rest skip.
    Fact.failed(blocker.cause).require()
