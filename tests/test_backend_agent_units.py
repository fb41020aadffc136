"""Pure unit tests of the lab backend agent's helpers (no sockets, no database, no event loop)."""

from __future__ import annotations

import datetime as dt
import logging
import time

import jwt
import pytest

from viworks_lab.agents import backend
from viworks_lab.agents.backend import ApiError

SECRET = "unit-test-jwt-secret-0123456789-abcdef"


def _token(secret: str = SECRET, **overrides: object) -> str:
    now = int(time.time())
    claims = {"sub": "alice", "iat": now, "exp": now + 300, "role": "operator"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


# ---------------------------------------------------------------- configuration


def test_merge_config_fills_every_default() -> None:
    merged = backend.merge_config({})
    assert merged["server"]["port"] == 8080
    assert merged["agent_management"] == {
        "enabled": True,
        "bind_address": "0.0.0.0",
        "port": 8081,
        "path": "/ws/agent",
        "heartbeat_interval": 15,
        "connection_timeout": 45,
        "hello_timeout": 10,
    }
    assert merged["command"]["dispatch_enabled"] is True
    assert not any(merged["lab_faults"].values())  # the contract's behaviour unless a fault says otherwise
    assert merged["telemetry"]["ttl_seconds"] == 600


def test_merge_config_keeps_given_values_and_unknown_keys() -> None:
    merged = backend.merge_config({"agent_management": {"enabled": False, "extra": 1}, "server": {"port": 9000}})
    assert merged["agent_management"]["enabled"] is False
    assert merged["agent_management"]["extra"] == 1
    assert merged["agent_management"]["port"] == 8081
    assert merged["server"]["port"] == 9000


@pytest.mark.parametrize(
    "data",
    [
        {"server": {"port": "8080"}},
        {"server": {"port": 70000}},
        {"agent_management": {"enabled": "yes"}},
        {"command": {"default_timeout": 500, "max_timeout": 300}},
        {"command": {"default_timeout": True}},
        {"database": {"url": 5}},
        {"server": "nope"},
    ],
)
def test_merge_config_rejects_wrong_kinds(data: dict) -> None:
    with pytest.raises(backend.ConfigError):
        backend.merge_config(data)


REQUIRED_TOML = """[server]
port = 18080
[database]
url = "postgresql://viworks@db:5432/viworks_agent"
[redis]
url = "redis://redis:6379/0"
[security]
jwt_secret = "s"
[agent_management]
port = 8081
path = "/ws/agent"
[command]
signing_key_path = "/app/config/command-signing.key"
"""


def test_load_config_reads_toml(tmp_path) -> None:
    path = tmp_path / "backend-agent.toml"
    path.write_text(REQUIRED_TOML + "dispatch_enabled = false\n")
    merged = backend.load_config(str(path))
    assert merged["server"]["port"] == 18080 and merged["command"]["dispatch_enabled"] is False


def test_a_config_without_a_required_key_is_refused_like_productions(tmp_path) -> None:
    path = tmp_path / "backend-agent.toml"
    path.write_text(REQUIRED_TOML.replace('jwt_secret = "s"\n', "").replace('path = "/ws/agent"\n', ""))
    with pytest.raises(
        backend.ConfigError, match=r"required key\(s\) missing: \[security\] jwt_secret, \[agent_management\] path"
    ):
        backend.load_config(str(path))


def test_load_config_missing_or_invalid(tmp_path) -> None:
    with pytest.raises(backend.ConfigError, match="cannot read"):
        backend.load_config(str(tmp_path / "absent.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(backend.ConfigError, match="not valid TOML"):
        backend.load_config(str(bad))


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://viworks:SECRET@viworks-postgres:5432/viworks_agent", "viworks-postgres:5432/viworks_agent"),
        ("redis://:SECRET@viworks-redis:6379/0", "viworks-redis:6379/0"),
        ("redis://viworks-redis", "viworks-redis"),
        ("postgresql://u:p@[::1]:5432/db", "[::1]:5432/db"),
    ],
)
def test_redact_url_never_shows_credentials(url: str, expected: str) -> None:
    shown = backend.redact_url(url)
    assert shown == expected
    assert "SECRET" not in shown


def test_url_password() -> None:
    assert backend.url_password("redis://:p%40ss@h:6379/0") == "p@ss"
    assert backend.url_password("redis://h:6379/0") is None


@pytest.mark.parametrize(
    "text, level",
    [
        ("info", logging.INFO),
        ("DEBUG", logging.DEBUG),
        ("warn", logging.WARNING),
        ("trace", logging.DEBUG),
        ("info,viworks=debug", logging.INFO),
        ("nonsense", logging.INFO),
        (None, logging.INFO),
    ],
)
def test_log_level(text, level) -> None:
    assert backend.log_level(text) == level


# ---------------------------------------------------------------- authentication


def test_decode_bearer_accepts_a_valid_token() -> None:
    claims = backend.decode_bearer(f"Bearer {_token()}", SECRET)
    assert claims["sub"] == "alice" and claims["role"] == "operator"


@pytest.mark.parametrize(
    "header, message",
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic abc", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer not-a-jwt", "invalid token"),
        (f"Bearer {_token(secret='another-secret-0123456789-abcdefgh')}", "signature"),
        (f"Bearer {_token(exp=int(time.time()) - 10)}", "expired"),
        (f"Bearer {_token(exp=None)}", "'exp'"),
        (f"Bearer {_token(sub=None)}", "'sub'"),
        (f"Bearer {_token(role=None)}", "role"),
    ],
)
def test_decode_bearer_refuses_with_401(header, message) -> None:
    with pytest.raises(ApiError) as info:
        backend.decode_bearer(header, SECRET)
    assert info.value.status == 401 and info.value.error == "unauthorized"
    assert message in info.value.message


