"""Secrets never reach an artifact: canaries planted everywhere a secret lives, then every output searched.

Planted: an API token in the environment; a JWT secret in the target's secrets file (named by its
settings); a secret key in the gateway's .env (which the suite reads with `cat`, a command's output);
and the lab's own Postgres, Redis and JWT secrets in its config files. The run is made to fail where
those values are in reach (a rejected token, an .env check failing with its locals shown) at the
highest verbosity, and stdout, stderr, JUnit, the HTML report, the JSON summary, the saved
snapshots and their diff (the .env secret changed in between: the diff must say so, by name) are searched.
"""

from __future__ import annotations

import secrets
import subprocess

import pytest

from tests.conftest import BIN, REPO, run_lab, run_suite

pytestmark = pytest.mark.lab


def plant_env_secret(value: str) -> None:
    """The gateway's .env gets (or changes) a secret the agent does not use: VIW_AGENT_API_SECRET."""
    subprocess.run(
        [
            "docker",
            "exec",
            "viworks-gw-lab-01",
            "sh",
            "-c",
            "sed -i '/^VIW_AGENT_API_SECRET=/d' /opt/viworks/agent/.env && "
            f"echo VIW_AGENT_API_SECRET={value} >> /opt/viworks/agent/.env",
        ],
        check=True,
    )


def verify(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "viworks-verify"), *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done


def test_no_secret_appears_in_any_output(lab, lab_secrets, tmp_path, monkeypatch):
    canaries = {
        "environment API token": "canary-token-" + secrets.token_hex(12),
        "settings secrets file": "canary-jwt-" + secrets.token_hex(12),
        "gateway .env (cat output)": "canary-env-" + secrets.token_hex(12),
        "gateway .env, before a change": "canary-env-old-" + secrets.token_hex(12),
        "snapshot key": "canary-snapshot-key-" + secrets.token_hex(12),
        **{f"lab config: {name}": value for name, value in lab_secrets.items()},
    }
    target = tmp_path / "canary.toml"
    target.write_text(
        (REPO / "targets" / "lab.toml")
        .read_text()
        .replace('"../', f'"{REPO}/')
        .replace(f'secrets_file = "{REPO}/.lab/secrets.env"', f'secrets_file = "{tmp_path}/secrets.env"')
    )
    (tmp_path / "secrets.env").write_text(
        f"VIWORKS_JWT_SECRET={canaries['settings secrets file']}\n"
        f"VIWORKS_AGENT_KEY_FILE={REPO}/.lab/pki/suite-probe-01.key\n"
        f"VIWORKS_SNAPSHOT_KEY={canaries['snapshot key']}\n"
    )
    monkeypatch.setenv("VIWORKS_API_TOKEN", canaries["environment API token"])
    assert run_lab("break", "env-missing-key").returncode == 0
    try:
        # A snapshot with the secret's old value: the baseline the gate and the diff compare with.
        plant_env_secret(canaries["gateway .env, before a change"])
        baseline = verify("snapshot", f"--target={target}", "-o", str(tmp_path / "baseline.json"))
        plant_env_secret(canaries["gateway .env (cat output)"])
        done = run_suite(
            "-m",
            "smoke",
            f"--target={target}",
            "-vv",
            "-l",
            "--tb=long",
            "-rA",
            "--log-level=DEBUG",
            "-o",
            "junit_logging=all",
            f"--html={tmp_path / 'report.html'}",
            "--self-contained-html",
            f"--json-summary={tmp_path / 'summary.json'}",
            f"--snapshot-out={tmp_path / 'snapshot.json'}",
            f"--baseline={tmp_path / 'baseline.json'}",
            junit=tmp_path / "junit.xml",
        )
        diffed = verify(
            "diff",
            str(tmp_path / "baseline.json"),
            str(tmp_path / "snapshot.json"),
            "--all",
            f"--html={tmp_path / 'diff.html'}",
        )
    finally:
        assert run_lab("heal").returncode == 0
    assert done.returncode == 1, done.stdout[-3000:]  # the planted token is refused: failure paths ran
    # The secret's change is seen, by name only: in the gate's drift section and in the diff.
    changed = "gw-lab-01.config.VIW_AGENT_API_SECRET: secret value changed (values not shown)"
    assert changed in done.stdout and changed in diffed.stdout, diffed.stdout
    artifacts = {
        "stdout": done.stdout,
        "stderr": done.stderr,
        "snapshot command": baseline.stdout + baseline.stderr,
        "diff command": diffed.stdout + diffed.stderr,
        **{
            name: (tmp_path / name).read_text()
            for name in ("junit.xml", "report.html", "summary.json", "snapshot.json", "baseline.json", "diff.html")
        },
    }
    assert "test_env_has_every_required_key" in artifacts["junit.xml"]  # the .env check failed, with locals
    # The .env was read: its secret is in the snapshot as a keyed hash (comparable, not revealing).
    assert '"VIW_AGENT_API_SECRET": "hmac-sha256:' in artifacts["snapshot.json"]
    leaks = [
        f"{where} in {artifact}"
        for where, value in canaries.items()
        for artifact, text in artifacts.items()
        if value in text
    ]
    assert not leaks, f"secrets leaked: {leaks}"
