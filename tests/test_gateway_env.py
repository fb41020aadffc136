"""The gateway .env rules: required keys, the backend URL behind the TLS edge, real pins, feature flags."""

from __future__ import annotations

import base64
import hashlib

import pytest

from viworks_verify.core.envfile import parse_env
from viworks_verify.gateway import env as ge
from viworks_verify.target.settings import REQUIRED_ENV_KEYS

DOMAIN, WS_PATH = "agent.example.com", "/ws/agent"
REAL_PIN = base64.b64encode(hashlib.sha256(b"a real SubjectPublicKeyInfo").digest()).decode()
BACKUP_PIN = base64.b64encode(hashlib.sha256(b"the backup key").digest()).decode()

ENV_TEXT = f"""
VIW_AGENT_BACKEND_URL=wss://{DOMAIN}{WS_PATH}
VIW_AGENT_ID=gw-lab-01
VIW_AGENT_CERT_PATH=/opt/viworks/agent/certs/client.crt
VIW_AGENT_KEY_PATH=/opt/viworks/agent/certs/client.key
VIW_AGENT_TRUST_BUNDLE=/opt/viworks/agent/certs/ca.crt
VIW_AGENT_BACKEND_SPKI_PIN=sha256/{REAL_PIN}
VIW_AGENT_SITE=lab
VIW_AGENT_CONTAINER_ENGINE=none
VIW_AGENT_SCRIPTS_ROOT=/opt/viworks/scripts/
VIW_AGENT_MAX_CONCURRENCY=4
VIW_AGENT_CMD_TIMEOUT_SECS=45
VIW_AGENT_FEATURE_EXEC_ENABLE=true
VIW_AGENT_FEATURE_INBOUND_HTTP=false
RUST_LOG=info
"""


@pytest.fixture
def env() -> dict[str, str]:
    return parse_env(ENV_TEXT)


def test_a_contract_env_has_no_problem(env):
    assert ge.key_problems(env, REQUIRED_ENV_KEYS) == []
    assert ge.backend_url_problems(env[ge.BACKEND_URL], DOMAIN, WS_PATH) == []
    assert ge.pin_problem(env[ge.SPKI_PIN]) is None
    assert ge.flag_problem(env, ge.FEATURE_INBOUND_HTTP, False) is None
    assert ge.flag_problem(env, ge.FEATURE_EXEC, True) is None


def test_missing_and_empty_keys_are_named(env):
    del env["VIW_AGENT_SITE"]
    env["RUST_LOG"] = "  "
    assert ge.key_problems(env, REQUIRED_ENV_KEYS) == ["VIW_AGENT_SITE missing", "RUST_LOG empty"]


@pytest.mark.parametrize(
    "url, found",
    [
        ("ws://172.20.0.3:8081", ["scheme ws://", "host 172.20.0.3 is an IP address", "port 8081", "path <none>"]),
        (f"ws://{DOMAIN}{WS_PATH}", ["scheme ws://", "port 80"]),
        (f"wss://203.0.113.7{WS_PATH}", ["host 203.0.113.7 is an IP address"]),
        (f"wss://[2001:db8::1]{WS_PATH}", ["host 2001:db8::1 is an IP address"]),
        (f"wss://other.example.com{WS_PATH}", ["host other.example.com"]),
        (f"wss://{DOMAIN}:8081{WS_PATH}", ["port 8081 (not the edge's 443: bypasses nginx)"]),
        (f"wss://{DOMAIN}/", ["path /"]),
        (f"https://{DOMAIN}{WS_PATH}", ["scheme https://"]),
        ("", ["no URL"]),
        (None, ["no URL"]),
    ],
)
def test_backend_url_problems_name_each_way_around_the_edge(url, found):
    problems = ge.backend_url_problems(url, DOMAIN, WS_PATH)
    assert len(problems) == len(found), problems
    for problem, start in zip(problems, found):
        assert problem.startswith(start), (problem, start)


