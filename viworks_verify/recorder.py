"""Figures a run measures (latencies, readiness times) and evidence for failures, kept for the report."""

from __future__ import annotations

import dataclasses
import statistics


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    host: str
    check: str


class Recorder:
    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def figure(self, name: str, value: float, unit: str, *, host: str = "", check: str = "") -> Figure:
        figure = Figure(name, round(value, 3), unit, host, check)
        self.figures.append(figure)
        return figure

    def summary(self) -> list[dict[str, object]]:
        """One row per figure name: count, p50, p95, max."""
        rows = []
        for name in sorted({f.name for f in self.figures}):
            values = sorted(f.value for f in self.figures if f.name == name)
            unit = next(f.unit for f in self.figures if f.name == name)
            p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
            rows.append({"name": name, "unit": unit, "count": len(values), "p50": statistics.median(values), "p95": p95, "max": values[-1]})
        return rows
