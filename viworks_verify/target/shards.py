"""A fleet split across runners: ``--shard K/N`` takes every Nth gateway host, starting at the Kth.

The split is by host, so all of a gateway host's checks (and its agent's) run in one shard; gateways are
dealt in name order, so shards differ in size by one at most and the same fleet splits the same way on
every runner. The checks of the backend, the edge and the public address run in shard 1 only: they are
one set for the whole fleet, and some act as the suite's one synthetic agent (one registry record, one
session at a time), which parallel runners must not share. Every shard still reads the backend and the
edge: a gateway's checks that pair it with them need their snapshots.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable


class ShardError(ValueError):
    """A ``--shard`` that is not ``K/N`` with 1 <= K <= N; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not found or not 1 <= int(found[1]) <= int(found[2]):
            raise ShardError(f"--shard: expected K/N with 1 <= K <= N (2/4: the second of four); found {text!r}")
        return cls(int(found[1]), int(found[2]))

    @property
    def is_first(self) -> bool:
        """The shard that runs the fleet-wide checks (backend, edge, public address)."""
        return self.index == 1

    def part(self, names: Iterable[str]) -> set[str]:
        """This shard's gateways among all the fleet's gateway ``names``: every Nth in name order, from the Kth."""
        return set(sorted(set(names))[self.index - 1 :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard(1, 1)  # no --shard: one runner has the whole fleet
