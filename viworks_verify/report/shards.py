"""The shards of one gate (``--shard K/N`` on N runners) as one: one verdict, one JUnit, one report.

Each shard's JUnit holds every check it ran with the host, area and report row the run gave it (test
case properties), so the shards' JUnit files are all a merge needs: their test cases joined into one
suite, their outcomes into one GO/NO-GO and one host-by-area grid (``report.top``), and the JSON
summary a pipeline reads. A check found in two shards is a usage error: the shards were not of one split.
"""

from __future__ import annotations

import dataclasses
import html
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from viworks_verify.report.summary import CheckOutcome
from viworks_verify.report.top import banner_html, grid_html, verdict


class ShardReportError(ValueError):
    """A file that is not a shard's JUnit, or shards that overlap; the message is one line."""


_OUTCOMES = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))


@dataclasses.dataclass(frozen=True)
class MergedGate:
    cases: list[ElementTree.Element]  # every shard's test cases, in shard order
    outcomes: list[CheckOutcome]
    time_s: float

    @property
    def verdict(self) -> str:
        return verdict(self.outcomes)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for outcome in self.outcomes:
            found[outcome.outcome] = found.get(outcome.outcome, 0) + 1
        return found

    def junit(self) -> ElementTree.ElementTree:
        counts = self.counts()
        suite = ElementTree.Element(
            "testsuite",
            name="pytest",
            tests=str(len(self.cases)),
            failures=str(counts.get("failed", 0)),
            errors=str(counts.get("error", 0)),
            skipped=str(counts.get("skipped", 0)),
            time=f"{self.time_s:.3f}",
        )
        suite.extend(self.cases)
        root = ElementTree.Element("testsuites", name="pytest tests")
        root.append(suite)
        return ElementTree.ElementTree(root)

    def summary(self, shards: list[Path]) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "shards": [str(path) for path in shards],
            "counts": self.counts(),
            "failures": [dataclasses.asdict(o) for o in self.outcomes if o.outcome in ("failed", "error")],
        }

    def html(self, target: str) -> str:
        rows = list(dict.fromkeys(o.row or o.host for o in self.outcomes))
        labelled = [(row, row) for row in sorted(rows, key=_row_order)]
        title = html.escape(f"{target}: the deploy gate, {self.verdict}")
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"{banner_html(target, '', self.outcomes, labelled, None, [])}{grid_html(self.outcomes, labelled)}"
            "</body></html>\n"
        )


def merge_junit(paths: list[Path]) -> MergedGate:
    cases: list[ElementTree.Element] = []
    outcomes: list[CheckOutcome] = []
    seen: dict[str, Path] = {}
    time_s = 0.0
    for path in paths:
        try:
            root = ElementTree.parse(path).getroot()
        except (OSError, ElementTree.ParseError) as exc:
            raise ShardReportError(f"{path}: not a JUnit file ({type(exc).__name__}: {exc})") from None
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        if not suites:
            raise ShardReportError(f"{path}: not a JUnit file (no testsuite)")
        for suite in suites:
            time_s = max(time_s, float(suite.get("time") or 0))  # the shards ran side by side
            for case in suite.iter("testcase"):
                case_id = f"{case.get('classname')}::{case.get('name')}"
                if case_id in seen:
                    raise ShardReportError(f"{case_id} is in both {seen[case_id]} and {path}: not shards of one split")
                seen[case_id] = path
                cases.append(case)
                outcomes.append(_outcome(case))
    return MergedGate(cases, outcomes, time_s)


def _outcome(case: ElementTree.Element) -> CheckOutcome:
    properties = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
    state, message = "passed", ""
    for tag, name in _OUTCOMES:
        found = case.find(tag)
        if found is not None:
            state, message = name, found.get("message") or ""
            break
    check = (case.get("name") or "").split("[")[0]
    return CheckOutcome(
        check, properties.get("host", ""), state, message, properties.get("area", ""), properties.get("row", "")
    )


def _row_order(row: str) -> tuple[int, str]:
    """Backend hosts first, then the edge, then the gateways: the order of a single run's grid."""
    rank = 0 if row.startswith("local://") else 1 if row.startswith("https://") else 2
    return rank, row
