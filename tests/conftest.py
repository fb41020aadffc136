"""Fixtures for the suite's own tests: the lab, driven through its command line as a user drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_lab(*args: str, timeout_s: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "viworks-lab"), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture(scope="module")
def lab():
    """The reference lab with one gateway host, up (a no-op when it already is); yields how long ``up`` took.

    Whatever an earlier ``up --gateways N --variant V`` or ``--release`` left: the tests'
    expectations are of that lab."""
    started = time.monotonic()
    done = run_lab("up", "--gateways", "1", "--variant", "reference", "--reference-agents")
    assert done.returncode == 0, f"viworks-lab up failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return {"up_s": time.monotonic() - started, "stderr": done.stderr}


@pytest.fixture(scope="session")
def docker_client():
    return docker.from_env(timeout=30)


@pytest.fixture(scope="module")
def lab_secrets(lab):
    """The lab's generated secrets (they exist once ``up`` has made them)."""
    return json.loads((REPO / ".lab" / "lab-secrets.json").read_text())


def run_suite(
    *pytest_args: str, junit: Path, timeout_s: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The suite's front door: a separate ``pytest`` run, as an operator starts it (``env``: more variables)."""
    return subprocess.run(
        [str(BIN / "pytest"), "-p", "no:cacheprovider", f"--junitxml={junit}", *pytest_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )
