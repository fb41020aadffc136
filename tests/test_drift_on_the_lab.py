"""``viworks-verify snapshot`` and ``diff`` on the live lab, as an operator compares two deployments.

Two snapshots of the healthy lab, taken on either side of a fault being injected and healed (so
the containers and the agent were restarted in between: new PIDs, start times, addresses), diff
empty; with the backend binary swapped and the agent taken off one network, the diff names exactly
those two facts, with both values.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import BIN, REPO, run_lab

pytestmark = pytest.mark.lab


def snapshot(path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(BIN / "viworks-verify"), "snapshot", "--target", "lab", "-o", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def diff(before, after) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "viworks-verify"), "diff", str(before), str(after)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_lab_diffs_empty_across_a_restart_and_names_exactly_the_injected_drift(lab, docker_client, tmp_path):
    started = time.monotonic()
    snapshot(tmp_path / "before.json")
    assert run_lab("break", "binary-drift").returncode == 0
    try:
        docker_client.networks.get("viworks-public").disconnect("viworks-backend-agent-new")
        snapshot(tmp_path / "broken.json")
    finally:
        healed = run_lab("heal")  # converges everything back: the binary and the network
    assert healed.returncode == 0, healed.stderr[-2000:]
    snapshot(tmp_path / "after.json")
    apart_s = time.monotonic() - started

    drifted = diff(tmp_path / "before.json", tmp_path / "broken.json")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    lines = drifted.stdout.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == [
        "backend-lab.binary",
        "backend-lab.containers[viworks-backend-agent-new].networks",
    ], drifted.stdout
    binary, networks = lines
    assert binary.count("sha256") == 2 and binary.count("bytes") == 2, binary
    assert networks.endswith("[viworks-internal, viworks-public] -> [viworks-internal]"), networks

    unchanged = diff(tmp_path / "before.json", tmp_path / "after.json")
    assert unchanged.returncode == 0, f"{apart_s:.0f} s apart, across a heal:\n{unchanged.stdout}"
    assert "no drift" in unchanged.stdout and "volatile differences ignored" in unchanged.stdout
