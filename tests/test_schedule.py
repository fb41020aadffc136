"""The order checks run in (``viworks_verify.plugin.schedule``): each host's own checks as soon as its
snapshot is read, and every host's checks in the same relative order whatever the arrival order."""

from __future__ import annotations

import random

from viworks_verify.plugin.schedule import by_host, ready_first

# A check is "name@host" (one host), "name@a+b" (it pairs hosts), or "name" (it judges no snapshot).


def hosts_of(check: str) -> frozenset[str] | None:
    return frozenset(check.split("@", 1)[1].split("+")) if "@" in check else None


class Arrivals:
    """Snapshots that arrive in ``order``, one each time the schedule waits; ``never``: not being read."""

    def __init__(self, read: set[str], order: list[str] = (), never: set[str] = frozenset()) -> None:
        self.read = set(read)
        self.order = list(order)
        self.never = set(never)
        self.waits = 0

    def is_read(self, host: str) -> bool:
        return host in self.read

    def wait_for_any(self, hosts) -> bool:
        coming = [host for host in self.order if host not in self.read]
        if not set(hosts) - self.never or not coming:
            return False
        self.waits += 1
        self.read.add(coming[0])
        return True


def run_order(checks: list[str], arrivals: Arrivals) -> list[str]:
    pairs = list(ready_first(checks, hosts_of, arrivals))
    order = [item for item, _ in pairs]
    assert [following for _, following in pairs] == order[1:] + [None]  # pytest is told what runs next, truly
    return order


def of_host(order: list[str], host: str) -> list[str]:
    return [check for check in order if host in (hosts_of(check) or ())]


def test_collection_order_is_each_hosts_own_checks_then_pairs_then_the_rest():
    collected = [
        "a@backend",
        "chain@backend+gw1",
        "b@gw1",
        "tls@edge",
        "c@backend",
        "pin@gw1+edge",
        "e2e-1",
        "d@gw2",
        "e2e-2",
    ]
    assert by_host(collected, hosts_of) == [
        "a@backend",
        "c@backend",
        "b@gw1",
        "tls@edge",
        "d@gw2",
        "chain@backend+gw1",
        "pin@gw1+edge",
        "e2e-1",
        "e2e-2",
    ]


def test_with_every_snapshot_read_the_order_is_the_given_one():
    checks = by_host(["a@backend", "b@gw1", "c@gw2", "pair@backend+gw1", "e2e"], hosts_of)
    assert run_order(checks, Arrivals({"backend", "gw1", "gw2"})) == checks


def test_a_slow_host_does_not_hold_up_the_hosts_after_it():
    checks = ["a1@backend", "a2@backend", "b1@gw1", "b2@gw1", "c1@gw2", "pair@backend+gw1", "e2e"]
    order = run_order(checks, Arrivals({"gw1", "gw2"}, order=["backend"]))
    assert order == ["b1@gw1", "b2@gw1", "c1@gw2", "a1@backend", "a2@backend", "pair@backend+gw1", "e2e"]


def test_nothing_read_yet_the_first_host_to_arrive_goes_first():
    checks = ["a@backend", "b@gw1", "c@gw2"]
    arrivals = Arrivals(set(), order=["gw2", "backend", "gw1"])
    assert run_order(checks, arrivals) == ["c@gw2", "a@backend", "b@gw1"]
    assert arrivals.waits == 3


def test_a_pairing_check_never_goes_ahead_of_a_check_of_one_of_its_hosts():
    checks = ["a@backend", "pair@gw1+edge", "b@gw1", "tls@edge"]
    order = run_order(checks, Arrivals({"gw1", "edge"}, order=["backend"]))
    assert order.index("pair@gw1+edge") < order.index("b@gw1")  # their collection order, kept
    assert order[0] == "pair@gw1+edge"  # and still ahead of the backend it does not need


def test_nothing_goes_past_a_check_that_judges_no_snapshot():
    checks = ["a@backend", "live-check", "b@gw1"]
    assert run_order(checks, Arrivals({"gw1"}, order=["backend"])) == checks


def test_a_host_that_is_not_being_read_leaves_the_order_as_it_is():
    checks = ["a@edge", "b@gw1"]
    assert run_order(checks, Arrivals(set(), never={"edge", "gw1"})) == checks


def test_every_hosts_checks_run_in_the_same_relative_order_whatever_the_arrival_order():
    """What makes a run's verdicts independent of timing: the first check that needs a host's
    unreadable fact is the same one in every run."""
    hosts = ["backend", "gw1", "gw2", "gw3", "edge"]
    collected = (
        [f"{name}@{host}" for host in hosts for name in ("x", "y", "z")]
        + ["chain@backend+gw1", "chain@backend+gw2", "pin@gw1+edge", "clock@backend+gw3"]
        + ["e2e-1", "e2e-2"]
    )
    checks = by_host(collected, hosts_of)
    rng = random.Random(7)
    for _ in range(200):
        arrival = rng.sample(hosts, len(hosts))
        already = set(rng.sample(hosts, rng.randint(0, len(hosts))))
        order = run_order(checks, Arrivals(already, order=arrival))
        assert sorted(order) == sorted(checks)
        for host in hosts:
            assert of_host(order, host) == of_host(checks, host), (host, arrival, already)
        assert order[-2:] == ["e2e-1", "e2e-2"]
