"""Running the smoke gate against a faulted lab and reading what it reported (its JUnit XML).

Used by tests/test_fault_matrix.py; kept apart so the matrix's bookkeeping (parsing, the artifact)
does not clutter the test that states the claims.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tests.conftest import run_suite

# A faulted lab must be seen quickly: nothing in it becomes ready by waiting.
READY_TIMEOUT_S = "8"


@dataclasses.dataclass(frozen=True)
class CheckFailure:
    check: str  # the test function's name, without its host parameter
    case: str  # the full test case name, with the host
    message: str


@dataclasses.dataclass
class SmokeRun:
    exit_code: int
    seconds: float
    total: int
    failures: list[CheckFailure]
    skipped: int

    @property
    def failing_checks(self) -> set[str]:
        return {failure.check for failure in self.failures}


def run_smoke(junit: Path) -> SmokeRun:
    started = time.monotonic()
    done = run_suite("-m", "smoke", "--target", "lab", "--ready-timeout", READY_TIMEOUT_S, "-q", junit=junit)
    seconds = time.monotonic() - started
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    failures = []
    for case in suite.iter("testcase"):
        for verdict in (case.find("failure"), case.find("error")):
            if verdict is not None:
                name = case.get("name", "")
                failures.append(
                    CheckFailure(re.sub(r"\[.*\]$", "", name), name, (verdict.get("message") or "").strip())
                )
    skipped = sum(1 for case in suite.iter("testcase") if case.find("skipped") is not None)
    return SmokeRun(done.returncode, seconds, int(suite.get("tests")), failures, skipped)


@dataclasses.dataclass
class MatrixRow:
    fault: str
    description: str
    exit_code: int
    failing: list[str]
    first_message: str
    others: list[str]
    seconds: float


def write_matrix(rows: list[MatrixRow], healthy_runs: list[SmokeRun], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fault-matrix.json").write_text(
        json.dumps(
            {
                "healthy_runs": [
                    {
                        "exit_code": r.exit_code,
                        "failures": len(r.failures),
                        "tests": r.total,
                        "seconds": round(r.seconds, 1),
                    }
                    for r in healthy_runs
                ],
                "faults": [dataclasses.asdict(row) | {"seconds": round(row.seconds, 1)} for row in rows],
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        "# Fault matrix",
        "",
        f"Healthy lab: {len(healthy_runs)} smoke runs, "
        + ", ".join(f"{len(r.failures)} failed of {r.total} ({r.seconds:.0f} s)" for r in healthy_runs)
        + ".",
        "",
        "| fault | exit | failing checks | first message | other failures | run s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        message = row.first_message.replace("|", "\\|").replace("\n", " ")[:220]
        lines.append(
            f"| `{row.fault}` | {row.exit_code} | {'<br>'.join(row.failing)} | {message} "
            f"| {len(row.others)} | {row.seconds:.0f} |"
        )
    (directory / "fault-matrix.md").write_text("\n".join(lines) + "\n")
