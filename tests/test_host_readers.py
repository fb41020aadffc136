"""The readers of the gather phase, on canned host output: what lands in a snapshot, and what never does."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from viworks_verify.core.redaction import REDACTOR
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.gateway.reader import FILES_SCRIPT, HOST_SCRIPT, read_gateway, sections
from viworks_verify.gateway.snapshot import GatewaySnapshot
from viworks_verify.gather.snapshot import FORMAT, RunSnapshot, SnapshotFormatError
from viworks_verify.pki import certs, public_keys
from viworks_verify.target.settings import Gateway

CA = certs.new_ca("Test CA")
CLIENT = certs.issue(CA, "gw-test-01", server=False)
SECRET = "s3cr3t-api-value-123"

ENV = f"""VIW_AGENT_BACKEND_URL=wss://agent.example.com/ws/agent
VIW_AGENT_ID=gw-test-01
VIW_AGENT_CERT_PATH=/opt/viworks/agent/certs/client.crt
VIW_AGENT_KEY_PATH=/opt/viworks/agent/certs/client.key
VIW_AGENT_TRUST_BUNDLE=/opt/viworks/agent/certs/ca.crt
VIW_AGENT_SCRIPTS_ROOT=/opt/viworks/scripts
VIW_AGENT_API_SECRET={SECRET}
"""
UNIT = """LoadState=loaded
ActiveState=active
SubState=running
MainPID=4242
ExecStart={ path=/opt/viworks/viworks-gateway-agent ; argv[]=/opt/viworks/viworks-gateway-agent ; }
EnvironmentFiles=/opt/viworks/agent/.env (ignore_errors=no)
InvocationID=0123456789abcdef0123456789abcdef
"""


@dataclasses.dataclass
class Result:
    rc: int
    stdout: str
    stderr: str = ""


PATHS = (
    "@@ paths\ncertificate=/opt/viworks/agent/certs/client.crt\ntrust=/opt/viworks/agent/certs/ca.crt\n"
    "key=/opt/viworks/agent/certs/client.key\nroot=/opt/viworks/scripts\n"
)
REQUIRED = (
    "/opt/viworks/viworks-gateway-agent",
    "/opt/viworks/agent/.env",
    "/opt/viworks/agent/certs/client.crt",
    "/opt/viworks/agent/certs/ca.crt",
    "/opt/viworks/scripts/delete_user.sh",
    "/opt/viworks/scripts/add_vpn_user.sh",
    "/opt/viworks/scripts/delete_vpn_user.sh",
)


def host_output(env: str | None = ENV, paths: str = PATHS) -> str:
    """What the host script prints; the identity files' sections (files_output) follow it."""
    env_part = f"@@ env\n{env}\n@@ env-rc 0\n" if env is not None else "@@ env\n\n@@ env-rc 1\n"
    return (
        "@@ clock\n1767225600.25\n"
        f"@@ unit\n{UNIT}@@ unit-rc 0\n"
        f"{env_part}"
        '@@ listeners\ntcp   LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=51,fd=3))\n@@ listeners-rc 0\n'
        "@@ journal-connected\n"
        "2026-01-01T00:00:01+0000 gw viworks-gateway-agent[4242]: session established agent_id=gw-test-01\n"
        "@@ journal-last\n"
        "2026-01-01T00:00:01+0000 gw viworks-gateway-agent[4242]: session established agent_id=gw-test-01\n"
        "@@ process\nprogram=/opt/viworks/viworks-gateway-agent\nexe=/opt/viworks/viworks-gateway-agent\n"
        "state=S (sleeping)\nargv:\n/opt/viworks/viworks-gateway-agent\n"
        f"{paths}"
    )