def test_decode_bearer_refuses_everything_without_a_secret() -> None:
    with pytest.raises(ApiError) as info:
        backend.decode_bearer(f"Bearer {_token()}", "")
    assert info.value.status == 401


def test_decode_bearer_with_a_given_clock() -> None:
    token = _token(exp=1000, iat=900)
    assert backend.decode_bearer(f"Bearer {token}", SECRET, now=950)["exp"] == 1000
    with pytest.raises(ApiError):
        backend.decode_bearer(f"Bearer {token}", SECRET, now=1000)


@pytest.mark.parametrize(
    "role, needed, allowed",
    [
        ("viewer", "viewer", True),
        ("viewer", "operator", False),
        ("operator", "operator", True),
        ("operator", "admin", False),
        ("admin", "viewer", True),
        ("admin", "admin", True),
        ("superuser", "viewer", False),
    ],
)
def test_require_role_hierarchy(role, needed, allowed) -> None:
    if allowed:
        backend.require_role({"role": role}, needed)
    else:
        with pytest.raises(ApiError) as info:
            backend.require_role({"role": role}, needed)
        assert info.value.status == 403


# ---------------------------------------------------------------- commands


def _parse(body):
    return backend.parse_command_request(body, default_timeout=30, max_timeout=300)


def test_parse_command_request_ok_and_default_timeout() -> None:
    req = _parse({"verb": "get_system_health", "args": {}, "agent_targets": ["gw-a-01"]})
    assert req == backend.CommandRequest("get_system_health", {}, ["gw-a-01"], 30)
    req = _parse({"verb": "delete_user", "args": {"username": "bob"}, "agent_targets": ["a", "b"], "timeout": 300})
    assert req.timeout == 300 and req.agent_targets == ["a", "b"]