def test_backend_url_accepts_the_explicit_edge_port_and_domain_case():
    assert ge.backend_url_problems(f"wss://Agent.Example.COM:443{WS_PATH}", DOMAIN, WS_PATH) == []
    assert ge.backend_url_problems(f"wss://{DOMAIN}:8443{WS_PATH}", DOMAIN, WS_PATH, https_port=8443) == []
    assert ge.expected_backend_url(DOMAIN, WS_PATH, 8443) == f"wss://{DOMAIN}:8443{WS_PATH}"
    assert ge.expected_backend_url(DOMAIN, WS_PATH) == f"wss://{DOMAIN}{WS_PATH}"


@pytest.mark.parametrize("text", [REAL_PIN, f"sha256/{REAL_PIN}", f"sha256/{REAL_PIN}, {BACKUP_PIN}"])
def test_real_pins_bare_prefixed_or_with_a_backup_are_well_formed(text):
    assert ge.pin_problem(text) is None


@pytest.mark.parametrize(
    "text, found",
    [
        ("dummy", "is not base64 of a 32-byte SHA-256 digest"),
        ("changeme==", "is not base64"),
        ("sha256/" + "A" * 43 + "=", "placeholder (a digest of 1 distinct byte value"),
        (base64.b64encode(bytes(range(4)) * 8).decode(), "placeholder"),
        ("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "the SHA-256 of empty input"),
        (f"{REAL_PIN},{'A' * 43}=", "placeholder"),  # a dummy backup is as bad as a dummy primary
        ("", "no pin"),
        (None, "no pin"),
    ],
)
def test_malformed_and_placeholder_pins_are_refused(text, found):
    problem = ge.pin_problem(text)
    assert problem is not None and found in problem, problem


@pytest.mark.parametrize(
    "text, value",
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        (" off ", False),
        ("maybe", None),
        ("", None),
        (None, None),
    ],
)
def test_flags_read_as_the_agent_reads_them(text, value):
    assert ge.parse_flag(text) is value


def test_flag_problems_say_what_was_found(env):
    env[ge.FEATURE_INBOUND_HTTP] = "true"
    assert ge.flag_problem(env, ge.FEATURE_INBOUND_HTTP, False) == "VIW_AGENT_FEATURE_INBOUND_HTTP=true"
    env[ge.FEATURE_EXEC] = "maybe"
    assert ge.flag_problem(env, ge.FEATURE_EXEC, True) == "VIW_AGENT_FEATURE_EXEC_ENABLE=maybe (not a boolean)"
    del env[ge.FEATURE_EXEC]
    assert ge.flag_problem(env, ge.FEATURE_EXEC, True) == "VIW_AGENT_FEATURE_EXEC_ENABLE not set"


def test_secret_values_are_never_shown():
    assert ge.shown("VIW_AGENT_API_TOKEN", "s3cr3t-value") == "***"
    assert ge.shown("VIW_AGENT_BACKEND_URL", "wss://x/ws") == "wss://x/ws"
    assert ge.shown("VIW_AGENT_KEY_PATH", "/opt/k") == "/opt/k"  # a path to a key is not the key
    assert ge.shown("ANY", None) == "<not set>"
    assert "s3cr3t-value" not in (ge.flag_problem({"SOME_SECRET_FLAG": "s3cr3t-value"}, "SOME_SECRET_FLAG", True) or "")


def test_required_paths_come_from_the_env(env):
    paths = ge.required_paths(env, ("add_user.sh", "delete_user.sh"))
    assert paths == {
        "certificate": "/opt/viworks/agent/certs/client.crt",
        "key": "/opt/viworks/agent/certs/client.key",
        "CA": "/opt/viworks/agent/certs/ca.crt",
        "script add_user.sh": "/opt/viworks/scripts/add_user.sh",
        "script delete_user.sh": "/opt/viworks/scripts/delete_user.sh",
    }
    assert ge.required_paths({}, ("add_user.sh",)) == {}
