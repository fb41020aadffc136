"""A host's clock against the runner's: ``date +%s.%N`` read between two runner timestamps.

Sans-I/O: the command and the arithmetic. The host read its clock at some moment between
``before`` and ``after`` on the runner, so the skew is taken against the midpoint and is known
to within half the round trip. ``ClockSkew`` is that skew as a host snapshot's fact.
"""

from __future__ import annotations

import dataclasses

from viworks_verify.core.canonical import Canonical, Observed
from viworks_verify.core.host_snapshot import Record

COMMAND = "date -u +%s.%N"


def parse_epoch(text: str) -> float:
    """Seconds since the epoch from ``date +%s.%N`` (whole seconds where %N is not supported)."""
    token = text.strip().split()[0] if text.strip() else ""
    try:
        return float(token)
    except ValueError:
        whole = token.split(".", 1)[0]
        if whole.isdigit():
            return float(whole)
        raise ValueError(f"not a date +%s output: {text.strip()[:60]!r}") from None


@dataclasses.dataclass(frozen=True)
class Skew:
    seconds: float  # host clock minus runner clock: positive when the host is ahead
    uncertainty: float  # half the round trip the reading took

    @classmethod
    def measure(cls, host_epoch: float, runner_before: float, runner_after: float) -> Skew:
        return cls(host_epoch - (runner_before + runner_after) / 2, (runner_after - runner_before) / 2)

    def describe(self, reference: str = "the runner") -> str:
        """``12.3 s ahead of the runner (±0.1 s)``."""
        direction = "ahead of" if self.seconds >= 0 else "behind"
        return f"{abs(self.seconds):.1f} s {direction} {reference} (±{self.uncertainty:.1f} s)"

    def against(self, other: Skew) -> Skew:
        """This clock against another host's, both measured against the runner."""
        return Skew(self.seconds - other.seconds, self.uncertainty + other.uncertainty)

    def exceeds(self, limit_s: float) -> bool:
        """Certainly beyond ``limit_s``: even the most favourable reading within the uncertainty is."""
        return abs(self.seconds) - self.uncertainty > limit_s


@dataclasses.dataclass(frozen=True)
class ClockSkew(Skew, Record):
    """A host's skew as its snapshot keeps it (to the millisecond): saved as ``{"seconds", "uncertainty"}``."""

    @classmethod
    def measured(cls, host_epoch: float, runner_before: float, runner_after: float) -> ClockSkew:
        skew = Skew.measure(host_epoch, runner_before, runner_after)
        return cls(round(skew.seconds, 3), round(skew.uncertainty, 3))

    def canonical(self, path: str) -> Canonical:
        """The seconds alone, volatile: a clock drifts between runs, the deployment does not."""
        yield path, Observed(self.seconds, volatile=True)
