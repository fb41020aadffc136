"""A fleet of gateway hosts: every one checked at once, and a fault on one fails only that one's checks.

The lab runs four gateway hosts (``viworks-lab up --gateways 4``); one gets a fault (``break
gateway-unit-masked --host gw-lab-03``), another is made unreachable (its container stopped). The
smoke gate must fail exactly one check of each of those two hosts (one cause, one failure: the
others skip naming it), and pass every check of the others. The lab is back to one healthy
gateway afterwards.
"""

from __future__ import annotations

import re
import subprocess
import time
import xml.etree.ElementTree as ElementTree

import pytest

from tests.conftest import run_lab, run_suite

pytestmark = pytest.mark.lab

FAULTED, UNREACHABLE = "gw-lab-03", "gw-lab-04"
MASKED = {"test_unit_is_loaded_enabled_and_active"}


@pytest.fixture(scope="module")
def fleet_of_four(lab):
    done = run_lab("up", "--gateways", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    try:
        yield
    finally:
        run_lab("heal")
        subprocess.run(["docker", "start", f"viworks-{UNREACHABLE}"], capture_output=True)
        done = run_lab("up", "--gateways", "1")
        assert done.returncode == 0, done.stderr[-3000:]


def _cases(junit):
    cases = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        verdict = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        cases[case.get("name")] = (
            ("failed", verdict.get("message"))
            if verdict is not None
            else ("skipped", skipped.get("message"))
            if skipped is not None
            else ("passed", "")
        )
    return cases


def test_a_fault_on_one_gateway_of_four_fails_only_that_gateways_checks(fleet_of_four, tmp_path):
    assert run_lab("break", "gateway-unit-masked", "--host", FAULTED).returncode == 0
    subprocess.run(["docker", "stop", "-t", "1", f"viworks-{UNREACHABLE}"], check=True, capture_output=True)
    started = time.monotonic()
    done = run_suite("-m", "smoke", "--target", "lab", "--ready-timeout", "30", "-q", junit=tmp_path / "junit.xml")
    seconds = time.monotonic() - started
    cases = _cases(tmp_path / "junit.xml")
    failed = {name: message for name, (verdict, message) in cases.items() if verdict == "failed"}
    assert done.returncode == 1, done.stdout[-3000:]

    faulted = [re.sub(r"\[.*\]$", "", name) for name in failed if FAULTED in name]
    assert set(faulted) == MASKED and len(faulted) == 1, f"{FAULTED}: failing {sorted(faulted)}"
    assert "masked" in next(message for name, message in failed.items() if FAULTED in name)
    skipped_for_masked = [
        name
        for name, (verdict, message) in cases.items()
        if verdict == "skipped" and FAULTED in name and "masked" in message and "test_unit_is_loaded" in message
    ]
    assert len(skipped_for_masked) >= 10, f"{FAULTED}: the checks that need its agent should skip naming the cause"
    unreachable = [name for name in failed if UNREACHABLE in name]
    assert len(unreachable) == 1 and f"ssh://{UNREACHABLE} unreachable" in failed[unreachable[0]], unreachable
    others = [name for name in failed if FAULTED not in name and UNREACHABLE not in name]
    assert not others, f"checks of healthy hosts failed: {others}"
    skipped_for_unreachable = [
        name
        for name, (verdict, message) in cases.items()
        if verdict == "skipped" and UNREACHABLE in name and "unreachable" in message
    ]
    assert len(skipped_for_unreachable) >= 25, f"{UNREACHABLE}: its other checks should skip naming it"
    for healthy in ("gw-lab-01", "gw-lab-02"):
        theirs = {name: verdict for name, (verdict, _) in cases.items() if healthy in name}
        assert len(theirs) >= 25 and set(theirs.values()) == {"passed"}, f"{healthy}: {theirs}"
    # Nothing waited on the two broken gateways: their facts proved them down at once.
    assert seconds < 30, f"the gate took {seconds:.0f} s"
