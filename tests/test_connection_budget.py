"""At most ``timing.max_connections`` hosts are read at once; the rest queue, and each still gets its snapshot.

The gathering is judged on hosts that are not there: each host's one round trip holds its connection
for a short window (every read that may open meanwhile does), then fails as an unreachable host does,
and its snapshot says so.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.gather.gathering import Gathering
from viworks_verify.target.settings import load_settings

WINDOW_S = 0.1


@dataclasses.dataclass
class _InventoryHost:
    group: str = "gateway"


class _Fleet:
    """Gateway hosts whose round trips count how many are open at once."""

    def __init__(self, size: int, budget: int) -> None:
        self.hosts = [_Host(self, f"gw-{index:03}") for index in range(size)]
        self.budget = budget
        self.open_now = self.most_open = 0
        self.changed = threading.Condition()

    def round_trip(self) -> None:
        with self.changed:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
            self.changed.notify_all()
            # Each host holds its connection for a window in which any read over the budget would open
            # (ending it at once); a bound holds them to the budget.
            self.changed.wait_for(lambda: self.open_now > self.budget, timeout=WINDOW_S)
            self.open_now -= 1


class _Host:
    def __init__(self, fleet: _Fleet, name: str) -> None:
        self.fleet, self.id, self.name = fleet, f"ssh://{name}", name
        self.inventory_host = _InventoryHost()

    def run_script(self, script: str, *args: str):
        self.fleet.round_trip()
        raise ConnectionError("ssh: connect to host: Connection timed out")


@pytest.mark.parametrize("budget, size", [(1, 4), (3, 9), (10, 25)])
def test_no_more_hosts_are_read_at_once_than_the_budget(tmp_path, budget, size):
    (tmp_path / "t.toml").write_text('[edge]\ndomain = "agent.example.com"\n')
    settings = load_settings("t", tmp_path, max_connections=budget)
    fleet = _Fleet(size, budget)
    gathering = Gathering(settings, SecretHasher(b"k" * 32))
    gathering.start_hosts(fleet.hosts)
    snapshots = [gathering.snapshot(host.id) for host in fleet.hosts]
    gathering.close()
    assert fleet.most_open == budget
    assert [s.host for s in snapshots] == [host.id for host in fleet.hosts]
    assert all("unreachable" in s.connection.problem for s in snapshots)


def test_the_default_budget_is_sshds_max_startups(tmp_path):
    (tmp_path / "t.toml").write_text('[edge]\ndomain = "agent.example.com"\n')
    assert load_settings("t", tmp_path).timing.max_connections == 10
