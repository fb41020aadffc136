"""Rehearse a release: the reference agents packaged as a candidate (``build-release``) deployed with
``up --release``, then the smoke gate as an operator runs it. A healthy candidate passes; a broken
one fails the gate with the check that names what is wrong. The binary that exits at start is a
shell script: the rehearsal assumes nothing of what a candidate is written in.
"""

from __future__ import annotations

import json
import shutil
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.conftest import REPO, run_lab, run_suite

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def reference_release(lab, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("release")
    built = run_lab("build-release", str(directory))
    assert built.returncode == 0, built.stderr
    yield directory
    restored = run_lab("up", "--reference-agents")
    assert restored.returncode == 0, restored.stderr[-2000:]


def _variant_of(release: Path, tmp_path: Path, change) -> Path:
    directory = tmp_path / "candidate"
    shutil.copytree(release, directory)
    change(directory)
    return directory


def _gate(tmp_path: Path) -> dict[str, str]:
    """The smoke gate's failures (check[host] -> message); fails the test when the run itself broke."""
    junit = tmp_path / "junit.xml"
    done = run_suite("-m", "smoke", "--target", "lab", "-q", "--ready-timeout", "30", junit=junit)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    failed = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        verdict = case.find("failure") if case.find("failure") is not None else case.find("error")
        if verdict is not None:
            failed[case.get("name")] = verdict.get("message") or ""
    assert (done.returncode == 0) == (not failed), done.stdout[-3000:]
    return failed


def _assert_the_backend_container_is_named(failed: dict[str, str]) -> None:
    """A crash-looping container is "restarting" or, between two attempts, briefly "running" with restarts
    counted: one of the two container checks names it."""
    named = {
        check: message
        for check, message in failed.items()
        if check.split("[")[0] in ("test_containers_are_running", "test_containers_are_not_restarting_repeatedly")
        and "viworks-backend-agent-new" in message
    }
    assert named, failed


def _rehearse(directory: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    done = run_lab("up", "--release", str(directory), "--lab-secrets")
    return done.returncode, done.stderr, time.monotonic() - started


def test_the_reference_candidate_passes_the_gate_and_becomes_the_expected_release(reference_release, tmp_path):
    code, log, took_s = _rehearse(reference_release)
    assert code == 0, log[-3000:]
    assert "the candidate's agents started" in log
    manifest = json.loads((REPO / ".lab" / "release.json").read_text())
    binary = (reference_release / "viworks-backend-agent").read_bytes()
    assert (
        manifest["backend"]["size"] == len(binary) and manifest["backend"]["version"] == "1.4.2-lab"
    )  # from its --version
    status = run_lab("status").stdout
    assert "agents: candidate: viworks-backend-agent, backend-agent.toml" in status
    assert _gate(tmp_path) == {}, f"rehearsal up took {took_s:.0f} s"


def test_a_backend_binary_that_exits_at_start_is_reported_and_fails_the_gate(reference_release, tmp_path):
    def crash(directory: Path) -> None:
        binary = directory / "viworks-backend-agent"
        binary.write_text(
            "#!/bin/sh\necho 'viworks-backend-agent: cannot open /var/lib/viworks/state.db: no such file' >&2\nexit 1\n"
        )
        binary.chmod(0o755)

    code, log, _ = _rehearse(_variant_of(reference_release, tmp_path, crash))
    assert code == 3, log[-3000:]
    assert "the candidate did not start" in log and "cannot open /var/lib/viworks/state.db" in log, log[-3000:]
    _assert_the_backend_container_is_named(_gate(tmp_path))


def test_a_config_missing_a_required_key_is_reported_and_fails_the_gate(reference_release, tmp_path):
    def forget_the_jwt_secret(directory: Path) -> None:
        config = directory / "backend-agent.toml"
        config.write_text(
            "\n".join(line for line in config.read_text().splitlines() if not line.startswith("jwt_secret")) + "\n"
        )

    code, log, _ = _rehearse(_variant_of(reference_release, tmp_path, forget_the_jwt_secret))
    assert code == 3, log[-3000:]
    assert "required key(s) missing: [security] jwt_secret" in log, log[-3000:]
    _assert_the_backend_container_is_named(_gate(tmp_path))


def test_a_candidate_serving_another_agent_path_starts_and_fails_the_gate(reference_release, tmp_path):
    def move_the_agent_path(directory: Path) -> None:
        config = directory / "backend-agent.toml"
        config.write_text(config.read_text().replace('path = "/ws/agent"', 'path = "/agent/socket"'))

    code, log, _ = _rehearse(_variant_of(reference_release, tmp_path, move_the_agent_path))
    assert code == 0, log[-3000:]  # it starts: only the gate can tell that agents cannot reach it
    failed = _gate(tmp_path)
    assert "test_agent_path_upgrades_with_a_client_certificate[https://agent.lab.test]" in failed, failed
    assert "test_deployed_gateway_is_online[agent://gw-lab-01]" in failed, failed


def test_down_leaves_nothing_behind(reference_release, docker_client):
    assert run_lab("up", "--release", str(reference_release), "--lab-secrets").returncode == 0
    done = run_lab("down")
    assert done.returncode == 0, done.stderr
    assert not docker_client.containers.list(all=True, filters={"label": "viworks.lab"})
    assert not [n.name for n in docker_client.networks.list() if n.name in ("viworks-internal", "viworks-public")]
    assert not (REPO / ".lab" / "candidate.json").exists() and not (REPO / ".lab" / "candidate").exists()
    assert "agents: reference" in run_lab("status").stdout
