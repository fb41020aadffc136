"""A release candidate's files as the lab takes them: as given, with only the lab's own values filled when asked."""

from __future__ import annotations

import tomllib

import pytest

from viworks_lab.build_release import build_release
from viworks_lab.candidate import (
    BackendSecrets,
    GatewayValues,
    database_name,
    fill_backend_config,
    fill_gateway_env,
    fill_gateway_toml,
    forget_candidate,
    load_candidate,
    take_candidate,
)
from viworks_lab.engine import LabError

SECRETS = BackendSecrets("pg pass/with:odd@chars", "redis-pass", "lab-jwt-secret")
GATEWAY = GatewayValues("agent.lab.test", "gw-lab-02", "lab-2", "sha256/X2IpqPTlj6xW9W6lTs1eQB0WNehMQYIiDDBpd2F7H34=")


def test_the_backend_config_gets_the_labs_urls_and_secret_and_keeps_everything_else(tmp_path):
    build_release(tmp_path)
    given = (tmp_path / "backend-agent.toml").read_text().replace("viworks_agent", "viworks_prod")
    filled = fill_backend_config(given, SECRETS)
    data = tomllib.loads(filled)
    assert (
        data["database"]["url"]
        == "postgresql://viworks:pg%20pass%2Fwith%3Aodd%40chars@viworks-postgres:5432/viworks_prod"
    )
    assert data["redis"]["url"] == "redis://:redis-pass@viworks-redis:6379/0"
    assert data["security"]["jwt_secret"] == "lab-jwt-secret"
    # Everything else as the operator wrote it, line for line.
    kept = [line for line in given.splitlines() if not line.startswith(("url =", "jwt_secret ="))]
    assert [line for line in filled.splitlines() if not line.startswith(("url =", "jwt_secret ="))] == kept
    assert database_name(filled) == "viworks_prod"


def test_a_key_the_candidate_lacks_stays_missing():
    given = "[server]\nport = 8080\n[database]\nmax_connections = 5\n[security]\n# jwt_secret is forgotten\n"
    filled = fill_backend_config(given, SECRETS)
    assert tomllib.loads(filled) == tomllib.loads(given)


def test_a_gateway_env_gets_the_labs_identity_edge_and_pki_where_it_has_them():
    given = (
        "# site 1\nVIW_AGENT_BACKEND_URL=wss://agent.example.com/agent/socket\nVIW_AGENT_ID=gw-site-01\n"
        "VIW_AGENT_CERT_PATH=/etc/viworks/client.pem\nVIW_AGENT_BACKEND_SPKI_PIN=sha256/AAAA\nRUST_LOG=debug\n"
    )
    filled = fill_gateway_env(given, GATEWAY)
    assert filled.splitlines() == [
        "# site 1",
        # the path is the candidate's: a wrong one stays wrong
        "VIW_AGENT_BACKEND_URL=wss://agent.lab.test/agent/socket",
        "VIW_AGENT_ID=gw-lab-02",
        "VIW_AGENT_CERT_PATH=/opt/viworks/agent/certs/client.crt",
        "VIW_AGENT_BACKEND_SPKI_PIN=sha256/X2IpqPTlj6xW9W6lTs1eQB0WNehMQYIiDDBpd2F7H34=",
        "RUST_LOG=debug",
    ]  # no VIW_AGENT_SITE added: the candidate has none


def test_an_agent_toml_gets_the_labs_outbound_values():
    given = (
        '[agent]\nlog_level = "info"\n\n[outbound]\n'
        'backend_url = "wss://agent.example.com/ws/agent"  # prod\nagent_id = "gw-x"\nsite = "x"\n'
    )
    data = tomllib.loads(fill_gateway_toml(given, GATEWAY))
    assert data["outbound"] == {
        "backend_url": "wss://agent.lab.test/ws/agent",
        "agent_id": "gw-lab-02",
        "site": "lab-2",
    }
    assert data["agent"] == {"log_level": "info"}


def test_a_candidate_is_copied_and_remembered_until_forgotten(tmp_path):
    release = tmp_path / "release"
    build_release(release)
    state = tmp_path / "state"
    taken = take_candidate(state, release, {"gateway_env": None}, lab_secrets=True, version="2.0.0")
    (release / "viworks-backend-agent").write_bytes(b"changed after the rehearsal started")
    loaded = load_candidate(state)
    assert loaded == taken and loaded.version == "2.0.0" and loaded.lab_secrets
    assert sorted(loaded.files) == ["backend_binary", "backend_config", "gateway_binary", "gateway_env"]
    assert loaded.data("backend_binary").startswith(b"#!/usr/bin/python3")  # the copy, not the file changed since
    assert forget_candidate(state) and load_candidate(state) is None and not (state / "candidate").exists()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"backend_binary": "missing"}, "is not a non-empty file"),
        ({"backend_binary": "empty"}, "is not a non-empty file"),
        ({"backend_config": "not-toml"}, "is not TOML"),
    ],
)
def test_a_candidate_file_that_cannot_be_deployed_is_refused(tmp_path, files, expected):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "not-toml").write_text("[server\n")
    with pytest.raises(LabError, match=expected):
        take_candidate(
            tmp_path / "state", None, {role: tmp_path / name for role, name in files.items()}, lab_secrets=False
        )


def test_a_release_directory_without_any_candidate_file_is_refused(tmp_path):
    with pytest.raises(LabError, match="none of viworks-backend-agent"):
        take_candidate(tmp_path / "state", tmp_path, {}, lab_secrets=False)
