"""A host's clock against the runner's: ``date +%s.%N`` read between two runner timestamps.

Sans-I/O: the command and the arithmetic. The host read its clock at some moment between
``before`` and ``after`` on the runner, so the skew is taken against the midpoint and is known
to within half the round trip.
"""

from __future__ import annotations

import dataclasses

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
