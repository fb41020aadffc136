"""The order checks run in: each host's own checks as soon as its snapshot is read.

On a fleet the hosts' snapshots arrive one by one, in no fixed order (a far site, a busy engine).
Run in collection order, every check would wait for the hosts of the checks before it; here a
host's checks go ahead of earlier ones that still wait for their host, so judging runs while the
slower hosts are still being read, and a gate ends about when its slowest host has been read.

The order stays deterministic where it matters. At collection (``by_host``) each host's own checks
are grouped, host by host, then come the checks that pair hosts, then everything else (the
end-to-end checks) in collection order. At run time (``ready_first``) a check may run before
earlier ones only if it shares no host with any of them, and never past a check that judges no
snapshot: every host's checks run in the same relative order in every run, so the check that
reports a host's unreadable fact (the first that needs it) does not depend on timing.

Under pytest-xdist (``-n``) the workers run what they are handed, in its order; the checks that act
as the synthetic agent are one group there (``loadgroup``), kept on one worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

import pytest

from viworks_verify.gather.gathering import Gathering
from viworks_verify.plugin.state import _LIVE_FIXTURES, _distributes, _host_ids, _replay, _runs_checks, _source

Item = TypeVar("Item")
HostsOf = Callable[[Item], "frozenset[str] | None"]  # None: the check judges no snapshot (it runs in place)


def snapshot_hosts(item: pytest.Item) -> frozenset[str] | None:
    """The hosts whose snapshots a check judges, or None for a check that also acts live (it keeps its place)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & _LIVE_FIXTURES:
        return None
    hosts = set(_host_ids(item))
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "edge_snapshot" in params:
        hosts.add(f"https://{params['edge_snapshot']}")
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


class Arrivals(Protocol):
    """Where snapshots arrive from: whether a host's is there, and a wait for the first of some."""

    def is_read(self, host_id: str) -> bool: ...

    def wait_for_any(self, host_ids: Iterable[str]) -> bool: ...  # False: none of them is coming


def ready_first(items: Sequence[Item], hosts_of: HostsOf, arrivals: Arrivals) -> Iterator[tuple[Item, Item | None]]:
    """``(item, next_item)`` in run order; the next item is chosen as the item before it starts
    (pytest tears down by it), by ``_bring_forward``."""
    pending = list(items)
    _bring_forward(pending, hosts_of, arrivals)
    while pending:
        item = pending.pop(0)
        _bring_forward(pending, hosts_of, arrivals)
        yield item, pending[0] if pending else None


def _bring_forward(pending: list, hosts_of: HostsOf, arrivals: Arrivals) -> None:
    """Put first the first item that may go ahead and whose hosts are read, waiting for one if need be.

    An item may go ahead if it shares no host with any item before it, and no item before it judges
    no snapshot. When none of those is read, wait for the first of their hosts to be read, and look
    again; when none of their hosts is being read at all, leave the order as it is.
    """
    while True:
        held: set[str] = set()
        unread: set[str] = set()
        for index, item in enumerate(pending):
            hosts = hosts_of(item)
            if hosts is None:
                break
            if not hosts & held:
                missing = {host for host in hosts if not arrivals.is_read(host)}
                if not missing:
                    if index:
                        pending.insert(0, pending.pop(index))
                    return
                unread |= missing
            held |= hosts
        if not unread or not arrivals.wait_for_any(unread):
            return


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
    if not _runs_checks(config) or config.getoption("failedfirst", False) or config.getoption("newfirst", False):
        return  # an order asked for on the command line (--ff, --nf) is kept
    items[:] = by_host(items, snapshot_hosts)


def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """pytest's run loop, in ``ready_first`` order, when the snapshots come from a live gathering."""
    config = session.config
    if not _runs_checks(config) or session.testsfailed or config.option.collectonly or _replay(config) is not None:
        return None  # pytest's own loop: it reports collection errors, and the order is the collected one
    if _distributes(config) or hasattr(config, "workerinput"):
        return None  # pytest-xdist's loops: the controller hands the checks out, each worker runs what it is given
    hosts = {item: snapshot_hosts(item) for item in session.items}
    source = _source(config) if any(hosts.values()) else None
    if not isinstance(source, Gathering):
        return None
    for item, next_item in ready_first(session.items, hosts.__getitem__, source):
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=next_item)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
    return True