@pytest.mark.parametrize(
    "body, error",
    [
        ([], "invalid_request"),
        ({"verb": "rm_rf", "args": {}, "agent_targets": ["a"]}, "unknown_verb"),
        ({"verb": None, "args": {}, "agent_targets": ["a"]}, "unknown_verb"),
        ({"verb": "list_users", "agent_targets": ["a"]}, "invalid_args"),
        ({"verb": "list_users", "args": None, "agent_targets": ["a"]}, "invalid_args"),
        ({"verb": "list_users", "args": {"x": 1}, "agent_targets": ["a"]}, "invalid_args"),
        ({"verb": "delete_user", "args": {}, "agent_targets": ["a"]}, "invalid_args"),
        ({"verb": "list_users", "args": {}}, "invalid_targets"),
        ({"verb": "list_users", "args": {}, "agent_targets": []}, "invalid_targets"),
        ({"verb": "list_users", "args": {}, "agent_targets": "a"}, "invalid_targets"),
        ({"verb": "list_users", "args": {}, "agent_targets": [""]}, "invalid_targets"),
        ({"verb": "list_users", "args": {}, "agent_targets": [1]}, "invalid_targets"),
        ({"verb": "list_users", "args": {}, "agent_targets": ["a", "a"]}, "invalid_targets"),
        ({"verb": "list_users", "args": {}, "agent_targets": ["a"], "timeout": 0}, "invalid_timeout"),
        ({"verb": "list_users", "args": {}, "agent_targets": ["a"], "timeout": 301}, "invalid_timeout"),
        ({"verb": "list_users", "args": {}, "agent_targets": ["a"], "timeout": 1.5}, "invalid_timeout"),
        ({"verb": "list_users", "args": {}, "agent_targets": ["a"], "timeout": True}, "invalid_timeout"),
        ({"verb": "list_users", "args": {}, "agent_targets": ["a"], "timeout": "10"}, "invalid_timeout"),
    ],
)
def test_parse_command_request_rejects_with_400(body, error) -> None:
    with pytest.raises(ApiError) as info:
        _parse(body)
    assert info.value.status == 400 and info.value.error == error and info.value.message


def test_aggregate_status() -> None:
    ok = {"status": "SUCCESS"}
    bad = {"status": "DENIED"}
    assert backend.aggregate_status(["a", "b"], {}) is None
    assert backend.aggregate_status(["a", "b"], {"a": ok}) is None
    assert backend.aggregate_status(["a", "b"], {"a": ok, "b": ok}) == "Completed"
    assert backend.aggregate_status(["a", "b"], {"a": ok, "b": bad}) == "Failed"
    assert backend.aggregate_status(["a"], {"a": ok, "z": bad}) == "Completed"
    assert backend.aggregate_status([], {}) is None


def test_command_view_first_target_is_result() -> None:
    created = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    row = {
        "correlation_id": "c1",
        "verb": "list_users",
        "args": {},
        "agent_targets": ["b", "a"],
        "status": "Executing",
        "created_at": created,
        "updated_at": created,
        "timeout_s": 30,
        "results": {"a": {"status": "SUCCESS"}},
        "actor": {"id": "alice", "role": "operator"},
        "dispatched_to": ["a", "b"],
    }
    view = backend.command_view(row)
    assert view["result"] is None  # the first target (b) has not answered
    assert view["results"] == {"a": {"status": "SUCCESS"}}
    assert view["created_at"] == "2026-01-02T03:04:05.000Z"
    assert view["timeout"] == 30
    row["results"]["b"] = {"status": "ERROR"}
    assert backend.command_view(row)["result"] == {"status": "ERROR"}


def test_agent_view_without_session_is_offline() -> None:
    seen = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    row = {
        "agent_id": "gw-a-01",
        "site": "lab",
        "status": "Online",  # stale: no live session means Offline
        "version": "1.0",
        "capabilities": ["list_users"],
        "feature_flags": {"exec_enable": True, "inbound_http": False},
        "connection_info": {"session_id": "old"},
        "last_seen": seen,
    }
    view = backend.agent_view(row, None)
    assert view == {
        "agent_id": "gw-a-01",
        "site": "lab",
        "status": "Offline",
        "version": "1.0",
        "capabilities": ["list_users"],
        "last_seen": "2026-01-02T03:04:05.000Z",
        "connection_info": None,
        "feature_flags": {"exec_enable": True, "inbound_http": False},
    }
