"""The gate's exit codes and its answer to bad input, judged as a pipeline would: exit code and output.

0 all passed, 1 checks failed (the lab and fault-matrix tests), 4 a target that cannot be used as
given (one line, no traceback), 6 a target whose edge never answered within --ready-timeout.
None of these runs needs the lab: a bad target is refused before anything is contacted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
GOOD_PIN = "sha256/" + "A" * 42 + "E="  # base64 of 32 bytes


def _gate(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VIWORKS_")}
    environment.update(env or {})
    return subprocess.run(
        [str(BIN / "pytest"), "-p", "no:cacheprovider", "-q", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def _target(
    tmp_path: Path, body: str, inventory: str = "[backend]\nb ansible_connection=local\n[gateway]\ng\n"
) -> Path:
    (tmp_path / "hosts.ini").write_text(inventory)
    (tmp_path / "probe.key").write_text("not a key: nothing here reaches a target\n")
    (tmp_path / "secrets.env").write_text(
        f"VIWORKS_JWT_SECRET={'not-a-real-secret-' * 3}\nVIWORKS_AGENT_KEY_FILE={tmp_path / 'probe.key'}\n"
    )
    path = tmp_path / "target.toml"
    path.write_text('inventory = "hosts.ini"\nsecrets_file = "secrets.env"\n' + body)
    return path


BAD_TARGETS = {
    "missing hosts.ini": ('[edge]\ndomain = "agent.example.test"\n', None, "inventory", "does not exist"),
    "malformed hosts.ini": ('[edge]\ndomain = "agent.example.test"\n', "[backend\nb\n", "cannot be parsed", ""),
    "missing key": ("[edge]\nhttps_port = 443\n", ..., "edge.domain", "Field required"),
    "mistyped key": (
        '[edge]\ndomain = "agent.example.test"\nconect_address = "127.0.0.1"\n',
        ...,
        "edge.conect_address",
        "Extra inputs",
    ),
    "mistyped value": (
        '[edge]\ndomain = "agent.example.test"\nhttps_port = "four-four-three"\n',
        ...,
        "edge.https_port",
        "integer",
    ),
    "missing include": (
        'include = ["generated.toml"]\n[edge]\ndomain = "agent.example.test"\n',
        ...,
        "include generated.toml",
        "does not exist",
    ),
    "missing release manifest": (
        'release_manifest = "release.json"\n[edge]\ndomain = "agent.example.test"\n',
        ...,
        "release_manifest",
        "does not exist",
    ),
    "pin not base64 of 32 bytes": (
        '[edge]\ndomain = "agent.example.test"\nspki_pins = "sha256/dummy"\n',
        ...,
        "edge.spki_pins",
        "32-byte",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_a_bad_target_is_one_line_and_exit_4(tmp_path, case):
    body, inventory, *words = BAD_TARGETS[case]
    target = _target(tmp_path, body)
    if inventory is None:
        (tmp_path / "hosts.ini").unlink()
    elif inventory is not ...:
        (tmp_path / "hosts.ini").write_text(inventory)
    done = _gate(tmp_path, "-m", "smoke", f"--target={target}")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and all(word in errors[0] for word in words), output[-2000:]
    assert "Traceback" not in output


def test_an_unknown_target_names_the_known_ones(tmp_path):
    done = _gate(tmp_path, "-m", "smoke", "--target=no-such-target")
    assert done.returncode == 4
    assert (
        "ERROR: unknown target 'no-such-target'" in done.stdout + done.stderr
        and "known: lab" in done.stdout + done.stderr
    )


def test_a_missing_secret_is_one_line_and_exit_4(tmp_path):
    target = _target(tmp_path, '[edge]\ndomain = "agent.example.test"\n')
    (tmp_path / "secrets.env").write_text("")
    done = _gate(tmp_path, "-m", "e2e and smoke", f"--target={target}")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-2000:]
    assert "ERROR: target target: no API credential: set VIWORKS_API_TOKEN" in output and "Traceback" not in output


def test_a_target_that_never_answers_is_exit_6(tmp_path):
    target = _target(tmp_path, '[edge]\ndomain = "agent.example.test"\nconnect_address = "127.0.0.1"\nhttps_port = 9\n')
    done = _gate(tmp_path, "-m", "e2e and smoke", f"--target={target}", "--ready-timeout=1")
    output = done.stdout + done.stderr
    assert done.returncode == 6, output[-2000:]
    assert (
        "target target never became ready: https://agent.example.test (127.0.0.1:9) did not answer within 1 s" in output
    )


def test_an_unreachable_host_fails_once_fast_and_its_other_checks_skip(tmp_path):
    target = _target(
        tmp_path,
        '[edge]\ndomain = "agent.example.test"\n',
        inventory="[gateway]\ngw-gone ansible_host=127.0.0.1 ansible_port=9 ansible_user=nobody\n",
    )
    junit = tmp_path / "junit.xml"
    done = _gate(tmp_path, "-m", "infra and gateway", f"--target={target}", f"--junitxml={junit}")
    assert done.returncode == 1, done.stdout[-2000:]
    report = junit.read_text()
    assert report.count("<error") + report.count("<failure") == 1, done.stdout[-2000:]
    assert "ssh://gw-gone unreachable: ssh: connect to host 127.0.0.1 port 9: Connection refused" in report
    assert report.count("<skipped") >= 20 and "unreachable" in report.split("<skipped", 1)[1]


@pytest.mark.parametrize("way", ["target", "inventory"])
def test_an_unreachable_jump_host_is_one_failure_not_one_per_gateway(tmp_path, way):
    """Production's gateways are reached through a bastion (ssh ProxyJump): when it does not answer, that
    is one cause, reported once naming the jump host; every gateway's checks skip naming it."""
    jump = "nobody@127.0.0.1:9"  # nothing listens on the discard port: refused at once
    hosts = ("gw-site1-01", "gw-site2-01", "gw-site3-01")
    through = f" ansible_ssh_common_args='-o ProxyJump={jump}'" if way == "inventory" else ""
    target = _target(
        tmp_path,
        (f'ssh_proxy_jump = "{jump}"\n' if way == "target" else "") + '[edge]\ndomain = "agent.example.test"\n',
        inventory="[gateway]\n" + "".join(f"{h} ansible_host={h}.test ansible_user=nobody{through}\n" for h in hosts),
    )
    junit = tmp_path / "junit.xml"
    done = _gate(tmp_path, "-m", "infra and gateway", f"--target={target}", f"--junitxml={junit}")
    assert done.returncode == 1, done.stdout[-2000:]
    report = junit.read_text()
    assert report.count("<error") + report.count("<failure") == 1, done.stdout[-3000:]
    assert (
        f"jump host {jump} unreachable (every host behind it): connect to 127.0.0.1 port 9: Connection refused"
        in report
    )
    skipped = report.split("<skipped")[1:]
    assert len(skipped) >= 3 * 20 and all(f"jump host {jump} unreachable" in s for s in skipped), done.stdout[-2000:]
