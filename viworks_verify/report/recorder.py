"""What a run measures and observes, kept for the reports: figures, facts, and evidence for failures.

Figures are latencies and readiness times; facts are what the run saw of the target (the backend
version, the deployed binary's sha256); evidence is what a check looked at (a container's network
list, an nginx location, a certificate's dates), attached to the report when the check fails.
Nothing here is secret by construction, and everything still passes the redactor on the way out.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from typing import Any


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    host: str
    check: str


@dataclasses.dataclass(frozen=True)
class Evidence:
    label: str
    text: str


class Recorder:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.facts: dict[str, str] = {}
        self.evidence: dict[str, list[Evidence]] = {}  # test node id -> what it looked at
        self.current_check = ""

    def figure(self, name: str, value: float, unit: str, *, host: str = "", check: str = "") -> Figure:
        figure = Figure(name, round(value, 3), unit, host, check or self.current_check)
        self.figures.append(figure)
        return figure

    def fact(self, name: str, value: object) -> None:
        """Something observed of the target that belongs in the report's header."""
        self.facts[name] = str(value)

    def attach(self, label: str, data: Any) -> None:
        """Evidence for the check now running (shown only if it fails)."""
        text = data if isinstance(data, str) else json.dumps(data, indent=2, sort_keys=True, default=str)
        self.evidence.setdefault(self.current_check, []).append(Evidence(label, text))

    def summary(self) -> list[dict[str, object]]:
        """One row per figure name: count, p50, p95, max."""
        rows = []
        for name in sorted({f.name for f in self.figures}):
            values = sorted(f.value for f in self.figures if f.name == name)
            unit = next(f.unit for f in self.figures if f.name == name)
            p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
            rows.append(
                {
                    "name": name,
                    "unit": unit.strip(),
                    "count": len(values),
                    "p50": statistics.median(values),
                    "p95": p95,
                    "max": values[-1],
                }
            )
        return rows
