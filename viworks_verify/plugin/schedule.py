"""The order checks run in: each host's own checks together; the synthetic agent's on one xdist worker.

At collection (``by_host``) each host's own checks are grouped, host by host, then come the checks
that pair hosts, then everything else (the checks that act live: the end-to-end ones) in collection
order; pytest runs them in that order. It is the same in every run, whatever order the hosts'
snapshots arrive in, and it decides which check reports a host's unreadable fact (the first that
needs it; the later ones skip naming it).

Under pytest-xdist (``-n``) the workers run what they are handed, in its order; the checks that act
as the synthetic agent are one group there (``loadgroup``), kept on one worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from viworks_verify.plugin.state import LIVE_FIXTURES, Run

Item = TypeVar("Item")
HostsOf = Callable[[Item], "frozenset[str] | None"]  # None: the check judges no snapshot (it goes with the rest)


def snapshot_hosts(item: pytest.Item) -> frozenset[str] | None:
    """The hosts whose snapshots a check judges, or None for one that judges none or also acts live."""
    if set(getattr(item, "fixturenames", ())) & LIVE_FIXTURES:
        return None
    hosts = {host.id for host in Run.of(item.config).hosts_of(item) if host.parameter.judges_snapshot}
    return frozenset(hosts) or None


def by_host(items: Sequence[Item], hosts_of: HostsOf) -> list[Item]:
    """Each host's own checks, host by host (in order of first appearance), then the checks that pair
    hosts, then the rest, each part in collection order."""
    single: dict[str, list[Item]] = {}
    paired: list[Item] = []
    rest: list[Item] = []
    for item in items:
        hosts = hosts_of(item)
        if hosts is None:
            rest.append(item)
        elif len(hosts) == 1:
            single.setdefault(next(iter(hosts)), []).append(item)
        else:
            paired.append(item)
    return [item for checks in single.values() for item in checks] + paired + rest


# The checks that act as the synthetic agent share its one identity (its registry record, its one
# session at a time): under pytest-xdist they run on one worker, one after the other.
SYNTHETIC_AGENT_GROUP = "synthetic-agent"


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``-n`` without ``--dist``: pytest-xdist's ``loadgroup`` (its ``load``, keeping each group on one worker)."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", None) == "no":
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Tell each pytest-xdist worker how the checks are handed out: a worker reads only the command line."""
    node.workerinput["viworks_dist"] = node.config.option.dist


@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_groups_the_synthetic_agent(config: pytest.Config, items: list[pytest.Item]) -> None:
    # First: pytest-xdist's worker names each check's group in its own (later) hook.
    if getattr(config, "workerinput", {}).get("viworks_dist") == "loadgroup":
        config.option.loadgroup = True
    for item in items:
        if "probe_identity" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(SYNTHETIC_AGENT_GROUP))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not Run.of(config).runs_checks or config.getoption("failedfirst", False) or config.getoption("newfirst", False):
        return  # an order asked for on the command line (--ff, --nf) is kept
    items[:] = by_host(items, snapshot_hosts)