def files_output() -> str:
    public = (
        CLIENT.certificate.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return (
        "@@ stat\n600|0|root|0|root|100|regular file|/opt/viworks/agent/certs/client.key\n"
        + "".join(f"644|0|root|0|root|100|regular file|{path}\n" for path in REQUIRED)
        + "stat: cannot statx '/opt/viworks/scripts/add_user.sh': No such file or directory\n"
        f"@@ certificate\n{CLIENT.cert_pem().decode()}@@ certificate-rc 0\n"
        f"@@ trust\n{CA.cert_pem().decode()}@@ trust-rc 0\n"
        f"@@ key\n{public}@@ key-rc 0\n"
    )


class FakeHost:
    """``run_script(script, *args)``: answers the reader's scripts from canned output."""

    def __init__(self, first: str, second: str) -> None:
        self.outputs = {HOST_SCRIPT: first + second, FILES_SCRIPT: second}
        self.calls: list[tuple[str, ...]] = []

    def run(self, script: str, *args: str) -> Result:
        self.calls.append((script, *args))
        return Result(0, self.outputs[script])


def read(host: FakeHost, hasher: SecretHasher | None = None) -> GatewaySnapshot:
    snapshot, _secrets = read_gateway(
        "ssh://gw-test-01",
        "gw-test-01",
        host.run,
        Gateway(connected_log_pattern="session established"),
        hasher or SecretHasher(b"k" * 32),
    )
    return snapshot


def test_a_gateway_is_read_in_one_round_trip_into_every_fact():
    host = FakeHost(host_output(), files_output())
    snapshot = read(host)
    assert len(host.calls) == 1
    assert snapshot.connection.ok and snapshot.unit.value.get("MainPID") == "4242"
    assert snapshot.env.value["VIW_AGENT_ID"] == "gw-test-01"
    assert snapshot.journal.value.connected.endswith("session established agent_id=gw-test-01")
    assert snapshot.listeners.value.listeners[0].describe() == "22/tcp on 0.0.0.0 by sshd (pid 51)"
    assert snapshot.process.value.runs_program
    assert snapshot.files.value.get("/opt/viworks/agent/certs/client.key").octal == "0600"
    assert snapshot.files.value.absence("/opt/viworks/scripts/add_user.sh") == "does not exist"
    assert certs.common_name(snapshot.client_certificate.value.leaf) == "gw-test-01"
    assert certs.chains_to(snapshot.client_certificate.value.leaf, snapshot.trust_bundle.value.certificates)
    assert host.calls[0][1:5] == (
        "viworks-gateway-agent.service",
        "/opt/viworks/agent/.env",
        "session established",
        "/opt/viworks/viworks-gateway-agent",
    )


def test_paths_the_script_did_not_read_as_python_does_cost_one_more_round_trip():
    quoted = ENV.replace(
        "VIW_AGENT_CERT_PATH=/opt/viworks/agent/certs/client.crt",
        'VIW_AGENT_CERT_PATH="/opt/viworks/agent/certs/client.crt"',
    )
    host = FakeHost(
        host_output(quoted, PATHS.replace("certificate=/opt/viworks/agent/certs/client.crt", 'certificate="/opt/x"')),
        files_output(),
    )
    snapshot = read(host)
    assert len(host.calls) == 2 and host.calls[1][1] == "/opt/viworks/agent/certs/client.crt"
    assert certs.common_name(snapshot.client_certificate.value.leaf) == "gw-test-01"


def test_a_secret_value_is_in_a_snapshot_only_as_its_keyed_hash():
    first = read(FakeHost(host_output(), files_output()), SecretHasher(b"a" * 32))
    again = read(FakeHost(host_output(), files_output()), SecretHasher(b"a" * 32))
    other_key = read(FakeHost(host_output(), files_output()), SecretHasher(b"b" * 32))
    changed = read(
        FakeHost(host_output(ENV.replace(SECRET, SECRET + "-rotated")), files_output()), SecretHasher(b"a" * 32)
    )
    text = json.dumps(first.to_json())
    assert SECRET not in text
    hashed = first.env.value["VIW_AGENT_API_SECRET"]
    assert hashed.startswith("hmac-sha256:")
    assert again.env.value["VIW_AGENT_API_SECRET"] == hashed  # one deployment, one key: equal
    assert other_key.env.value["VIW_AGENT_API_SECRET"] != hashed
    assert changed.env.value["VIW_AGENT_API_SECRET"] != hashed  # a rotated secret shows as changed


def test_an_unreadable_env_is_the_problem_of_the_env_fact_only():
    snapshot = read(FakeHost(host_output(env=None), files_output()))
    assert (
        snapshot.env.problem
        == "ssh://gw-test-01: /opt/viworks/agent/.env cannot be read (missing?); expected the agent's environment file"
    )
    assert snapshot.unit.ok and snapshot.listeners.ok
    assert snapshot.client_certificate.problem.endswith(
        "VIW_AGENT_CERT_PATH not set; expected the path of the agent's VIW_AGENT_CERT_PATH"
    )


def test_an_unreachable_gateway_is_one_connection_problem():
    class Refused(Exception):
        pass

    def run(script, *args):
        raise Refused(Result(255, "", "ssh: connect to host gw.example.test port 22: Connection refused\n"))

    snapshot, _secrets = read_gateway("ssh://gw-test-01", "gw-test-01", run, Gateway(), SecretHasher())
    assert (
        snapshot.connection.problem
        == "ssh://gw-test-01 unreachable: ssh: connect to host gw.example.test port 22: Connection refused"
    )
    assert snapshot.unit.value is None and snapshot.files.value is None


def test_sections_keep_exit_statuses_apart_from_content():
    parsed = sections("@@ a\nline 1\nline 2\n@@ a-rc 0\n@@ b\n@@ b-rc 2\n")
    assert parsed == {"a": "line 1\nline 2", "a-rc": "0", "b": "", "b-rc": "2"}


def test_a_run_snapshot_round_trips_through_json(tmp_path):
    snapshot = read(FakeHost(host_output(), files_output()))
    run = RunSnapshot("lab", 1.0, [snapshot])
    run.save(tmp_path / "s.json")
    again = RunSnapshot.load(tmp_path / "s.json")
    assert again.to_json() == run.to_json()
    assert json.loads((tmp_path / "s.json").read_text())["format"] == FORMAT


@pytest.mark.parametrize("content, says", [("[]", "not a viworks-snapshot/1 snapshot"), ("{", "not a JSON snapshot")])
def test_a_file_that_is_not_a_snapshot_says_so_in_one_line(tmp_path, content, says):
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(SnapshotFormatError, match=says):
        RunSnapshot.load(tmp_path / "x.json")


def test_the_host_script_reads_the_env_and_the_files_it_names_with_a_real_shell(tmp_path):
    """The script's own parsing (sed on the .env, the stat list, the PEM sections) run by sh, here.

    This machine is no gateway (no systemctl or journalctl is needed): the unit's facts come back
    as their problem, and everything the .env names is read.
    """
    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    (certs_dir / "client.crt").write_bytes(CLIENT.cert_pem())
    (certs_dir / "ca.crt").write_bytes(CA.cert_pem())
    (certs_dir / "client.key").write_bytes(CLIENT.key_pem())
    (certs_dir / "client.key").chmod(0o600)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "add_user.sh").write_text("#!/bin/sh\n")
    env = tmp_path / ".env"
    env.write_text(
        f"export VIW_AGENT_CERT_PATH='{certs_dir}/client.crt'\n"
        f'VIW_AGENT_TRUST_BUNDLE = "{certs_dir}/ca.crt"\n'
        f"VIW_AGENT_KEY_PATH={certs_dir}/client.key\n"
        f"VIW_AGENT_SCRIPTS_ROOT={scripts}/\n"
        f"VIW_AGENT_API_SECRET={SECRET}\n"
    )
    calls = []

    def run(script, *args):
        calls.append((script, *args))
        done = subprocess.run(["sh", "-s", "--", *args], input=script, capture_output=True, text=True, timeout=30)
        return Result(done.returncode, done.stdout, done.stderr)

    settings = Gateway(env_file=str(env), binary_path=str(tmp_path / "viworks-gateway-agent"))
    snapshot, secrets = read_gateway("ssh://here", "here", run, settings, SecretHasher(b"k" * 32))
    assert len(calls) == 1, "the script read the .env's paths as Python does: one round trip"
    assert snapshot.env.ok and SECRET not in json.dumps(snapshot.to_json())
    # The reader returns what it saw for the run to register; it registers nothing itself.
    assert secrets == (SECRET,) and REDACTOR.redact(SECRET) == SECRET
    assert certs.common_name(snapshot.client_certificate.value.leaf) == "gw-test-01"
    assert certs.chains_to(snapshot.client_certificate.value.leaf, snapshot.trust_bundle.value.certificates)
    if shutil.which("openssl"):
        assert base64.b64decode(snapshot.client_key_spki.value) == public_keys.certificate_spki(
            snapshot.client_certificate.value.leaf
        )
    table = snapshot.files.value
    assert table.get(f"{certs_dir}/client.key").octal == "0600"
    assert table.get(f"{scripts}/add_user.sh").is_file
    assert table.absence(f"{scripts}/delete_user.sh") == "does not exist"
    assert table.absence(str(tmp_path / "viworks-gateway-agent")) == "does not exist"
