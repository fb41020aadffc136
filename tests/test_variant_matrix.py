"""Healthy deployments written differently pass the gate: every variant, zero failures.

For each variant of ``viworks-lab variants``: ``viworks-lab up --variant NAME``, then the smoke gate
as an operator runs it (a separate ``pytest -m smoke`` with JUnit). A failure here is a false alarm:
a check that judges spelling, not behaviour. Writes reports/variant-matrix.md and .json, and
leaves the lab as the reference.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import REPO, run_lab
from tests.fault_matrix import SmokeRun, run_smoke
from viworks_lab.variants import VARIANTS

pytestmark = pytest.mark.lab

RESULTS: dict[str, tuple[float, SmokeRun]] = {}


@pytest.fixture(scope="module", autouse=True)
def back_to_the_reference_and_report():
    yield
    run_lab("up", "--gateways", "1", "--variant", "reference")
    _write_report()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_variant_passes_the_gate_with_no_failure(variant, tmp_path):
    started = time.monotonic()
    done = run_lab("up", "--gateways", "1", "--variant", variant)
    assert done.returncode == 0, f"viworks-lab up --variant {variant} failed:\n{done.stderr[-2000:]}"
    up_s = time.monotonic() - started
    run = run_smoke(tmp_path / "junit.xml")
    RESULTS[variant] = (up_s, run)
    assert run.exit_code == 0 and not run.failures, (
        f"{variant}: a correct deployment written another way failed {len(run.failures)} checks: "
        + "; ".join(f"{f.case}: {f.message[:300]}" for f in run.failures)
    )
    assert run.total >= 70, f"{variant}: only {run.total} checks ran"


def _write_report() -> None:
    reports = REPO / "reports"
    reports.mkdir(exist_ok=True)
    rows = [
        {
            "variant": name,
            "description": VARIANTS[name].description,
            "up_s": round(up_s, 1),
            "gate_s": round(run.seconds, 1),
            "checks": run.total,
            "failures": [f.case for f in run.failures],
            "skipped": run.skipped,
        }
        for name, (up_s, run) in RESULTS.items()
    ]
    (reports / "variant-matrix.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Variant matrix",
        "",
        "Healthy deployments written differently; each must pass the smoke gate with no failure.",
        "",
        "| variant | what differs | checks | failures | skipped | up s | gate s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        failures = "<br>".join(row["failures"]) or "0"
        lines.append(
            f"| `{row['variant']}` | {row['description']} | {row['checks']} | {failures} "
            f"| {row['skipped']} | {row['up_s']} | {row['gate_s']} |"
        )
    (reports / "variant-matrix.md").write_text("\n".join(lines) + "\n")
