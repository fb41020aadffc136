"""The order checks run in (``viworks_verify.plugin.schedule``): each host's own checks together, host by
host, then the checks that pair hosts, then the rest."""

from __future__ import annotations

from viworks_verify.plugin.schedule import by_host

# A check is "name@host" (one host), "name@a+b" (it pairs hosts), or "name" (it judges no snapshot).


def hosts_of(check: str) -> frozenset[str] | None:
    return frozenset(check.split("@", 1)[1].split("+")) if "@" in check else None


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
