"""Every smoke check can fail: a fault of the matrix is named for it, or a test of a recorded
snapshot shows its failure message. A check no fault reaches is a check that cannot be trusted.

Static (no lab): it reads the claims of the fault matrix and of the snapshot tests; those tests
prove the claims when they run. The README's check -> proof table is the same join.
"""

from __future__ import annotations

import os
import re
import subprocess

from tests import test_checks_on_snapshots as snapshots
from tests.conftest import BIN, REPO
from tests.test_fault_matrix import EXPECTED

# Proven by a dedicated test of tests/test_checks_on_snapshots.py rather than by a CHANGES entry.
PROVEN_BY_NAMED_SNAPSHOT_TESTS = {"test_protocols_below_tls_1_2_are_refused"}


def smoke_checks() -> set[str]:
    return collected_checks("smoke")


def _collected(markers: str, *args: str, env: dict[str, str] | None = None) -> str:
    """What ``pytest --co -q -m markers ARGS`` against the recorded lab target lists."""
    done = subprocess.run(
        [
            str(BIN / "pytest"),
            "--co",
            "-q",
            "-m",
            markers,
            "-p",
            "no:cacheprovider",
            *args,
            "--target",
            str(snapshots.TARGET),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    return done.stdout


def collected_checks(markers: str) -> set[str]:
    """The checks a run with ``-m markers`` collects: the judged ones (on the recorded snapshot) and the live ones."""
    judged = _collected(markers, "--snapshot-in", str(snapshots.SNAPSHOTS / "healthy.json"))
    # The live ones need secrets only to start: collecting them connects to nothing.
    live = _collected(
        markers, "tests_e2e", env={"VIWORKS_JWT_SECRET": "collection-only", "VIWORKS_AGENT_KEY_FILE": __file__}
    )
    return {re.sub(r"\[.*\]$", "", line.split("::")[-1]) for line in (judged + live).splitlines() if "::" in line}


def test_every_check_has_an_area_in_the_reports_grid():
    """The report's host-by-area grid places a check by its ``area`` marker: a check without one would be
    lost in "other"."""
    assert len(collected_checks("area")) >= 75
    unplaced = collected_checks("not area")
    assert not unplaced, f"checks without an area marker: {sorted(unplaced)}"


def proofs() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for fault, expected in EXPECTED.items():
        for check in expected.checks:
            found.setdefault(check, []).append(f"fault {fault}")
    for fault, (_, checks) in snapshots.RECORDED.items():
        for check in checks:
            found.setdefault(check, []).append(f"recorded {fault}")
    for fault, checks in snapshots.RECORDED_EDGE.items():
        for check in checks:
            found.setdefault(check, []).append(f"recorded {fault}")
    for name, change in snapshots.CHANGES.items():
        for check in (change.check, *change.also):
            found.setdefault(check, []).append(f"snapshot change {name}")
    for check in PROVEN_BY_NAMED_SNAPSHOT_TESTS:
        found.setdefault(check, []).append("snapshot test")
    return found


def test_every_smoke_check_has_a_fault_or_a_recorded_snapshot_that_fails_it():
    checks = smoke_checks()
    assert len(checks) >= 70, sorted(checks)
    found = proofs()
    _write_report(checks, found)
    unproven = sorted(check for check in checks if check not in found)
    assert not unproven, f"smoke checks nothing proves can fail: {unproven}"


def _write_report(checks: set[str], found: dict[str, list[str]]) -> None:
    """reports/check-proofs.md: each smoke check and what makes it fail (the README's table)."""
    lines = [
        f"{len([c for c in checks if c in found])} of {len(checks)} smoke checks proven.",
        "",
        "| check | fails under |",
        "|---|---|",
    ]
    for check in sorted(checks):
        faults = sorted(p.split(" ", 1)[1] for p in found.get(check, []) if p.startswith("fault "))
        recorded = sorted(p for p in found.get(check, []) if not p.startswith("fault "))
        cells = [f"fault `{f}`" for f in faults] + recorded[:2] + (["..."] if len(recorded) > 2 else [])
        lines.append(f"| `{check}` | {', '.join(cells) or '**nothing**'} |")
    (REPO / "reports").mkdir(exist_ok=True)
    (REPO / "reports" / "check-proofs.md").write_text("\n".join(lines) + "\n")
